"""The Bria simulator counts the generation tasks it creates per prompt (``GET /_sim/submissions``):
a fault drill gives every job its own prompt, so a count above one is a duplicate submission."""

from __future__ import annotations

from fastapi.testclient import TestClient

from providers.bria.simulator import state as simstate
from providers.bria.simulator.app import create_app

TOKEN = {"api_token": "t"}


def _generate(client: TestClient, prompt: str) -> int:
    return client.post("/v2/image/generate", headers=TOKEN, json={"prompt": prompt}).status_code


def test_tasks_are_counted_per_prompt_and_reset_clears_them():
    client = TestClient(create_app(latency_seconds=0))
    for prompt in ("drill a #1#", "drill a #2#", "drill a #2#", "other #1#"):
        assert _generate(client, prompt) == 202
    seen = client.get("/_sim/submissions", params={"prefix": "drill a "}).json()
    assert seen == {"prompts": 2, "tasks": 3, "duplicates": {"drill a #2#": 2}, "dropped_prompts": 0}
    assert client.get("/_sim/submissions").json()["tasks"] == 4
    client.post("/_sim/reset")
    assert client.get("/_sim/submissions").json() == {"prompts": 0, "tasks": 0, "duplicates": {},
                                                      "dropped_prompts": 0}


def test_a_refused_submission_creates_no_task():
    client = TestClient(create_app(latency_seconds=0))
    client.post("/_sim/faults", json=[{"on": "submit", "kind": "429"}])
    assert _generate(client, "refused") == 429
    assert client.get("/_sim/submissions").json()["tasks"] == 0
    assert _generate(client, "refused") == 202
    assert client.get("/_sim/submissions").json()["tasks"] == 1


def test_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(simstate, "MAX_SUBMISSION_KEYS", 3)
    client = TestClient(create_app(latency_seconds=0))
    for n in range(5):
        _generate(client, f"p{n}")
    seen = client.get("/_sim/submissions").json()
    assert (seen["prompts"], seen["dropped_prompts"]) == (3, 2)
