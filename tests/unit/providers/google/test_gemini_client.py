"""GeminiClient against the Google simulator over real sockets: text, captions of real media,
JSON answers, determinism, and every fault classified into the port's three error classes."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from providers.base import Permanent, RateLimited, Retryable
from providers.google.gemini import GeminiClient, file_part, image_part, text_part, video_part
from providers.google.settings import GoogleSettings
from tests.unit.providers.google.helpers import add_faults, png, png_header, video

SYSTEM = "You write prompts for an image generator."
TAGS_SCHEMA = {
    "type": "OBJECT",
    "properties": {"tags": {"type": "ARRAY", "minItems": 1, "maxItems": 4,
                            "items": {"type": "STRING", "enum": ["cat", "red", "blue", "green", "white",
                                                                 "portrait", "landscape", "square"]}}},
    "required": ["tags"],
}


def generate(settings: GoogleSettings, **kwargs) -> dict:
    async def run() -> dict:
        async with GeminiClient(settings) as client:
            return await client.generate_text(**{"system": None, "temperature": 0.0, **kwargs})

    return asyncio.run(run())


def fails(settings: GoogleSettings, **kwargs) -> Exception:
    with pytest.raises((Permanent, Retryable, RateLimited)) as info:
        generate(settings, **{"parts": [text_part("Improve this prompt: a lighthouse")], **kwargs})
    return info.value


# --------------------------------------------------------------------------- answers
def test_text_prompt_answer_has_usage_model_and_finish_reason(settings, sim):
    result = generate(settings, system=SYSTEM, parts=[text_part("Improve this prompt: a lighthouse at dusk")],
                      temperature=0.7)
    assert result["text"].startswith("A lighthouse at dusk, ")
    assert result["model"] == "gemini-2.5-flash"
    assert result["finish_reason"] == "STOP"
    usage = result["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    path = httpx.get(f"{sim}/_sim/stats").json()["last_path"]
    assert path == ("/v1/projects/test-project/locations/europe-west4/publishers/google/models/"
                    "gemini-2.5-flash:generateContent")


def test_plain_strings_are_text_parts_and_the_model_can_be_overridden(settings):
    result = generate(settings, parts=["Improve this prompt: a red kite"], model="gemini-2.5-pro")
    assert "red kite" in result["text"].lower() and result["model"] == "gemini-2.5-pro"


def test_temperature_zero_is_deterministic_and_other_temperatures_vary(settings):
    parts = [text_part("Improve this prompt: a quiet harbour with fishing boats")]
    first = generate(settings, parts=parts, temperature=0)
    assert generate(settings, parts=parts, temperature=0)["text"] == first["text"]
    warm = {generate(settings, parts=parts, temperature=t)["text"] for t in (0.3, 0.9, 1.4, 1.9)}
    assert len(warm) > 1  # a different temperature gives a different answer …
    assert generate(settings, parts=parts, temperature=0.9)["text"] in warm  # … the same one again


def test_image_caption_describes_the_real_image(settings):
    landscape = generate(settings, parts=[text_part("Describe this image."),
                                          image_part(png((640, 360), (20, 40, 200), accent=(250, 250, 250)), "image/png")])
    text = landscape["text"]
    assert "landscape" in text and "640x360" in text and "mostly blue with white" in text
    assert landscape["usage"]["prompt_tokens"] >= 258  # an image counts as 258 tokens
    portrait = generate(settings, parts=[image_part(png((300, 500), (210, 30, 30)), "image/png")])["text"]
    assert "portrait" in portrait and "300x500" in portrait and "mostly red" in portrait
    square = generate(settings, parts=[image_part(png((128, 128), (40, 180, 60)), "image/png")])["text"]
    assert "square" in square and "green" in square


@pytest.mark.parametrize("fmt,codec,mime", [("mp4", "libx264", "video/mp4"), ("webm", "libvpx-vp9", "video/webm")])
def test_video_caption_describes_duration_frames_and_size(settings, fmt, codec, mime):
    clip = video(frames=24, size=(64, 96), rate=12, fmt=fmt, codec=codec)
    text = generate(settings, parts=[text_part("Describe this video."), video_part(clip, mime)])["text"]
    assert "2.0-second" in text and "portrait" in text and "64x96" in text
    assert "24 frames at 12 fps" in text and "blue" in text
    assert "the picture changes over time" in text


def test_file_references_are_acknowledged(settings):
    text = generate(settings, parts=[text_part("Describe"), video_part(uri="gs://bucket/clip.mp4")])["text"]
    assert "gs://bucket/clip.mp4" in text
    assert file_part("gs://b/x.png", "image/png") == {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/x.png"}}
    with pytest.raises(ValueError):
        video_part()


def test_json_tags_pick_from_the_enum_what_the_image_shows(settings):
    image = png((300, 500), (210, 30, 30), accent=(240, 240, 240))
    result = generate(settings, parts=[text_part("Tag this image."), image_part(image, "image/png")],
                      response_schema=TAGS_SCHEMA)
    tags = result["json"]["tags"]
    assert result["text"].startswith("{") and tags == ["red", "white", "portrait"]
    assert set(tags) <= set(TAGS_SCHEMA["properties"]["tags"]["items"]["enum"])


def test_json_tags_without_an_enum_respect_the_item_count(settings):
    schema = {"type": "OBJECT", "properties": {
        "caption": {"type": "STRING"},
        "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 7, "maxItems": 7}}}
    result = generate(settings, parts=[image_part(png((200, 100), (20, 40, 200)), "image/png")],
                      response_schema=schema)["json"]
    assert "200x100" in result["caption"]
    assert len(result["tags"]) == 7 == len(set(result["tags"])) and result["tags"][:2] == ["blue", "landscape"]


# --------------------------------------------------------------------------- faults
def test_429_is_rate_limited_with_retry_after(settings, sim):
    add_faults(sim, {"on": "submit", "kind": "429", "retry_after": 7})
    error = fails(settings)
    assert isinstance(error, RateLimited) and error.retry_after == 7 and error.http_status == 429
    add_faults(sim, {"on": "submit", "kind": "429"})
    error = fails(settings)
    assert isinstance(error, RateLimited) and error.retry_after is None
    assert generate(settings, parts=["Improve this prompt: a lighthouse"])["text"]  # rules are used up


@pytest.mark.parametrize("kind,code", [("500", "internal"), ("503", "unavailable")])
def test_5xx_is_retryable(settings, sim, kind, code):
    add_faults(sim, {"on": "submit", "kind": kind})
    error = fails(settings)
    assert isinstance(error, Retryable) and error.http_status == int(kind) and error.code == code


def test_timeout_is_retryable(settings, sim):
    add_faults(sim, {"on": "submit", "kind": "timeout", "delay": 2})
    error = fails(settings.model_copy(update={"timeout_seconds": 0.5}))
    assert isinstance(error, Retryable) and error.code == "upstream_timeout"


def test_connection_refused_is_retryable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    error = fails(GoogleSettings(vertex_base_url=f"http://127.0.0.1:{port}", timeout_seconds=2))
    assert isinstance(error, Retryable) and error.code == "upstream_unavailable"


def test_error_fault_is_permanent_with_googles_status(settings, sim):
    add_faults(sim, {"on": "submit", "kind": "error", "message": "Unsupported field: foo"},
               {"on": "submit", "kind": "error", "code": "PERMISSION_DENIED", "message": "no access"})
    error = fails(settings)
    assert isinstance(error, Permanent) and error.code == "invalid_argument" and error.http_status == 400
    assert error.message == "Unsupported field: foo"
    error = fails(settings)
    assert isinstance(error, Permanent) and error.code == "permission_denied" and error.http_status == 403


@pytest.mark.parametrize("code", ["SAFETY", "PROHIBITED_CONTENT", "prompt:SAFETY"])
def test_safety_blocks_are_content_moderated(settings, sim, code):
    add_faults(sim, {"on": "submit", "kind": "error", "code": code})
    error = fails(settings)
    assert isinstance(error, Permanent) and error.code == "content_moderated"
    assert code.split(":")[-1] in error.message


def test_an_answer_without_candidates_is_retryable(settings, sim):
    add_faults(sim, {"on": "submit", "kind": "unknown"})
    error = fails(settings)
    assert isinstance(error, Retryable) and error.code == "upstream_empty_response"


def test_faults_can_match_one_request(settings, sim):
    add_faults(sim, {"on": "submit", "kind": "503", "match": "volcano"})
    assert generate(settings, parts=["Improve this prompt: a lighthouse"])["text"]
    assert isinstance(fails(settings, parts=["Improve this prompt: a volcano"]), Retryable)


def test_wrong_token_and_bad_requests_are_permanent(settings):
    error = fails(settings.model_copy(update={"access_token": "wrong"}))
    assert isinstance(error, Permanent) and error.code == "unauthenticated" and error.http_status == 401
    error = fails(settings, temperature=3)
    assert isinstance(error, Permanent) and error.code == "invalid_argument" and "temperature" in error.message
    error = fails(settings, model="imagen-3.0-generate-002")
    assert isinstance(error, Permanent) and error.code == "not_found"


def test_images_over_25_megapixels_are_refused_from_the_header(settings):
    error = fails(settings, parts=[image_part(png_header(6000, 5000), "image/png")])
    assert isinstance(error, Permanent) and error.code == "invalid_argument" and "30.0 MP" in error.message
    error = fails(settings, parts=[image_part(b"not an image", "image/png")])
    assert isinstance(error, Permanent) and error.code == "invalid_argument"


def test_token_provider_is_called_per_request(settings):
    tokens: list[str] = []

    async def provide() -> str:
        tokens.append("issued")
        return "sim-secret-token"

    async def run() -> None:
        async with GeminiClient(settings.model_copy(update={"access_token": "wrong"}),
                                token_provider=provide) as client:
            for _ in range(2):
                await client.generate_text(system=None, parts=["Improve this prompt: a bridge"], temperature=0)

    asyncio.run(run())
    assert tokens == ["issued", "issued"]


def test_client_in_process_through_an_asgi_transport():
    from providers.google.simulator import create_app

    async def run() -> dict:
        transport = httpx.ASGITransport(app=create_app(latency_seconds=0))
        async with GeminiClient(GoogleSettings(vertex_base_url=""), transport=transport) as client:
            return await client.generate_text(system=SYSTEM, parts=["Improve this prompt: a fox"], temperature=0)

    assert "fox" in asyncio.run(run())["text"].lower()
    with pytest.raises(ValueError):
        GeminiClient(GoogleSettings(vertex_base_url=""))
