"""Errors as the spec shapes them.

Validation problems keep FastAPI's own ``{"detail": [...]}`` (422), exactly as the Vision
Studio reference documents. Every other error is ``{"status": "error", "error": {"code",
"message"}}`` with its HTTP status. Nothing a client sends may produce a 500; an unexpected
failure still answers in this shape (and is logged).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 410: "gone",
              413: "payload_too_large", 415: "unsupported_media_type", 429: "rate_limited",
              500: "internal_error", 502: "upstream_error", 503: "service_unavailable"}


def upstream_error(exc: Exception, who: str = "the upstream") -> Exception:
    """The answer to a failed upstream call made inside a request (QUICK operations, LoRA
    management): 429 → 429 with Retry-After; timeouts → 504; other 5xx / connection errors →
    502; the upstream refusing the input (400/415/422) → 422 ``upstream_rejected`` (FastAPI's
    shape, naming the body); a state conflict (409/412) → 409; anything else → 502."""
    from fastapi.exceptions import RequestValidationError

    from providers.base import Permanent, RateLimited, Retryable, UpstreamError

    if isinstance(exc, RateLimited):
        retry = max(1, math.ceil(exc.retry_after or 1))
        return ApiError(429, f"{who} is rate limiting us: {exc.message}", code="upstream_rate_limited",
                        headers={"Retry-After": str(retry)}, retry_after=retry)
    if isinstance(exc, Retryable):
        return ApiError(504 if "timeout" in exc.code else 502, f"{who} failed: {exc.message}", code=exc.code)
    if isinstance(exc, Permanent) and exc.http_status in (400, 415, 422):
        return RequestValidationError([{"type": "upstream_rejected", "loc": ("body",), "input": None,
                                        "msg": f"{who} refused the request: {exc.message}"}])
    if isinstance(exc, Permanent) and exc.http_status in (409, 412):
        return ApiError(409, f"{who} refused the change: {exc.message}", code=exc.code)
    if isinstance(exc, UpstreamError):
        return ApiError(502, f"{who} failed: {exc.message}", code=exc.code)
    return exc


async def call_upstream(fn: Any, *args: Any, who: str = "the upstream", missing_ok: bool = False,
                        **kw: Any) -> Any:
    """One synchronous upstream call off the event loop, its failures mapped by
    ``upstream_error``. With ``missing_ok`` an upstream 404 counts as done (deleting what the
    upstream no longer has) and answers None."""
    from fastapi.concurrency import run_in_threadpool

    from providers.base import Permanent, UpstreamError

    try:
        return await run_in_threadpool(fn, *args, **kw)
    except UpstreamError as exc:
        if missing_ok and isinstance(exc, Permanent) and exc.http_status == 404:
            return None
        raise upstream_error(exc, who) from None


class ApiError(Exception):
    def __init__(self, status_code: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status_code = status_code
        self.code = code or HTTP_CODES.get(status_code, "error")
        self.message = message
        self.headers = headers
        self.extra = extra


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "message": message, **extra}}


def error_response(status_code: int, code: str, message: str,
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status_code, headers=headers)


async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status_code, exc.code, exc.message, exc.headers, **exc.extra)


async def _http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "error"), message,
                          getattr(exc, "headers", None))


async def _db_down(_req: Request, exc: OperationalError) -> JSONResponse:
    log.error("database unavailable: %s", exc)
    return error_response(503, "service_unavailable", "the database is unavailable; retry shortly",
                          {"Retry-After": "5"})


async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _db_down)
    app.add_exception_handler(Exception, _unexpected)
