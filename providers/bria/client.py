"""HTTP plumbing for Bria API v2: one pooled client, auth scoping, error classification.

Kept apart from ``provider.py`` (which maps Bria's JSON onto the provider port) so the rules
that decide *what to do about a failure* live in one function, ``to_upstream_error``, and can be
unit-tested without a network.

Bria facts used here (docs.bria.ai "Rate limits and errors", "Async requests", Bria-AI/bria-client
``contract/fixtures``): auth is the ``api_token`` header; 429 means over the per-minute limit
(status polls count too) and clients should honour ``Retry-After`` when present; error bodies are
``{"error": {"code", "message", "details"}}``, and when no such body exists the SDK falls back to
the reason phrase and raw text. Gateways in front of Bria may also answer ``{"message": …}`` or
FastAPI-style ``{"detail": …}``, so those are read too.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from providers.base import (Permanent, RateLimited, Retryable, UpstreamError, maybe_delivered,
                            parse_retry_after)

USER_AGENT = "visiongate-bria/0.1"
MAX_REDIRECTS = 5
_ERROR_BODY_PEEK = 64 * 1024  # never read more than this of an error body


# --------------------------------------------------------------------------- classification


def error_fields(response: httpx.Response) -> tuple[Any, str | None, Any]:
    """``(code, message, details)`` from whichever error body shape the upstream used."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return None, None, text[:500] or None
    if not isinstance(body, dict):
        return None, None, body
    error = body.get("error")
    if isinstance(error, dict):
        return error.get("code"), _text(error.get("message")), error.get("details")
    if isinstance(error, str):
        return body.get("code"), _text(body.get("message")) or error, body.get("details")
    if "message" in body:
        return body.get("code"), _text(body.get("message")), body.get("details")
    detail = body.get("detail")
    if isinstance(detail, str):
        return body.get("code"), detail, None
    if isinstance(detail, list):  # FastAPI/pydantic validation errors
        parts = [_validation_item(item) for item in detail]
        return body.get("code"), "; ".join(p for p in parts if p) or None, detail
    return None, None, body


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _validation_item(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    loc = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
    return f"{loc}: {item.get('msg')}" if loc else str(item.get("msg"))


def _code(upstream_code: Any, http_status: int) -> str:
    """The upstream's own code when it is symbolic, else ``upstream_<http status>``."""
    if isinstance(upstream_code, str) and upstream_code.strip() and not upstream_code.strip().isdigit():
        return upstream_code.strip()
    return f"upstream_{http_status}"


def to_upstream_error(source: httpx.Response | httpx.HTTPError) -> UpstreamError:
    """Classify a failed exchange with Bria as RateLimited, Retryable or Permanent.

    * HTTP 429 → ``RateLimited`` with ``retry_after`` from the ``Retry-After`` header.
    * HTTP 5xx and 408, timeouts, connection/transport errors → ``Retryable``.
    * any other 4xx → ``Permanent`` with the upstream's message and code.
    """
    if isinstance(source, httpx.HTTPStatusError):
        source = source.response
    if isinstance(source, httpx.Response):
        return _classify_response(source)
    if isinstance(source, httpx.TimeoutException):
        return Retryable(f"Bria did not answer in time ({type(source).__name__})", code="upstream_timeout",
                         maybe_sent=maybe_delivered(source))
    if isinstance(source, httpx.UnsupportedProtocol):
        return Permanent(f"unsupported upstream URL: {source}", code="upstream_bad_url")
    if isinstance(source, (httpx.TransportError, httpx.DecodingError)):
        return Retryable(f"could not reach Bria: {type(source).__name__}: {source}", code="upstream_unavailable",
                         maybe_sent=maybe_delivered(source))
    return Retryable(f"HTTP error talking to Bria: {type(source).__name__}: {source}", code="upstream_unavailable")


def _classify_response(response: httpx.Response) -> UpstreamError:
    status = response.status_code
    upstream_code, message, details = error_fields(response)
    text = message or response.reason_phrase or f"HTTP {status}"
    if isinstance(details, str) and details and details != text:
        text = f"{text}: {details}"
    if status == 429:
        return RateLimited(
            f"Bria rate limit: {text}",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            http_status=status,
        )
    if status >= 500 or status == 408:
        return Retryable(f"Bria is unavailable: {text}", code=f"upstream_{status}", http_status=status)
    return Permanent(text, code=_code(upstream_code, status), http_status=status)


# --------------------------------------------------------------------------- transport
def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with the scheme's default port filled in."""
    parsed = httpx.URL(url)
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host, parsed.port or default


class BriaHttp:
    """A lazily created, keep-alive pooled ``httpx.Client`` that sends ``api_token`` only to Bria.

    Result URLs may point at a CDN or object store; the token must never leak there, including
    via redirects, so redirects are followed by hand and headers are recomputed on every hop.
    """

    def __init__(self, base_url: str, api_token: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = origin(self.base_url)
        self._api_token = api_token
        self._timeout = timeout
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    # -- lifecycle
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self._timeout),
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=30.0),
                    headers={"User-Agent": USER_AGENT},
                    follow_redirects=False,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- helpers
    def is_bria_url(self, url: str | httpx.URL) -> bool:
        return origin(url) == self._origin

    def headers_for(self, url: str | httpx.URL) -> dict[str, str]:
        return {"api_token": self._api_token} if self.is_bria_url(url) else {}

    # -- requests
    def send(self, method: str, url: str, *, json: Any = None, timeout: float | None = None) -> httpx.Response:
        """One request to Bria; transport failures are raised already classified. ``timeout``
        overrides the read timeout (synchronous v1 calls render while the connection is open)."""
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(self._timeout, read=max(timeout, self._timeout))
        try:
            return self.client().request(method, url, json=json, headers=self.headers_for(url), **extra)
        except httpx.HTTPError as exc:
            raise to_upstream_error(exc) from exc

    def download(self, url: str, max_bytes: int) -> tuple[bytes, str | None]:
        """Stream ``url`` into memory, refusing more than ``max_bytes``; returns (bytes, content type)."""
        try:
            for _ in range(MAX_REDIRECTS + 1):
                with self.client().stream("GET", url, headers=self.headers_for(url)) as response:
                    if response.is_redirect:
                        url = str(response.url.join(response.headers["Location"]))
                        continue
                    if response.status_code >= 400:
                        raise to_upstream_error(_error_snapshot(response))
                    return _read_capped(response, max_bytes), response.headers.get("Content-Type")
        except httpx.HTTPError as exc:
            raise to_upstream_error(exc) from exc
        raise Permanent(f"more than {MAX_REDIRECTS} redirects downloading {url}", code="upstream_bad_redirect")


def _error_snapshot(response: httpx.Response) -> httpx.Response:
    """A fully read copy of a streamed error response, keeping at most 64 KiB of its body."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _ERROR_BODY_PEEK:
            break
    # iter_bytes() already decoded the body, so drop the headers describing the wire encoding.
    skip = {"content-encoding", "content-length", "transfer-encoding"}
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in skip]
    return httpx.Response(
        response.status_code, headers=headers, content=b"".join(chunks)[:_ERROR_BODY_PEEK], request=response.request
    )


def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    too_large = Permanent(
        f"upstream output exceeds the {max_bytes}-byte download limit",
        code="output_too_large",
        http_status=response.status_code,
    )
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    buffer = bytearray()
    for chunk in response.iter_bytes():
        buffer += chunk
        if len(buffer) > max_bytes:
            raise too_large
    return bytes(buffer)
