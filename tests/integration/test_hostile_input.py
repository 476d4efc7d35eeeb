"""Hostile and careless input through the running system: every answer is a documented 4xx (or
the documented success), never a 500, and no bad request leaves a job behind."""

from __future__ import annotations

import base64
import socket
from typing import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from tests.integration.bria_media import b64, subject
from tests.integration.conftest import Client
from tests.integration.receiver import Receiver, Reply
from tests.integration.system import System
from tests.integration.test_webhooks import settled, submit

pytestmark = pytest.mark.integration

GEN = "/api/v1/bria/image/generation/generate-image"
RMBG = "/api/v1/bria/image/editing/remove-background"


def job_count() -> int:
    from core.db import session_factory
    from core.models import Job

    with session_factory()() as session:
        return session.scalar(select(func.count()).select_from(Job))


@pytest.fixture
def hc(system: System, make_key) -> Iterator[Client]:
    c = Client(system.api_url, make_key("hostile", "pro"))
    yield c
    c.http.close()


def raw_post(c: Client, path: str, body: bytes, ctype: str = "application/json") -> httpx.Response:
    return c.http.post(path, content=body, headers={"Content-Type": ctype})


# --------------------------------------------------------------------------- JSON the database can't hold
@pytest.mark.parametrize("body, error_type, needle", [
    (b'{"prompt": "a cat", "seed": NaN}', "json_invalid", "NaN is not a JSON number"),
    (b'{"prompt": "a cat", "guidance_scale": Infinity}', "json_invalid", "Infinity is not a JSON number"),
    (b'{"prompt": "a cat", "guidance_scale": -Infinity}', "json_invalid", "-Infinity is not a JSON number"),
    (b'{"prompt": "a cat", "guidance_scale": 1e400}', "json_invalid", "must be finite"),
    (b'{"prompt": "a cat \\ud800 alone"}', "string_unicode", "surrogate"),
    (b'{"prompt": "a cat\\u0000"}', "string_nul", "NUL"),
    (b'{"prompt": "a cat", "negative_prompt": "x\\u0000y"}', "string_nul", "NUL"),
    (b'{"prompt": "caf\xe9"}', "json_invalid", "not UTF-8"),
])
def test_text_the_database_cannot_store_is_a_422(hc: Client, body: bytes, error_type: str, needle: str):
    before = job_count()
    resp = raw_post(hc, GEN, body)
    assert resp.status_code == 422, resp.text
    [item] = resp.json()["detail"]
    assert item["type"] == error_type and needle in item["msg"], item
    if error_type in ("string_nul", "string_unicode"):
        field = "negative_prompt" if b"negative_prompt" in body else "prompt"
        assert item["loc"] == ["body", field]
    assert job_count() == before


