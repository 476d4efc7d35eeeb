"""Bria's wire client: how an upstream answer is classified (RateLimited with Retry-After,
Retryable, Permanent with Bria's message), the token sent to Bria's origin only, and answers
that finish at submit.
"""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from providers.base import Finished, Output, Permanent, RateLimited, Retryable
from providers.bria.client import parse_retry_after, to_upstream_error
from providers.bria.operations import OPERATIONS
from providers.bria.provider import BriaProvider
from tests.sim_server import Canned, CannedServer

GENERATE = next(op for op in OPERATIONS if op.name == "bria.generate_image")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# =========================================================================== classification
def _response(status: int, body=None, headers=None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://engine.prod.bria-api.com/v2/image/generate")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_429_with_retry_after_seconds():
    error = to_upstream_error(_response(429, {"error": {"code": 429, "message": "Too Many Requests"}}, {"Retry-After": "7"}))
    assert type(error) is RateLimited
    assert error.retry_after == 7.0
    assert error.http_status == 429
    assert "Too Many Requests" in error.message


def test_429_with_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = to_upstream_error(_response(429, {"message": "slow down"}, {"Retry-After": when}))
    assert type(error) is RateLimited
    assert 27 <= error.retry_after <= 31


@pytest.mark.parametrize("header", [None, "", "soon", "-5"])
def test_429_without_usable_retry_after(header):
    headers = {"Retry-After": header} if header is not None else None
    error = to_upstream_error(_response(429, {"message": "rate limited"}, headers))
    assert type(error) is RateLimited
    assert error.retry_after is None
    assert error.http_status == 429


def test_parse_retry_after_forms():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 + 60) == 0.0  # in the past
    assert parse_retry_after(None) is None
    assert parse_retry_after("later") is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retryable(status):
    error = to_upstream_error(_response(status, {"error": {"code": status, "message": "boom", "details": "x"}}))
    assert type(error) is Retryable
    assert error.http_status == status
    assert error.code == f"upstream_{status}"
    assert "boom" in error.message


def test_server_error_with_html_body_is_retryable():
    error = to_upstream_error(_response(502, text="<html>Bad Gateway</html>"))
    assert type(error) is Retryable
    assert error.http_status == 502


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.PoolTimeout("pool exhausted"),
    ],
)
def test_timeouts_are_retryable(exc):
    error = to_upstream_error(exc)
    assert type(error) is Retryable
    assert error.code == "upstream_timeout"


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_transport_errors_are_retryable(exc):
    error = to_upstream_error(exc)
    assert type(error) is Retryable
    assert error.code == "upstream_unavailable"


@pytest.mark.parametrize(
    "status, body, code, message_parts",
    [
        # Bria's own shape (status ERROR bodies and the SDK contract)
        (400, {"error": {"code": 400, "message": "Invalid aspect ratio", "details": "use 1:1"}}, "upstream_400", ["Invalid aspect ratio", "use 1:1"]),
        (422, {"error": {"code": "content_moderation", "message": "Prompt flagged"}}, "content_moderation", ["Prompt flagged"]),
        (401, {"message": "Unauthorized"}, "upstream_401", ["Unauthorized"]),
        (403, {"error": "forbidden", "message": "Plan does not include this endpoint"}, "upstream_403", ["Plan does not include"]),
        (404, {"detail": "Not Found"}, "upstream_404", ["Not Found"]),
        (422, {"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]}, "upstream_422", ["prompt: Field required"]),
        (400, {"code": "bad_seed", "message": "seed out of range"}, "bad_seed", ["seed out of range"]),
    ],
)
def test_other_4xx_are_permanent_with_upstream_message(status, body, code, message_parts):
    error = to_upstream_error(_response(status, body))
    assert type(error) is Permanent
    assert error.code == code
    assert error.http_status == status
    for part in message_parts:
        assert part in error.message


def test_4xx_with_plain_text_or_empty_body():
    text_error = to_upstream_error(_response(403, text="Access denied by WAF"))
    assert type(text_error) is Permanent and "Access denied by WAF" in text_error.message
    empty_error = to_upstream_error(_response(400, text=""))
    assert type(empty_error) is Permanent
    assert empty_error.message == "Bad Request"
    assert empty_error.http_status == 400


def test_http_status_error_is_unwrapped():
    response = _response(503, {"message": "maintenance"})
    error = to_upstream_error(httpx.HTTPStatusError("x", request=response.request, response=response))
    assert type(error) is Retryable and error.http_status == 503


# =========================================================================== token scoping, inline results
def test_token_goes_to_bria_only_even_across_redirects():
    with CannedServer({"/cdn/out.png": Canned(200, PNG_MAGIC + b"rest", {"Content-Type": "image/png"})}) as cdn:
        routes = {"/files/out.png": Canned(302, b"", {"Location": cdn.url + "/cdn/out.png"})}
        with CannedServer(routes) as bria_host:
            provider = BriaProvider(bria_host.url, api_token="secret-token", timeout=5.0)
            try:
                data, content_type = provider.download(Output(url=bria_host.url + "/files/out.png"))
                assert data == PNG_MAGIC + b"rest" and content_type == "image/png"
                foreign, _ = provider.download(Output(url=cdn.url + "/cdn/out.png"))
                assert foreign == data
            finally:
                provider.close()
        assert bria_host.seen[0][2].get("api_token") == "secret-token"
        assert len(cdn.seen) == 2
        assert all("api_token" not in headers for _, _, headers in cdn.seen)


def test_inline_result_on_submit_is_finished():
    routes = {
        "/v2/image/generate": Canned(
            200, {"request_id": "r1", "result": {"image_url": "https://cdn.example/r1.png", "seed": 5, "prompt": "p"}}
        )
    }
    with CannedServer(routes) as server:
        provider = BriaProvider(server.url, api_token="t", timeout=5.0)
        try:
            outcome = provider.submit(GENERATE, {"prompt": "a red fox", "seed": 5})
        finally:
            provider.close()
    assert isinstance(outcome, Finished)
    assert [o.url for o in outcome.outputs] == ["https://cdn.example/r1.png"]
    assert outcome.meta == {"seed": 5, "prompt": "p"}
    method, path, headers = server.seen[0]
    assert (method, path, headers["api_token"]) == ("POST", "/v2/image/generate", "t")


def test_submit_without_request_id_is_permanent():
    with CannedServer({"/v2/image/generate": Canned(202, {"hello": "world"})}) as server:
        provider = BriaProvider(server.url, api_token="t", timeout=5.0)
        try:
            with pytest.raises(Permanent) as info:
                provider.submit(GENERATE, {"prompt": "a red fox"})
        finally:
            provider.close()
    assert info.value.code == "upstream_bad_response"
