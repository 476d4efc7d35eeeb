"""The prompt helpers and captions through HTTP, the real worker and the OpenAI and Gemini
simulators, for both ``model_provider`` values: the result schema, determinism at temperature 0,
captions that describe what the image really shows, tags from the allowed list, video captions
from sampled frames, error classification and credits."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from PIL import Image

from tests.integration.conftest import Client
from tests.integration.system import System

pytestmark = pytest.mark.integration

P = "/api/v1/prompt"
C = "/api/v1/caption"


@pytest.fixture
def tc(system: System, make_key) -> Iterator[Client]:
    c = Client(system.api_url, make_key("text-user", "pro"))
    yield c
    c.http.close()


def result(resp) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body = resp.json()["result"]
    assert body["status"] == "COMPLETED", body
    return body


@pytest.mark.parametrize("provider", ["openai", "gemini"])
@pytest.mark.parametrize("path, body", [
    ("enhance-prompt", {"prompt": "a mountain lake"}),
    ("adapt-background-prompt", {"audience": "families", "location": "Kyoto"}),
    ("generate-background-prompt", {"audience": "young adults", "location": "Lisbon"}),
    ("generate-image-prompt", {"audience": "professionals", "location": "Berlin"}),
    ("adapt-subject-prompt", {"subject": "a bicycle", "audience": "children", "location": "Amsterdam"}),
    ("generate-subject-pose-prompt", {"subject": "a ballet dancer"}),
])
def test_every_prompt_helper_answers_for_both_providers(tc: Client, provider: str, path: str, body: dict):
    doc = result(tc.http.post(f"{P}/{path}", json={**body, "model_provider": provider, "temperature": 0}))
    assert isinstance(doc["text"], str) and len(doc["text"]) > 10
    assert doc["provider"] == provider and doc["model"] and doc["temperature"] == 0
    assert set(doc["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert doc["credit_cost"] == 1 and doc["expires_at"]


def test_temperature_zero_gives_the_same_text_twice(tc: Client):
    body = {"prompt": "an old lighthouse at dusk", "temperature": 0, "model_provider": "openai"}
    first = result(tc.http.post(f"{P}/enhance-prompt", json=body))
    second = result(tc.http.post(f"{P}/enhance-prompt", json=body))
    assert first["text"] == second["text"] and first["request_id"] != second["request_id"]


def test_invalid_prompt_requests_are_422(tc: Client):
    assert tc.http.post(f"{P}/enhance-prompt", json={"prompt": "ab"}).status_code == 422
    assert tc.http.post(f"{P}/enhance-prompt", json={"prompt": "a cat", "temperature": 2.5}).status_code == 422
    bad = tc.http.post(f"{P}/enhance-prompt", json={"prompt": "a cat", "model_provider": "claude"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "model_provider"]


def test_upstream_errors_are_classified(tc: Client, system: System):
    system.sim("POST", "/openai/_sim/faults", json=[{"on": "submit", "kind": "429", "retry_after": 0.2}]).raise_for_status()
    assert result(tc.http.post(f"{P}/enhance-prompt", json={"prompt": "after a pause"}))["text"]
    system.sim("POST", "/google/_sim/faults", json=[{"on": "submit", "kind": "error", "code": "SAFETY"}]).raise_for_status()
    blocked = tc.http.post(f"{P}/enhance-prompt", json={"prompt": "refused", "model_provider": "gemini"})
    assert blocked.status_code == 422 and blocked.json()["error"]["code"] == "content_moderated", blocked.text


def landscape(colour=(20, 60, 200)) -> Image.Image:
    return Image.new("RGB", (640, 360), colour)


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_image_caption_describes_the_real_image(tc: Client, files, provider: str):
    url = files.image(f"blue-{provider}.png", landscape())
    doc = result(tc.http.post(f"{C}/image", json={"image_url": url, "possible_tags": None,
                                                  "model_provider": provider, "mode": "expert"}))
    text = doc["text"].lower()
    assert "640" in text and "360" in text and "landscape" in text and "blue" in text, text
    assert doc["mode"] == "expert" and doc["provider"] == provider


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_image_tagging_picks_from_the_allowed_tags(tc: Client, files, provider: str):
    url = files.image(f"red-{provider}.png", Image.new("RGB", (300, 500), (220, 30, 30)))
    allowed = ["red", "green", "portrait", "landscape", "night"]
    doc = result(tc.http.post(f"{C}/image", json={"image_url": url, "mode": "image_tagging", "nbr_tags": 2,
                                                  "possible_tags": allowed, "model_provider": provider}))
    assert 1 <= len(doc["tags"]) <= 2 and set(doc["tags"]) <= set(allowed), doc


def test_caption_of_a_url_that_is_not_an_image_is_the_clients_fault(tc: Client, files):
    url = files.put("words.png", b"no pixels here", "image/png")
    resp = tc.http.post(f"{C}/image", json={"image_url": url, "possible_tags": None})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "not_an_image", resp.text


def test_video_caption_from_sampled_frames(tc: Client, files):
    from providers.bria.simulator.video import make_test_video

    url = files.put("clip.mp4", make_test_video(), "video/mp4")
    doc = result(tc.http.post(f"{C}/video", json={"video_url": url, "mode": "simple"}))
    assert doc["provider"] == "gemini" and doc["text"]
    tags = result(tc.http.post(f"{C}/video", json={"video_url": url, "mode": "tagging", "nbr_tags": 3}))
    assert 1 <= len(tags["tags"]) <= 3
    segments = result(tc.http.post(f"{C}/video", json={"video_url": url, "mode": "segment_timestamps"}))
    assert isinstance(segments["segments"], list)
