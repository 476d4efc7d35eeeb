"""Intake guard, as plain ASGI (no per-request overhead of BaseHTTPMiddleware).

* Bodies over ``max_body_bytes`` answer 413 before they are read (Content-Length) or as soon
  as the stream passes the limit (chunked uploads).
* JSON endpoints parse the body as JSON even when the client sent no Content-Type or curl's
  default ``application/x-www-form-urlencoded`` (``curl -d '{…}'``). Auth is a custom header,
  so this opens no cross-site hole. Routes that really take forms are left alone.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FORM_TYPES = (b"application/x-www-form-urlencoded", b"text/plain")


class TooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit. An ``HTTPException``, so
    FastAPI's body reading re-raises it (any other exception there becomes a 400) and the
    error handlers answer 413 in the error shape."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class IntakeMiddleware:
    def __init__(self, app: Any, max_body_bytes: int, form_paths: frozenset[str] = frozenset(),
                 path_limits: dict[str, int] | None = None):
        self.app = app
        self.max = max_body_bytes
        self.form_paths = form_paths
        # Exact paths with their own cap (batch uploads are larger than any single request).
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        limit = self.path_limits.get(scope["path"], self.max)
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._too_large(send, limit)
                return
        if scope["path"] not in self.form_paths:
            ctype = next((v for n, v in headers if n == b"content-type"), None)
            if ctype is None or ctype.split(b";")[0].strip().lower() in FORM_TYPES:
                scope = dict(scope)
                scope["headers"] = [(n, v) for n, v in headers if n != b"content-type"] + [
                    (b"content-type", b"application/json")]

        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except TooLarge:
            if not started:
                await self._too_large(send, limit)

    async def _too_large(self, send: Send, limit: int) -> None:
        body = json.dumps({"status": "error", "error": {
            "code": "payload_too_large",
            "message": f"request body exceeds the limit of {limit} bytes"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class RateLimitHeaders:
    """Adds the rate-limit header fields a request's limiter check left in ``scope["state"]``
    to whatever response goes out (success, 4xx, 429), so every authenticated answer has them."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get("state", {}).get("ratelimit_headers")
                if extra:
                    message = dict(message)
                    message["headers"] = list(message.get("headers", [])) + [
                        (k.lower().encode(), v.encode()) for k, v in extra.items()
                        if k.lower().encode() not in {h for h, _ in message.get("headers", [])}]
            await send(message)

        await self.app(scope, receive, add_headers)
