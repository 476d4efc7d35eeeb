"""Async HTTP plumbing for the OpenAI API: one pooled ``httpx.AsyncClient``, error classification.

OpenAI's image calls answer only when the images are done (10–60 s), so the worker keeps many
calls open at once on one event loop instead of holding a thread per call.

OpenAI facts used here (official ``openai`` SDK: ``_client.py``, ``_base_client.py``,
``resources/images.py``, ``_utils/_utils.py``):

* auth is ``Authorization: Bearer <key>``, plus optional ``OpenAI-Organization`` and
  ``OpenAI-Project`` headers;
* ``/images/edits`` is multipart/form-data: one input image is the part ``image``, several are
  parts named ``image[]`` (the SDK's "brackets" array format); the mask is the part ``mask``;
  other fields are text parts (numbers as decimal text, booleans as ``true``/``false``);
* error bodies are ``{"error": {"message", "type", "param", "code"}}``;
* the SDK retries 408, 409, 429 and 5xx, honouring ``retry-after-ms`` then ``retry-after``
  (seconds or an HTTP date). 429 answers also carry ``x-ratelimit-remaining-*`` and
  ``x-ratelimit-reset-*`` (durations such as ``6m0s`` or ``12ms``), read here as a fallback;
* a request refused by the safety system is a 400 with code ``moderation_blocked``
  (``content_policy_violation`` for DALL·E models); it is not billed and retrying cannot help;
* a 429 with code ``insufficient_quota`` means the account is out of credit, not a rate limit:
  waiting does not help either.
"""

from __future__ import annotations

import functools
import re
import ssl
from typing import Any

import httpx

from providers.base import (Permanent, RateLimited, Retryable, UpstreamError, maybe_delivered,
                            parse_retry_after)

USER_AGENT = "visiongate-openai/0.1"
CONNECT_TIMEOUT = 10.0
MODERATION_CODE = "content_moderated"

ImageFile = tuple[str, bytes, str]  # (file name, bytes, media type)


# --------------------------------------------------------------------------- classification


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: str | None) -> float | None:
    """OpenAI's reset durations (``6m0s``, ``1.5s``, ``12ms``, ``1h2m3s``) in seconds; a bare
    number is seconds. ``None`` when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
        return seconds if seconds >= 0 else None
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """How long a 429 asks to wait: ``retry-after-ms``, else ``retry-after``, else the reset time
    of the exhausted ``x-ratelimit-*`` budget (requests or tokens; the later of both when
    neither reads 0)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms)
            if value >= 0:
                return value / 1000.0
        except ValueError:
            pass
    seconds = parse_retry_after(headers.get("retry-after"))
    if seconds is not None:
        return seconds
    resets = {kind: parse_duration(headers.get(f"x-ratelimit-reset-{kind}")) for kind in ("requests", "tokens")}
    for kind in ("requests", "tokens"):
        if headers.get(f"x-ratelimit-remaining-{kind}", "").strip() == "0" and resets[kind] is not None:
            return resets[kind]
    known = [value for value in resets.values() if value is not None]
    return max(known) if known else None


def error_fields(response: httpx.Response) -> dict[str, Any]:
    """``{"message", "type", "param", "code"}`` from OpenAI's error body (all ``None`` when the
    body is not that shape; a plain-text body becomes the message)."""
    fields: dict[str, Any] = {"message": None, "type": None, "param": None, "code": None}
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        fields["message"] = text[:500] or None
        return fields
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict):
        for name in fields:
            value = error.get(name)
            fields[name] = value if value is None or isinstance(value, str) else str(value)
    elif isinstance(error, str):
        fields["message"] = error
    return fields


def is_moderation(fields: dict[str, Any]) -> bool:
    code, kind = (fields.get("code") or "").lower(), (fields.get("type") or "").lower()
    return code == "moderation_blocked" or "content_policy" in code or "content_policy" in kind


