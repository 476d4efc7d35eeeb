"""Errors as the spec shapes them.

Validation problems keep FastAPI's own ``{"detail": [...]}`` (422), exactly as the Vision
Studio reference documents. Every other error is ``{"status": "error", "error": {"code",
"message"}}`` with its HTTP status. Nothing a client sends may produce a 500; an unexpected
failure still answers in this shape (and is logged).
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.envelope import error_body
from providers.base import Permanent, RateLimited, Retryable, UpstreamError

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


def expired(job_id: str, expired_at: str | None) -> ApiError:
    """404 ``expired``: the caller's own job, past its retention (its results were deleted).
    Unknown ids and other tenants' jobs stay a plain 404 ``not_found``."""
    when = f" at {expired_at}" if expired_at else ""
    return ApiError(404, f"request {job_id} expired{when}: its retention ended and its results were deleted",
                    code="expired", request_id=job_id, expired_at=expired_at)


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


async def _redis_down(_req: Request, exc: Exception) -> JSONResponse:
    log.error("redis unavailable: %s", exc)
    return error_response(503, "service_unavailable", "a backing service (Redis) is unavailable; retry shortly",
                          {"Retry-After": "5"})


def _backing_service_down(exc: BaseException) -> bool:
    """A connection to PostgreSQL or Redis failed somewhere in ``exc``'s chain (the database
    shutting down surfaces as several types: psycopg's, SQLAlchemy's InterfaceError or pool
    timeout, a reset socket), whatever wrapped it."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout, psycopg.OperationalError,
                            psycopg.InterfaceError, RedisConnectionError, RedisTimeoutError, ConnectionError)):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


async def _unexpected(req: Request, exc: Exception) -> JSONResponse:
    if _backing_service_down(exc):
        log.error("backing service unavailable on %s %s: %r", req.method, req.url.path, exc)
        return error_response(503, "service_unavailable", "a backing service is unavailable; retry shortly",
                              {"Retry-After": "5"})
    request_id = "req_" + uuid.uuid4().hex[:16]
    log.error("unhandled error %s on %s %s", request_id, req.method, req.url.path, exc_info=exc)
    return error_response(500, "internal_error", f"an unexpected error occurred (request {request_id})",
                          {"X-Request-ID": request_id}, request_id=request_id)


class ErrorBarrier:
    """The outermost of the app's own middleware: an exception that escaped everything inside
    (the status fast path and the intake middleware run outside FastAPI's exception handling)
    gets its answer here, as ``_unexpected`` makes it (503 with Retry-After for a backing
    service, else 500 in the error shape), and goes no further. Starlette's
    ServerErrorMiddleware would answer it too, but then raises it on to the server, and uvicorn
    closes the connection of a request whose app raised, even after a complete answer: the next
    request a keep-alive client sends on it gets no answer at all (``make chaos`` counted these as
    closed connections during a PostgreSQL outage). An exception after the answer has begun
    still goes on: that answer cannot be completed."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:
                raise
            response = await _unexpected(Request(scope), exc)
            await response(scope, receive, send)


# --------------------------------------------------------------------------- 422s
CLIP_CHARS = 64  # an error item shows at most this much of a long input value


def clip(value: Any, budget: list[int] | None = None, depth: int = 0) -> Any:
    """A JSON-safe, short stand-in for an input value shown in an error item: long strings keep
    a prefix and say how long they were; non-finite numbers, bytes and text that is not Unicode
    become readable strings; containers are clipped item by item within a small total budget."""
    budget = budget if budget is not None else [CLIP_CHARS * 8]
    if value is None or isinstance(value, bool) or isinstance(value, int) and abs(value) < 2**63:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        safe = value.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates → "\\ud800"
        if len(safe) <= CLIP_CHARS and budget[0] >= len(safe):
            budget[0] -= len(safe)
            return safe
        keep = max(0, min(CLIP_CHARS, budget[0], 32))
        budget[0] -= keep
        return f"{safe[:keep]}… ({len(value)} characters)"
    if isinstance(value, dict):
        if depth >= 3 or budget[0] <= 0:
            return f"<object with {len(value)} keys>"
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= 20 or budget[0] <= 0:
                out["…"] = f"{len(value) - index} more keys"
                break
            out[str(clip(str(key), budget, depth + 1))] = clip(item, budget, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        if depth >= 3 or budget[0] <= 0:
            return f"<array of {len(value)} items>"
        items = [clip(item, budget, depth + 1) for item in list(value)[:10]]
        return items + ([f"… {len(value) - 10} more items"] if len(value) > 10 else [])
    return clip(str(value), budget, depth)


def validation_items(errors: Any) -> list[dict[str, Any]]:
    items = []
    for error in list(errors)[:50]:
        msg = str(error.get("msg", "")).encode("utf-8", "backslashreplace").decode("utf-8")
        item = {"type": error.get("type"), "loc": [clip(part) for part in error.get("loc", ())],
                "msg": msg if len(msg) <= 600 else msg[:600] + "…"}
        if "input" in error:
            item["input"] = clip(error["input"])
        for key, value in error.items():  # extra fields an item carries (a batch line's custom_id)
            if key not in ("type", "loc", "msg", "input", "ctx", "url"):
                item[str(key)] = clip(value)
        if error.get("ctx"):
            item["ctx"] = {str(k): clip(v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
                           for k, v in error["ctx"].items()}
        items.append(item)
    return items


async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_items(exc.errors())}, status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _db_down)
    app.add_exception_handler(InterfaceError, _db_down)
    app.add_exception_handler(RedisConnectionError, _redis_down)
    app.add_exception_handler(RedisTimeoutError, _redis_down)
    app.add_exception_handler(Exception, _unexpected)
