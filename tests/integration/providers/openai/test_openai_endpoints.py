"""OpenAI's three endpoints through HTTP, the real worker (its in-flight event loop) and the
OpenAI simulator: output images checked (size, format, alpha), errors classified, credits,
the job view, batches."""

from __future__ import annotations

import base64
import io
import time
from typing import Any, Iterator

import httpx
import pytest
from PIL import Image

from tests.integration.conftest import Client
from tests.integration.system import System
from tests.integration.test_batches import results, upload, wait_batch
from tests.integration.bria_media import b64, subject

pytestmark = pytest.mark.integration

O = "/api/v1/openai/image"


@pytest.fixture
def oc(system: System, make_key) -> Iterator[Client]:
    c = Client(system.api_url, make_key("openai-user", "pro"))
    yield c
    c.http.close()


def faults(system: System, *rules: dict[str, Any]) -> None:
    system.sim("POST", "/openai/_sim/faults", json=list(rules)).raise_for_status()


def images_of(c: Client, result: dict[str, Any]) -> list[Image.Image]:
    out = []
    for url in result["urls"]:
        resp = httpx.get(url, timeout=30)
        assert resp.status_code == 200, resp.text
        out.append(Image.open(io.BytesIO(resp.content)))
    return out


def test_generate_image_answers_with_the_images(oc: Client, system: System):
    resp = oc.http.post(f"{O}/generation/generate-image", json={
        "prompt": "a glass teapot on a table", "number_of_images": 2, "aspect_ratio": "3:2",
        "background": "transparent", "quality": "high"})
    assert resp.status_code == 200, resp.text
    result = resp.json()["result"]
    assert result["status"] == "COMPLETED" and result["credit_cost"] == 2
    assert result["status_url"].endswith(f"/api/v1/jobs/{result['request_id']}")
    imgs = images_of(oc, result)
    assert len(imgs) == 2 and all(i.format == "PNG" and i.size == (1536, 1024) for i in imgs)
    alpha = imgs[0].convert("RGBA").getchannel("A").histogram()
    assert alpha[0] > 0 and alpha[255] > 0  # a transparent background around an opaque subject
    job = oc.http.get(result["status_url"]).json()["result"]
    assert job["provider"] == "openai" and job["state"] == "COMPLETED" and len(job["result"]["urls"]) == 2
    stats = system.sim("GET", "/openai/_sim/stats").json()
    assert stats, stats


def test_edit_image_sends_the_fetched_image(oc: Client, files):
    url = files.image("teapot.png", subject((640, 480)))
    resp = oc.http.post(f"{O}/editing-generation/edit-image", json={
        "prompt": "make it look like a watercolour", "image_url": url, "aspect_ratio": "2:3"})
    assert resp.status_code == 200, resp.text
    [img] = images_of(oc, resp.json()["result"])
    assert img.size == (1024, 1536)


def test_inpaint_border_only_keeps_the_input_size(oc: Client):
    resp = oc.http.post(f"{O}/editing-generation/inpaint", json={
        "prompt": "extend the forest", "image_file": b64(subject((512, 384)), prefix=True),
        "inpaint_border_only": True, "border_percentage": 0.2})
    assert resp.status_code == 200, resp.text
    [img] = images_of(oc, resp.json()["result"])
    assert img.size == (512, 384)


def test_inpaint_with_a_mask_and_the_prose_rules(oc: Client):
    image = subject((400, 300))
    mask = Image.new("L", (400, 300), 0)
    mask.paste(255, (100, 80, 300, 220))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    resp = oc.http.post(f"{O}/editing-generation/inpaint", json={
        "prompt": "a bowl of fruit", "image_file": b64(image), "mask_file": base64.b64encode(buffer.getvalue()).decode()})
    assert resp.status_code == 200, resp.text
    missing = oc.http.post(f"{O}/editing-generation/inpaint", json={"prompt": "no image at all"})
    assert missing.status_code == 422
    assert {d["type"] for d in missing.json()["detail"]} == {"image_required", "mask_required"}


def test_rate_limits_are_retried_and_moderation_is_the_clients(oc: Client, system: System):
    faults(system, {"on": "submit", "kind": "429", "retry_after": 0.2})
    resp = oc.http.post(f"{O}/generation/generate-image", json={"prompt": "after a short wait"})
    assert resp.status_code == 200 and resp.json()["result"]["status"] == "COMPLETED", resp.text

    faults(system, {"on": "submit", "kind": "error", "code": "moderation_blocked",
                    "message": "Your request was rejected as a result of our safety system."})
    resp = oc.http.post(f"{O}/generation/generate-image", json={"prompt": "something refused"})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "content_moderated" and "safety system" in error["message"]
    job = oc.http.get(error["status_url"]).json()["result"]
    assert job["status"] == "ERROR" and job["error"]["code"] == "content_moderated"

    faults(system, *[{"on": "submit", "kind": "500"}] * 3)
    resp = oc.http.post(f"{O}/generation/generate-image", json={"prompt": "the upstream is down"})
    assert resp.status_code == 502 and resp.json()["error"]["code"].startswith("upstream_"), resp.text


def test_openai_lines_run_in_a_batch(oc: Client):
    lines = [{"custom_id": f"o{i}", "endpoint": f"{O}/generation/generate-image",
              "body": {"prompt": f"batch image {i}", "aspect_ratio": "1:1"}} for i in range(3)]
    resp = upload(oc, lines)
    assert resp.status_code in (200, 201, 202), resp.text
    batch = resp.json()["result"]
    wait_batch(oc, batch["id"], ("completed",), timeout=60)
    rows = results(oc, batch["id"])
    assert sorted(r["custom_id"] for r in rows) == ["o0", "o1", "o2"]
    assert all(r["status"] == "COMPLETED" for r in rows), rows


def test_past_the_sync_deadline_the_answer_is_202_with_a_status_url_that_exists(oc: Client, system: System):
    """The reference gives OpenAI no status route: a call still running at the sync deadline
    (15 s in the test system) answers 202 pointing at the job view, which then completes."""
    system.sim("POST", "/openai/_sim/config", json={"latency_seconds": 16.5}).raise_for_status()
    resp = oc.http.post(f"{O}/generation/generate-image", json={"prompt": "a slow upstream"})
    assert resp.status_code == 202, resp.text
    accepted = resp.json()["result"]
    assert accepted["status"] == "IN_PROGRESS"
    assert accepted["status_url"].endswith(f"/api/v1/jobs/{accepted['request_id']}")
    deadline = time.time() + 30
    while time.time() < deadline:
        job = oc.http.get(accepted["status_url"])
        assert job.status_code == 200, job.text
        if job.json()["result"]["status"] != "IN_PROGRESS":
            break
        time.sleep(0.5)
    assert job.json()["result"]["status"] == "COMPLETED", job.text
    assert len(job.json()["result"]["result"]["urls"]) == 1
