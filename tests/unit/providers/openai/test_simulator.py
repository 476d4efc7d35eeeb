"""The OpenAI simulator's protocol details: auth, OpenAI-shaped 400s, formats, chat answers and
the control API."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from providers.openai.simulator import DEFAULT_LATENCY_SECONDS, LATENCY_ENV, create_app

from .helpers import half_mask, image_bytes, open_image

AUTH = {"Authorization": "Bearer sk-test"}


def post(sim, path, **kwargs):
    headers = {**AUTH, **kwargs.pop("headers", {})}
    return httpx.post(f"{sim.api}{path}", headers=headers, timeout=30, **kwargs)


def assert_openai_error(response, status, param=None, code=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


def edit(sim, fields, files):
    return post(sim, "/images/edits", data=fields, files=files)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}])
def test_calls_need_a_bearer_key(sim, headers):
    response = httpx.post(f"{sim.api}/images/generations", json={"prompt": "p", "model": "gpt-image-1"},
                          headers=headers)
    error = assert_openai_error(response, 401)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("body, param, code", [
    ({"model": "gpt-image-1"}, "prompt", "missing_required_parameter"),
    ({"model": "gpt-image-1", "prompt": "p", "size": "999x999"}, "size", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "n": 11}, "n", "integer_above_max_value"),
    ({"model": "gpt-image-1", "prompt": "p", "quality": "ultra"}, "quality", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": "p", "background": "transparent", "output_format": "jpeg"},
     "background", "invalid_value"),
    ({"prompt": "p"}, "model", "unsupported_model"),
])
def test_generation_requests_are_checked_like_openai(sim, body, param, code):
    assert_openai_error(post(sim, "/images/generations", json=body), 400, param, code)


def test_non_json_body_is_a_400(sim):
    assert_openai_error(post(sim, "/images/generations", content=b"{nope",
                             headers={"Content-Type": "application/json"}), 400)


@pytest.mark.parametrize("fmt, magic", [("jpeg", b"\xff\xd8\xff"), ("webp", b"RIFF")])
def test_output_formats(sim, fmt, magic):
    response = post(sim, "/images/generations", json={"model": "gpt-image-1", "prompt": "p", "output_format": fmt,
                                                       "output_compression": 50})
    body = response.json()
    assert body["output_format"] == fmt and body["size"] == "1024x1024"
    data = base64.b64decode(body["data"][0]["b64_json"])
    assert data.startswith(magic) and open_image(data).size == (1024, 1024)


def test_edit_checks_mask_size_format_and_alpha(sim):
    image = ("in.png", image_bytes((64, 48)), "image/png")
    fields = {"model": "gpt-image-1", "prompt": "p"}
    wrong_size = edit(sim, fields, [("image", image), ("mask", ("m.png", half_mask((32, 32), "RGBA"), "image/png"))])
    assert "does not match" in assert_openai_error(wrong_size, 400, "mask")["message"]
    jpeg_mask = edit(sim, fields, [("image", image),
                                   ("mask", ("m.jpg", image_bytes((64, 48), fmt="JPEG"), "image/jpeg"))])
    assert "PNG" in assert_openai_error(jpeg_mask, 400, "mask")["message"]
    no_alpha = edit(sim, fields, [("image", image), ("mask", ("m.png", half_mask((64, 48), "L"), "image/png"))])
    assert "alpha" in assert_openai_error(no_alpha, 400, "mask")["message"]
    good = edit(sim, fields, [("image", image), ("mask", ("m.png", half_mask((64, 48), "RGBA"), "image/png"))])
    assert good.status_code == 200 and good.json()["size"] == "64x48"


def test_edit_needs_prompt_and_image_and_supported_formats(sim):
    image = ("in.png", image_bytes(), "image/png")
    assert_openai_error(edit(sim, {"model": "gpt-image-1"}, [("image", image)]), 400, "prompt")
    assert_openai_error(edit(sim, {"model": "gpt-image-1", "prompt": "p", "x": "1"}, []), 400, "image")
    gif = ("in.gif", image_bytes(fmt="GIF"), "image/gif")
    assert_openai_error(edit(sim, {"model": "gpt-image-1", "prompt": "p"}, [("image", gif)]), 400, "image",
                        "unsupported_file_mimetype")


def test_edit_accepts_image_brackets_parts_and_keeps_transparency(sim):
    clear = image_bytes((40, 40), (0, 0, 0, 0), "RGBA")
    response = edit(sim, {"model": "gpt-image-1", "prompt": "p"},
                    [("image[]", ("a.png", clear, "image/png")), ("image[]", ("b.png", image_bytes(), "image/png"))])
    assert response.status_code == 200
    img = open_image(base64.b64decode(response.json()["data"][0]["b64_json"]))
    assert img.size == (40, 40) and img.mode == "RGBA"
    assert response.json()["usage"]["input_tokens_details"]["image_tokens"] > 0


def chat(sim, messages, **extra):
    response = post(sim, "/chat/completions", json={"model": "gpt-4o-mini", "messages": messages, **extra})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    return body["choices"][0]["message"]["content"]


def test_chat_is_deterministic_at_temperature_zero_only(sim):
    messages = [{"role": "system", "content": "You write prompts."}, {"role": "user", "content": "A quiet harbour"}]
    assert chat(sim, messages, temperature=0) == chat(sim, messages, temperature=0)
    varied = {chat(sim, messages, temperature=1.5) for _ in range(8)}
    assert len(varied) > 1 and all(text.startswith("A quiet harbour") for text in varied)


def test_chat_describes_images_by_their_content_and_urls_as_urls(sim):
    portrait = base64.b64encode(image_bytes((100, 300), (250, 220, 40), fmt="JPEG")).decode()
    text = chat(sim, [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{portrait}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}], temperature=0)
    assert "portrait JPEG image of 100x300 pixels" in text and "yellow" in text
    assert "https://example.com/cat.jpg" in text


def test_chat_json_schema_with_enum_tags_and_other_fields(sim):
    schema = {"type": "object", "required": ["caption", "tags", "count"], "properties": {
        "caption": {"type": "string"},
        "tags": {"type": "array", "minItems": 3, "maxItems": 3,
                 "items": {"type": "string", "enum": ["green", "square", "night", "city", "dog"]}},
        "count": {"type": "integer", "minimum": 1}}}
    picture = base64.b64encode(image_bytes((50, 50), (40, 170, 60))).decode()
    content = chat(sim, [{"role": "user", "content": [
        {"type": "text", "text": "Tag this image."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{picture}"}}]}], temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "tags", "schema": schema, "strict": True}})
    answer = json.loads(content)
    assert set(answer) == {"caption", "tags", "count"} and answer["count"] == 1
    assert len(answer["tags"]) == 3 and {"green", "square"} <= set(answer["tags"])
    assert set(answer["tags"]) <= {"green", "square", "night", "city", "dog"}


def test_chat_errors(sim):
    assert_openai_error(post(sim, "/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}), 400)
    assert_openai_error(post(sim, "/chat/completions", json={"model": "m"}), 400, "messages")
    assert_openai_error(post(sim, "/chat/completions", json={"model": "m", "temperature": 3,
                                                              "messages": [{"role": "user", "content": "x"}]}),
                        400, "temperature")
    broken = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    bad_image = [{"role": "user", "content": [broken]}]
    assert_openai_error(post(sim, "/chat/completions", json={"model": "m", "messages": bad_image}), 400,
                        code="invalid_image_format")


def test_fault_rules_match_and_are_consumed(sim):
    sim.faults({"kind": "503", "match": "chat/completions", "times": 2})
    assert sim.control("GET", "faults")["pending"][0]["times"] == 2
    ok = post(sim, "/images/generations", json={"model": "gpt-image-1", "prompt": "p"})
    assert ok.status_code == 200
    messages = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert [post(sim, "/chat/completions", json=messages).status_code for _ in range(3)] == [503, 503, 200]
    assert sim.control("GET", "faults")["pending"] == []


def test_429_headers(sim):
    sim.faults({"kind": "429", "retry_after": 1.5, "reset_tokens": "6m0s"})
    response = post(sim, "/images/generations", json={"model": "gpt-image-1", "prompt": "p"})
    error = assert_openai_error(response, 429, code="rate_limit_exceeded")
    assert error["type"] == "requests"
    assert response.headers["retry-after"] == "1.5" and response.headers["retry-after-ms"] == "1500"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-tokens"] == "6m0s"


def test_stats_config_and_reset(sim):
    assert sim.control("POST", "config", {"latency_seconds": 0.05}) == {"latency_seconds": 0.05}
    post(sim, "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    stats = sim.stats()
    assert stats["chat"] == 1 and stats["generations"] == 0 and stats["max_in_flight"] >= 1
    assert stats["latency_seconds"] == 0.05
    sim.faults({"kind": "500"})
    after = sim.control("POST", "reset")
    assert after["chat"] == 0 and after["latency_seconds"] == 0.0
    assert sim.control("GET", "faults")["pending"] == []
    with pytest.raises(httpx.HTTPStatusError):
        sim.control("POST", "config", {"latency_seconds": -1})


def test_default_latency_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(LATENCY_ENV, "2.5")
    assert create_app().state.sim.latency == 2.5
    monkeypatch.delenv(LATENCY_ENV)
    assert create_app().state.sim.latency == DEFAULT_LATENCY_SECONDS == 1.0


def test_malformed_multipart_is_an_openai_400(sim):
    response = post(sim, "/images/edits", content=b"--x\r\nnonsense",
                    headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert_openai_error(response, 400)
