"""OpenAIClient without a network: error classification, rate-limit headers, the wire layout."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from providers.base import Permanent, RateLimited, Retryable
from providers.openai.client import (
    OpenAIClient,
    parse_duration,
    retry_after_seconds,
    to_upstream_error,
)

from .helpers import run


def error_response(status: int, code: str | None = None, message: str = "boom", kind: str = "invalid_request_error",
                   headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize("text, seconds", [
    ("6m0s", 360.0), ("12ms", 0.012), ("1s", 1.0), ("1.5s", 1.5), ("1h2m3s", 3723.0), ("20", 20.0),
    ("", None), (None, None), ("soon", None), ("5x", None), ("-1", None),
])
def test_parse_duration_reads_openai_reset_values(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_prefers_ms_then_seconds_then_date_then_ratelimit_resets():
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert retry_after_seconds(httpx.Headers({"retry-after": "7"})) == 7.0
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_seconds(httpx.Headers({"retry-after": when})) <= 31
    exhausted_tokens = httpx.Headers({"x-ratelimit-remaining-requests": "12", "x-ratelimit-reset-requests": "2s",
                                      "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"})
    assert retry_after_seconds(exhausted_tokens) == 360.0
    exhausted_requests = httpx.Headers({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "12ms",
                                        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"})
    assert retry_after_seconds(exhausted_requests) == pytest.approx(0.012)
    neither = httpx.Headers({"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "1m0s"})
    assert retry_after_seconds(neither) == 60.0
    assert retry_after_seconds(httpx.Headers({})) is None


def test_429_is_rate_limited_with_retry_after():
    error = to_upstream_error(error_response(429, "rate_limit_exceeded", kind="requests",
                                             headers={"retry-after-ms": "250"}))
    assert isinstance(error, RateLimited)
    assert error.retry_after == 0.25 and error.http_status == 429


def test_429_insufficient_quota_is_permanent():
    error = to_upstream_error(error_response(429, "insufficient_quota", "You exceeded your current quota",
                                             kind="insufficient_quota"))
    assert isinstance(error, Permanent) and error.code == "insufficient_quota"


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504])
def test_server_side_statuses_are_retryable(status):
    error = to_upstream_error(error_response(status, kind="server_error"))
    assert isinstance(error, Retryable)
    assert error.code == f"upstream_{status}" and error.http_status == status


@pytest.mark.parametrize("code, kind", [
    ("moderation_blocked", "image_generation_user_error"),
    ("content_policy_violation", "invalid_request_error"),
    (None, "content_policy_violation"),
])
def test_safety_refusals_are_permanent_content_moderated(code, kind):
    error = to_upstream_error(error_response(400, code, "Your request was rejected by our safety system", kind))
    assert isinstance(error, Permanent)
    assert error.code == "content_moderated" and error.http_status == 400
    assert "safety system" in error.message


def test_other_4xx_keep_openai_code_and_message():
    error = to_upstream_error(error_response(400, "invalid_value", "Invalid value: 'x'."))
    assert isinstance(error, Permanent)
    assert (error.code, error.message, error.http_status) == ("invalid_value", "Invalid value: 'x'.", 400)
    without_code = to_upstream_error(error_response(401, None, "Incorrect API key provided"))
    assert isinstance(without_code, Permanent) and without_code.code == "upstream_401"
    plain = to_upstream_error(httpx.Response(404, text="not here"))
    assert isinstance(plain, Permanent) and plain.code == "upstream_404" and plain.message == "not here"


def test_transport_failures_are_retryable():
    request = httpx.Request("POST", "http://upstream/v1/images/generations")
    timeout = to_upstream_error(httpx.ReadTimeout("slow", request=request))
    assert isinstance(timeout, Retryable) and timeout.code == "upstream_timeout"
    refused = to_upstream_error(httpx.ConnectError("refused", request=request))
    assert isinstance(refused, Retryable) and refused.code == "upstream_unavailable"
    bad_url = to_upstream_error(httpx.UnsupportedProtocol("ftp"))
    assert isinstance(bad_url, Permanent)


def _recording_client(seen: list[httpx.Request], answer: httpx.Response | None = None) -> OpenAIClient:
    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return answer or httpx.Response(200, json={"created": 1, "data": []})

    return OpenAIClient("http://upstream/v1", "sk-abc", 5.0, organization="org-1", project="proj-1",
                        transport=httpx.MockTransport(handler))


def _part_names(request: httpx.Request) -> list[str]:
    body = request.content.decode("latin-1")
    return [chunk.split('"')[0] for chunk in body.split('Content-Disposition: form-data; name="')[1:]]


def test_client_sends_auth_headers_and_json():
    seen: list[httpx.Request] = []

    async def go():
        client = _recording_client(seen)
        await client.images_generate({"model": "gpt-image-1", "prompt": "p"})
        await client.chat({"model": "m", "messages": []})
        await client.aclose()

    run(go())
    first = seen[0]
    assert str(first.url) == "http://upstream/v1/images/generations"
    assert first.headers["authorization"] == "Bearer sk-abc"
    assert first.headers["openai-organization"] == "org-1" and first.headers["openai-project"] == "proj-1"
    assert str(seen[1].url) == "http://upstream/v1/chat/completions"


def test_edit_multipart_uses_image_for_one_file_and_image_brackets_for_several():
    seen: list[httpx.Request] = []
    png = ("a.png", b"\x89PNG\r\n\x1a\nfake", "image/png")

    async def go():
        client = _recording_client(seen)
        await client.images_edit({"prompt": "p", "n": 2, "stream": False, "size": None}, [png])
        await client.images_edit({"prompt": "p"}, [png, png], ("mask.png", b"mask", "image/png"))
        await client.aclose()

    run(go())
    one, several = seen
    assert one.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert sorted(_part_names(one)) == ["image", "n", "prompt", "stream"]
    assert b'name="stream"\r\n\r\nfalse' in one.content and b'name="n"\r\n\r\n2' in one.content
    assert _part_names(several).count("image[]") == 2 and "mask" in _part_names(several)
    assert b'filename="mask.png"' in several.content


def test_error_answers_and_bad_bodies_raise_classified():
    async def go(answer):
        client = _recording_client([], answer)
        try:
            return await client.images_generate({})
        finally:
            await client.aclose()

    with pytest.raises(Permanent) as moderated:
        run(go(error_response(400, "moderation_blocked")))
    assert moderated.value.code == "content_moderated"
    with pytest.raises(Retryable) as garbled:
        run(go(httpx.Response(200, text="<html>proxy</html>")))
    assert garbled.value.code == "upstream_bad_response"