def test_nul_in_a_form_field_is_a_422(hc: Client):
    resp = hc.http.post("/api/v1/bria/prompt/enhance-prompt", data={"prompt": "a\x00cat"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "prompt"]


def test_a_rejected_surrogate_field_still_renders_its_422(hc: Client):
    """The field is refused by its model (an enum): rendering the error item must not fail on the
    surrogate in its input."""
    resp = raw_post(hc, GEN, b'{"prompt": "a cat", "aspect_ratio": "\\ud800"}')
    assert resp.status_code == 422, resp.text


# --------------------------------------------------------------------------- error items stay short
def test_a_422_does_not_echo_a_large_input(hc: Client):
    image = base64.b64encode(b"\x89PNG" + b"\0" * 6_000_000).decode()  # ~8 MB of base64
    resp = hc.http.post("/api/v1/bria/image/editing-generation/inpaint", json={"image": image})
    assert resp.status_code == 422, resp.text[:500]
    assert len(resp.content) < 8_000, len(resp.content)
    detail = resp.json()["detail"]
    assert any(d["loc"][-1] in ("prompt", "mask") for d in detail)
    assert f"({len(image)} characters)" in resp.text  # the length is shown instead of the value


# --------------------------------------------------------------------------- bodies over the limit
def test_over_limit_chunked_body_is_413(hc: Client, system: System):
    limit = 32 * 1024 * 1024

    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(limit // (1024 * 1024) + 2):
            yield b"a" * (1024 * 1024)
        yield b'"}'

    resp = hc.http.post(GEN, content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert resp.status_code == 413, resp.text[:300]
    assert resp.json()["error"]["code"] == "payload_too_large"


# --------------------------------------------------------------------------- signed URLs
@pytest.mark.parametrize("query", [
    "expires=9999999999&signature=%C3%A9%C3%A9",   # non-ASCII signature
    "expires=%C2%B2&signature=abcd",               # expires "²" (isdigit() says yes, int() says no)
    "expires=%D9%A3%D9%A3&signature=abcd",         # Arabic-Indic digits
    "expires=99999999999999999999999999&signature=abcd",
])
def test_malformed_file_links_are_403_not_500(system: System, query: str):
    resp = httpx.get(f"{system.api_url}/files/some/key.png?{query}")
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "invalid_signature"


# --------------------------------------------------------------------------- LoRA ids
@pytest.mark.parametrize("raw_id", ["%C2%B9", "%D9%A1", "99999999999999999999"])
def test_lora_ids_in_other_scripts_are_not_found(hc: Client, raw_id: str):
    resp = hc.http.get(f"/api/v1/bria-lora/projects/{raw_id}")
    assert resp.status_code in (404, 422), resp.text
    assert resp.json()


def test_lora_dataset_id_as_unicode_digit_in_multipart(hc: Client):
    project = hc.http.post("/api/v1/bria-lora/projects", json={
        "project_name": "digits", "ip_medium": "illustration", "ip_type": "style"})
    assert project.status_code == 200, project.text
    dataset = hc.http.post("/api/v1/bria-lora/datasets",
                           json={"project_id": project.json()["result"]["id"], "name": "d"})
    assert dataset.status_code == 200, dataset.text
    did = dataset.json()["result"]["id"]
    png = base64.b64decode(b64(subject((300, 300))))
    resp = hc.http.post(f"/api/v1/bria-lora/datasets/{did}/images",
                        data={"dataset_id": "²"}, files={"file": ("a.png", png, "image/png")})
    assert 400 <= resp.status_code < 500, resp.text


def test_body_big_ids_for_lora_are_not_found(hc: Client):
    resp = hc.http.post("/api/v1/bria-lora/models", json={"name": "m", "dataset_id": 2**40,
                                                          "training_version": "light"})
    assert resp.status_code == 404, resp.text


# --------------------------------------------------------------------------- sync blame
def test_sync_job_failing_on_the_clients_input_is_422(hc: Client, system: System, files):  # noqa: F811
    blocked = f"http://127.0.0.1:{system.sim_port}/_sim/stats"  # loopback: never fetched
    resp = hc.http.post(RMBG, json={"image": blocked, "sync": True})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "input_url_blocked" and error["request_id"] and "image" in error["message"]
    assert hc.status(error["request_id"]).json()["status"] == "ERROR"  # readable later

    not_image = files.put("words.png", b"plain words, no pixels", "image/png")
    resp = hc.http.post(RMBG, json={"image": not_image, "sync": True})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "not_an_image", resp.text


# --------------------------------------------------------------------------- webhook receivers
def test_a_receiver_answering_a_strange_retry_after_is_retried(system: System, make_key):
    client = Client(system.api_url, make_key("hooks-strange", "pro"))
    with Receiver() as rx:
        rx.script = [Reply(503, b"busy", {"Retry-After": "²"}), Reply(429, b"slow", {"Retry-After": "nan"})]
        job_id = submit(client, webhook_url=rx.url("/odd"))
        [delivery] = settled(client, job_id, 1)
        assert delivery["status"] == "succeeded", delivery
        assert [a["status_code"] for a in delivery["attempts"]] == [503, 429, 200]
    client.http.close()


# --------------------------------------------------------------------------- a connection that never closes
def test_garbage_on_the_socket_gets_an_answer(system: System):
    host, port = system.api_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Content-Type: application/json\r\n\r\n{\xff\xfe}")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
