"""Errors as the spec shapes them.

Validation problems keep FastAPI's own ``{"detail": [...]}`` (422), exactly as the Vision
Studio reference documents. Every other error is ``{"status": "error", "error": {"code",
"message"}}`` with its HTTP status. Nothing a client sends may produce a 500; an unexpected
failure still answers in this shape (and is logged).
"""

from __future__ import annotations

import logging
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