def to_upstream_error(source: httpx.Response | httpx.HTTPError | Exception) -> UpstreamError:
    """Classify a failed exchange with OpenAI as ``RateLimited``, ``Retryable`` or ``Permanent``.

    * 429 → ``RateLimited`` (``retry_after`` from the headers), except ``insufficient_quota``
      → ``Permanent``;
    * 408, 409, 5xx, timeouts, connection errors → ``Retryable`` (``upstream_timeout``,
      ``upstream_<status>``, ``upstream_unavailable``);
    * a safety-system refusal → ``Permanent`` with code ``content_moderated``;
    * any other 4xx → ``Permanent`` with OpenAI's ``code`` (else ``upstream_<status>``) and
      ``message``.
    """
    if isinstance(source, httpx.HTTPStatusError):
        source = source.response
    if isinstance(source, httpx.Response):
        return _classify_response(source)
    if isinstance(source, httpx.TimeoutException):
        return Retryable(f"OpenAI did not answer in time ({type(source).__name__})", code="upstream_timeout",
                         maybe_sent=maybe_delivered(source))
    if isinstance(source, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return Permanent(f"unsupported upstream URL: {source}", code="upstream_bad_url")
    if isinstance(source, (httpx.TransportError, httpx.DecodingError)):
        return Retryable(f"could not reach OpenAI: {type(source).__name__}: {source}", code="upstream_unavailable",
                         maybe_sent=maybe_delivered(source))
    return Retryable(f"error talking to OpenAI: {type(source).__name__}: {source}", code="upstream_unavailable")


def _classify_response(response: httpx.Response) -> UpstreamError:
    status = response.status_code
    fields = error_fields(response)
    text = fields["message"] or response.reason_phrase or f"HTTP {status}"
    code = fields["code"]
    if status == 429:
        if code == "insufficient_quota" or fields["type"] == "insufficient_quota":
            return Permanent(text, code="insufficient_quota", http_status=status)
        return RateLimited(f"OpenAI rate limit: {text}", retry_after=retry_after_seconds(response.headers),
                           http_status=status)
    if status >= 500 or status in (408, 409):
        return Retryable(f"OpenAI is unavailable: {text}", code=f"upstream_{status}", http_status=status)
    if is_moderation(fields):
        return Permanent(text, code=MODERATION_CODE, http_status=status)
    return Permanent(text, code=code or f"upstream_{status}", http_status=status)


# --------------------------------------------------------------------------- transport
def form_value(value: Any) -> str:
    """A multipart text field as the SDK writes it: booleans ``true``/``false``, else ``str``."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class OpenAIClient:
    """Calls OpenAI's ``/images/generations``, ``/images/edits`` and ``/chat/completions``.

    ``base_url`` is the API root including ``/v1``. Every method returns the decoded JSON answer
    or raises a classified ``UpstreamError``. ``transport`` replaces the network (tests pass an
    ``httpx.ASGITransport`` or ``httpx.MockTransport``).

    Up to ``max_connections`` calls are sent at once; callers bound their concurrency to it (the
    adapter's semaphore), so no call waits for a connection. The connections are spread over
    pools of at most ``SHARD_CONNECTIONS``, each call going to the least busy pool: httpx's pool
    looks at every connection for every queued request, which costs seconds once a single pool
    holds a few hundred busy connections.
    """

    SHARD_CONNECTIONS = 32

    def __init__(self, base_url: str, api_key: str, timeout: float, organization: str | None = None,
                 project: str | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 *, max_connections: int = 64) -> None:
        if not base_url:
            raise ValueError("OpenAIClient needs a base URL (e.g. https://api.openai.com/v1)")
        headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT, "Accept": "application/json"}
        if organization:
            headers["OpenAI-Organization"] = organization
        if project:
            headers["OpenAI-Project"] = project
        self.base_url = base_url.rstrip("/")
        shards = max(1, -(-max_connections // self.SHARD_CONNECTIONS))
        per_shard = -(-max_connections // shards)
        tls = _tls_context()  # one for every pool: building one loads the CA bundle (~40 ms)
        self._clients = [
            httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
                limits=httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard,
                                    keepalive_expiry=30.0),
                transport=transport,
                follow_redirects=False,
                verify=tls,
            )
            for _ in range(shards)
        ]
        self._busy = [0] * shards

    async def images_generate(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /images/generations`` with a JSON body."""
        return await self._post("/images/generations", json=body)

    async def images_edit(self, fields: dict[str, Any], images: list[ImageFile],
                          mask: ImageFile | None = None) -> dict[str, Any]:
        """``POST /images/edits`` as multipart/form-data, laid out as the SDK does: ``image`` for
        one input, ``image[]`` for each of several, ``mask`` for the mask; ``None`` fields are
        left out."""
        if not images:
            raise ValueError("images_edit needs at least one image")
        name = "image" if len(images) == 1 else "image[]"
        files: list[tuple[str, ImageFile]] = [(name, image) for image in images]
        if mask is not None:
            files.append(("mask", mask))
        data = {key: form_value(value) for key, value in fields.items() if value is not None}
        return await self._post("/images/edits", data=data, files=files)

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /chat/completions`` with a JSON body."""
        return await self._post("/chat/completions", json=body)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def _post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        shard = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[shard] += 1
        try:
            response = await self._clients[shard].post(path, **kwargs)
        except httpx.HTTPError as exc:
            raise to_upstream_error(exc) from exc
        finally:
            self._busy[shard] -= 1
        if response.status_code >= 400:
            raise to_upstream_error(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Retryable(f"OpenAI answered {path} with a body that is not a JSON object",
                            code="upstream_bad_response", http_status=response.status_code)
        return body
