"""The Google simulator at the protocol level: routing with the ``:generateContent`` colon,
Google's error shape, field-name spellings, validation and the control API."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import pytest

from providers.google.simulator import create_app
from tests.unit.providers.google.helpers import SIM_TOKEN, add_faults, png

PATH = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
AUTH = {"Authorization": f"Bearer {SIM_TOKEN}"}
HELLO = {"contents": [{"role": "user", "parts": [{"text": "Improve this prompt: a lantern"}]}]}


def post(sim: str, body: dict, path: str = PATH, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{sim}{path}", json=body, headers=AUTH if headers is None else headers)


def error_of(response: httpx.Response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"code", "message", "status"} and error["code"] == response.status_code
    return error


def test_generate_content_response_shape(sim):
    body = post(sim, {**HELLO, "generationConfig": {"temperature": 0.2, "candidateCount": 2}}).json()
    assert [c["index"] for c in body["candidates"]] == [0, 1]
    candidate = body["candidates"][0]
    assert candidate["content"]["role"] == "model" and candidate["finishReason"] == "STOP"
    assert candidate["content"]["parts"][0]["text"] != body["candidates"][1]["content"]["parts"][0]["text"]
    usage = body["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert body["modelVersion"] == "gemini-2.5-flash" and body["responseId"] and body["createTime"].endswith("Z")


def test_routing_accepts_both_api_versions_and_refuses_other_paths(sim):
    assert post(sim, HELLO, PATH.replace("/v1/", "/v1beta1/")).status_code == 200
    assert error_of(post(sim, HELLO, PATH.replace("/v1/", "/v2/")))["status"] == "NOT_FOUND"
    assert error_of(post(sim, HELLO, PATH.replace(":generateContent", ":predict")))["status"] == "NOT_FOUND"
    unknown = post(sim, HELLO, PATH.replace("gemini-2.5-flash", "imagen-4.0-generate-001"))
    assert unknown.status_code == 404 and "imagen-4.0-generate-001" in error_of(unknown)["message"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer not-the-token"}])
def test_bearer_auth_is_required(sim, headers):
    response = post(sim, HELLO, headers=headers)
    assert response.status_code == 401 and error_of(response)["status"] == "UNAUTHENTICATED"


def test_any_token_is_accepted_when_none_is_configured():
    async def run() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(latency_seconds=0)),
                                     base_url="http://sim") as sim:
            response = await sim.post(PATH, json=HELLO, headers={"Authorization": "Bearer anything"})
            return response.status_code

    assert asyncio.run(run()) == 200


def test_paths_are_relative_to_the_mount_point():
    from fastapi import FastAPI

    parent = FastAPI()
    parent.mount("/google", create_app(latency_seconds=0))

    async def run() -> tuple[int, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=parent), base_url="http://sim") as client:
            ok = await client.post(f"/google{PATH}", json=HELLO, headers=AUTH)
            stats = await client.get("/google/_sim/stats")
            return ok.status_code, stats.json()["answered"]

    assert asyncio.run(run()) == (200, 1)


def test_snake_case_fields_and_url_safe_base64_are_read(sim):
    data = base64.urlsafe_b64encode(png((120, 80), (250, 250, 250))).decode().rstrip("=")
    body = {"contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": data}}]}],
            "system_instruction": {"parts": [{"text": "Caption."}]},
            "generation_config": {"temperature": 0, "response_mime_type": "application/json",
                                  "response_schema": {"type": "OBJECT", "properties": {
                                      "main_colour": {"type": "STRING", "enum": ["black", "white"]}}}}}
    text = post(sim, body).json()["candidates"][0]["content"]["parts"][0]["text"]
    assert text == '{"main_colour": "white"}'  # the property's own name is kept


@pytest.mark.parametrize("body,needle", [
    ({"contents": []}, "contents"),
    ({"contents": [{"role": "user", "parts": []}]}, "parts"),
    ({"contents": [{"role": "tool", "parts": [{"text": "x"}]}]}, "role"),
    ({**HELLO, "generationConfig": {"temperature": 2.5}}, "temperature"),
    ({**HELLO, "generationConfig": {"candidateCount": 9}}, "candidateCount"),
    ({**HELLO, "generationConfig": {"responseSchema": {"type": "STRING"}}}, "response_schema"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]}, "Base64"),
    ({"contents": [{"parts": [{"inlineData": {"data": "AAAA"}}]}]}, "mime_type"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}}]}]}, "Unsupported MIME"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "video/mp4", "data": "AAAA"}}]}]}, "video"),
])
def test_invalid_requests_are_invalid_argument(sim, body, needle):
    response = post(sim, body)
    error = error_of(response)
    assert response.status_code == 400 and error["status"] == "INVALID_ARGUMENT" and needle in error["message"]


def test_json_mode_without_a_schema_answers_an_object(sim):
    body = {**HELLO, "generationConfig": {"responseMimeType": "application/json", "temperature": 0}}
    answer = json.loads(post(sim, body).json()["candidates"][0]["content"]["parts"][0]["text"])
    assert "lantern" in answer["text"].lower() and "lantern" in answer["tags"]


def test_fault_kinds_on_the_wire(sim):
    add_faults(sim, {"on": "submit", "kind": "429", "retry_after": 1.5}, {"on": "submit", "kind": "500"},
               {"on": "submit", "kind": "503"}, {"on": "submit", "kind": "error", "code": 404, "message": "gone"},
               {"on": "submit", "kind": "error", "code": "SAFETY"})
    first = post(sim, HELLO)
    assert first.status_code == 429 and first.headers["Retry-After"] == "1.5"
    assert error_of(first)["status"] == "RESOURCE_EXHAUSTED"
    assert error_of(post(sim, HELLO))["status"] == "INTERNAL"
    assert error_of(post(sim, HELLO))["status"] == "UNAVAILABLE"
    gone = post(sim, HELLO)
    assert gone.status_code == 404 and error_of(gone) == {"code": 404, "message": "gone", "status": "NOT_FOUND"}
    safety = post(sim, HELLO)
    assert safety.status_code == 200
    candidate = safety.json()["candidates"][0]
    assert candidate["finishReason"] == "SAFETY" and "parts" not in candidate["content"]
    assert post(sim, HELLO).status_code == 200


def test_control_api(sim):
    assert httpx.post(f"{sim}/_sim/faults", json=[{"on": "status", "kind": "500"}]).status_code == 422
    add_faults(sim, {"on": "submit", "kind": "503", "times": 2})
    assert httpx.get(f"{sim}/_sim/faults").json()["pending"][0]["times"] == 2
    assert httpx.delete(f"{sim}/_sim/faults").json() == {"pending": []}
    assert httpx.post(f"{sim}/_sim/config", json={"latency_seconds": 0.3}).json() == {"latency_seconds": 0.3}
    started = time.monotonic()
    post(sim, HELLO)
    assert time.monotonic() - started >= 0.3
    post(sim, HELLO, headers={})
    stats = httpx.get(f"{sim}/_sim/stats").json()
    assert stats["generate_content"] == 1 and stats["answered"] == 1 and stats["unauthorized"] == 1
    assert stats["latency_seconds"] == 0.3
    reset = httpx.post(f"{sim}/_sim/reset").json()
    assert reset["counters"]["generate_content"] == 0 and reset["latency_seconds"] == 0.0


def test_latency_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SIM_GOOGLE_LATENCY_SECONDS", "1.25")
    assert create_app().state.sim.latency == 1.25
    monkeypatch.delenv("SIM_GOOGLE_LATENCY_SECONDS")
    assert create_app().state.sim.latency == 0.2
