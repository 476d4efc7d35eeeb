"""Vertex AI plumbing shared by the Google clients: request URLs and error classification.

Facts used (``google-genai`` SDK, ``google/genai/_api_client.py`` ``BaseApiClient.__init__`` and
``_build_request``; ``_transformers.py`` ``t_model``; ``errors.py``):

* A Vertex call goes to ``{base}/{api_version}/projects/{P}/locations/{L}/{model path}:{method}``
  where a bare model id becomes ``publishers/google/models/{id}`` and ``publisher/id`` becomes
  ``publishers/{publisher}/models/{id}``; full ``projects/…`` names are used as they are.
* Auth is ``Authorization: Bearer <OAuth access token>``.
* Errors are ``{"error": {"code": 429, "message": "…", "status": "RESOURCE_EXHAUSTED",
  "details": […]}}``. Quota errors are 429 RESOURCE_EXHAUSTED; Google sends no ``Retry-After``
  but may put a ``google.rpc.RetryInfo`` detail (``retryDelay: "30s"``) in the body.
"""

from __future__ import annotations

from typing import Any

import httpx

from providers.base import (Permanent, RateLimited, Retryable, UpstreamError, maybe_delivered,
                            parse_retry_after)

RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


def model_path(project: str, location: str, model: str) -> str:
    """The resource path of a model, as the SDK builds it for Vertex AI."""
    if model.startswith("projects/"):
        return model
    if not model.startswith("publishers/"):
        publisher, _, model_id = model.rpartition("/")
        model = f"publishers/{publisher or 'google'}/models/{model_id}"
    return f"projects/{project}/locations/{location}/{model}"


def model_url(base_url: str, api_version: str, project: str, location: str, model: str, method: str) -> str:
    """``{base}/{version}/projects/{P}/locations/{L}/publishers/google/models/{model}:{method}``."""
    return f"{base_url.rstrip('/')}/{api_version}/{model_path(project, location, model)}:{method}"


# --------------------------------------------------------------------------- errors


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration in JSON ("30s", "1.5s") as seconds."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        seconds = float(value[:-1])
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def google_error(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of a Google error body (``code``, ``message``, ``status``,
    ``details``); a stand-in built from the HTTP status when the body has another shape."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, list) and body and isinstance(body[0], dict):  # some proxies wrap it
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error
    text = response.text.strip()[:500] if body is None else ""
    message = error if isinstance(error, str) else text or response.reason_phrase or f"HTTP {response.status_code}"
    return {"code": response.status_code, "message": message}


def _retry_delay(error: dict[str, Any]) -> float | None:
    details = error.get("details")
    for item in details if isinstance(details, list) else ():
        if isinstance(item, dict) and item.get("@type") == RETRY_INFO_TYPE:
            return parse_duration(item.get("retryDelay"))
    return None


def to_upstream_error(source: httpx.Response | httpx.HTTPError, *, service: str = "Vertex AI") -> UpstreamError:
    """Classify a failed exchange with Google.

    * 429 or status RESOURCE_EXHAUSTED → ``RateLimited`` (``Retry-After``, else the body's
      ``RetryInfo.retryDelay``).
    * 5xx and 408, timeouts, connection and transport errors → ``Retryable``.
    * any other 4xx → ``Permanent`` whose code is Google's status in lower case
      ("invalid_argument", "permission_denied", "not_found", …).
    """
    if isinstance(source, httpx.HTTPStatusError):
        source = source.response
    if isinstance(source, httpx.TimeoutException):
        return Retryable(f"{service} did not answer in time ({type(source).__name__})", code="upstream_timeout",
                         maybe_sent=maybe_delivered(source))
    if isinstance(source, httpx.UnsupportedProtocol):
        return Permanent(f"unsupported upstream URL: {source}", code="upstream_bad_url")
    if isinstance(source, httpx.HTTPError):
        return Retryable(f"could not reach {service}: {type(source).__name__}: {source}", code="upstream_unavailable",
                         maybe_sent=maybe_delivered(source))
    status = source.status_code
    error = google_error(source)
    google_status = str(error.get("status") or "").strip()
    message = str(error.get("message") or source.reason_phrase or f"HTTP {status}")
    code = google_status.lower() if google_status else f"upstream_{status}"
    if status == 429 or google_status == "RESOURCE_EXHAUSTED":
        retry_after = parse_retry_after(source.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = _retry_delay(error)
        return RateLimited(f"{service} quota exceeded: {message}", retry_after=retry_after, http_status=status)
    if status >= 500 or status == 408:
        return Retryable(f"{service} is unavailable: {message}", code=code, http_status=status)
    return Permanent(message, code=code, http_status=status)
