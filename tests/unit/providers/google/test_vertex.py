"""Request building, response parsing, error classification and settings, without a network."""

from __future__ import annotations

import base64

import httpx
import pytest

from providers.base import Permanent, RateLimited, Retryable
from providers.google.gemini import build_request, image_part, parse_response
from providers.google.settings import GoogleSettings, vertex_endpoint
from providers.google.vertex import model_path, model_url, parse_retry_after, to_upstream_error

ENV = ("GOOGLE_VERTEX_BASE_URL", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_ACCESS_TOKEN",
       "GOOGLE_VERTEX_API_VERSION", "GEMINI_TEXT_MODEL", "GOOGLE_TIMEOUT_SECONDS", "GOOGLE_MAX_IN_FLIGHT")


def response(status: int, body: dict | str, headers: dict | None = None) -> httpx.Response:
    kwargs = {"json": body} if isinstance(body, dict) else {"text": body}
    return httpx.Response(status, headers=headers, **kwargs)


def google(status: int, name: str, message: str = "m", details: list | None = None) -> dict:
    return {"error": {"code": status, "message": message, "status": name, **({"details": details} if details else {})}}


# --------------------------------------------------------------------------- URLs and settings
def test_model_paths_follow_the_sdk():
    assert model_url("https://us-central1-aiplatform.googleapis.com/", "v1", "p", "us-central1",
                     "gemini-2.5-flash", "generateContent") == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/"
        "models/gemini-2.5-flash:generateContent")
    assert model_path("p", "l", "meta/llama") == "projects/p/locations/l/publishers/meta/models/llama"
    assert model_path("p", "l", "projects/x/locations/y/endpoints/1") == "projects/x/locations/y/endpoints/1"


def test_vertex_endpoints_by_location():
    assert vertex_endpoint("global") == "https://aiplatform.googleapis.com"
    assert vertex_endpoint("eu") == "https://aiplatform.eu.rep.googleapis.com"
    assert vertex_endpoint("europe-west4") == "https://europe-west4-aiplatform.googleapis.com"


def test_settings_from_the_environment(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    defaults = GoogleSettings(_env_file=None)
    assert defaults.uses_simulator and defaults.base_url() == ""
    assert (defaults.project, defaults.location, defaults.api_version) == ("visiongate-sim", "us-central1", "v1")
    assert defaults.access_token.get_secret_value() == "simulator-token"
    assert "simulator-token" not in repr(defaults)
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", "google")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "asia-northeast1")
    monkeypatch.setenv("GEMINI_TEXT_MODEL", "gemini-2.5-pro")
    monkeypatch.setenv("GOOGLE_MAX_IN_FLIGHT", "3")
    configured = GoogleSettings(_env_file=None)
    assert configured.base_url() == "https://asia-northeast1-aiplatform.googleapis.com"
    assert (configured.gemini_text_model, configured.max_in_flight) == ("gemini-2.5-pro", 3)


# --------------------------------------------------------------------------- request / response
def test_build_request_shape():
    body = build_request(system="Be brief.", parts=["hi", image_part(b"\x89PNG", "image/png")], temperature=0.4,
                         response_schema={"type": "OBJECT"}, max_output_tokens=64)
    assert body == {
        "contents": [{"role": "user", "parts": [
            {"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(b"\x89PNG").decode()}}]}],
        "generationConfig": {"temperature": 0.4, "candidateCount": 1, "maxOutputTokens": 64,
                             "responseMimeType": "application/json", "responseSchema": {"type": "OBJECT"}},
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }
    assert "systemInstruction" not in build_request(system=None, parts=["x"], temperature=0)
    with pytest.raises(ValueError):
        build_request(system=None, parts=[], temperature=0)
    with pytest.raises(ValueError):
        build_request(system=None, parts=[{"text": "a", "fileData": {}}], temperature=0)


def test_parse_response_skips_thoughts_and_counts_their_tokens():
    body = {"candidates": [{"content": {"parts": [{"text": "thinking…", "thought": True}, {"text": "Answer"}]},
                            "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 10,
                              "totalTokenCount": 17},
            "modelVersion": "gemini-2.5-flash-001"}
    assert parse_response(body, requested_model="gemini-2.5-flash") == {
        "text": "Answer", "model": "gemini-2.5-flash-001", "finish_reason": "STOP",
        "usage": {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17}}


@pytest.mark.parametrize("body,error,code", [
    ({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}, Permanent, "content_moderated"),
    ({"candidates": [{"finishReason": "SPII", "content": {}}]}, Permanent, "content_moderated"),
    ({"candidates": [{"finishReason": "MAX_TOKENS", "content": {"parts": []}}]}, Permanent, "upstream_no_text"),
    ({"candidates": [{"finishReason": "STOP", "content": {"parts": [{"text": ""}]}}]}, Retryable,
     "upstream_empty_response"),
    ({"candidates": []}, Retryable, "upstream_empty_response"),
    ([], Retryable, "upstream_bad_response"),
])
def test_parse_response_failures(body, error, code):
    with pytest.raises(error) as info:
        parse_response(body, requested_model="m")
    assert info.value.code == code


def test_a_json_answer_that_does_not_parse_is_retryable():
    body = {"candidates": [{"finishReason": "MAX_TOKENS", "content": {"parts": [{"text": '{"tags": ["a"'}]}}]}
    with pytest.raises(Retryable) as info:
        parse_response(body, requested_model="m", json_expected=True)
    assert info.value.code == "upstream_bad_json"


# --------------------------------------------------------------------------- errors
def test_rate_limits_read_retry_after_or_retry_info():
    retry_info = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"}]
    error = to_upstream_error(response(429, google(429, "RESOURCE_EXHAUSTED", details=retry_info)))
    assert isinstance(error, RateLimited) and error.retry_after == 12.5
    error = to_upstream_error(response(429, google(429, "RESOURCE_EXHAUSTED", details=retry_info), {"Retry-After": "3"}))
    assert error.retry_after == 3
    assert isinstance(to_upstream_error(response(400, google(400, "RESOURCE_EXHAUSTED"))), RateLimited)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("soon") is None and parse_retry_after("-1") is None


@pytest.mark.parametrize("status,body,kind,code", [
    (400, google(400, "INVALID_ARGUMENT", "bad field"), Permanent, "invalid_argument"),
    (403, google(403, "PERMISSION_DENIED"), Permanent, "permission_denied"),
    (400, google(400, "FAILED_PRECONDITION"), Permanent, "failed_precondition"),
    (404, "<html>not found</html>", Permanent, "upstream_404"),
    (500, google(500, "INTERNAL"), Retryable, "internal"),
    (502, "Bad Gateway", Retryable, "upstream_502"),
    (504, google(504, "DEADLINE_EXCEEDED"), Retryable, "deadline_exceeded"),
    (408, "", Retryable, "upstream_408"),
])
def test_http_errors_are_classified(status, body, kind, code):
    error = to_upstream_error(response(status, body))
    assert type(error) is kind and error.code == code and error.http_status == status


def test_transport_errors_are_retryable():
    request = httpx.Request("POST", "http://x")
    assert to_upstream_error(httpx.ReadTimeout("slow", request=request)).code == "upstream_timeout"
    assert isinstance(to_upstream_error(httpx.ConnectError("refused", request=request)), Retryable)
    assert isinstance(to_upstream_error(httpx.UnsupportedProtocol("ftp", request=request)), Permanent)
