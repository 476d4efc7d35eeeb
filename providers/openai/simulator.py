"""A local stand-in for the OpenAI API, speaking OpenAI's protocol (what the official SDK sends and
parses), so the OpenAI provider, its tests and load drills run without an OpenAI account.

Paths are relative to where the app is mounted; the provider's base URL is the mount point plus
``/v1`` (``OPENAI_BASE_URL=http://host:port/<mount>/v1``, as with ``api.openai.com/v1``):

* ``POST /v1/images/generations`` (JSON) and ``POST /v1/images/edits`` (multipart: ``image`` or
  ``image[]`` parts, ``mask``, text fields) → ``ImagesResponse`` ``{created, data: [{b64_json,
  revised_prompt}], background, output_format, quality, size, usage}`` with real images of the
  requested size (``auto``: 1024x1024 for generations, the input's size for edits). Checks and
  400s follow OpenAI (see ``sim_media.py``).
* ``POST /v1/chat/completions`` → a ``chat.completion`` made from the input (see ``sim_chat.py``).
* Every call needs ``Authorization: Bearer <non-empty>``; errors are ``{"error": {"message",
  "type", "param", "code"}}``.

Control API (not OpenAI's): ``POST /_sim/faults`` (a list of fault rules, below), ``GET`` and
``DELETE /_sim/faults``, ``POST /_sim/config`` ``{"latency_seconds"}``, ``POST /_sim/reset``,
``GET /_sim/stats`` (calls per endpoint, calls in flight now and at most, the part names of the
last multipart edit). Each call waits the
latency (``SIM_OPENAI_LATENCY_SECONDS``, default 1 s) with ``asyncio.sleep``, so one process holds
thousands of slow calls at once; images are rendered in threads, once per distinct request.

Fault rules reuse the Bria simulator's ``FaultRule``/``FaultBook`` with ``on="submit"`` for every
call; ``match`` is tested against ``"<path> <raw JSON body>"`` (``"/images/edits <prompt>"`` for
edits). Kinds: ``429`` (``retry-after``/``retry-after-ms`` when ``retry_after`` is given, always
``x-ratelimit-*`` with the resets ``reset_requests``/``reset_tokens``; a string ``code`` such as
``insufficient_quota`` replaces ``rate_limit_exceeded``), ``500``, ``503``, ``timeout`` (wait
``delay`` seconds, then answer normally), ``error`` (400 with ``code``/``message``; default
``moderation_blocked``, OpenAI's safety refusal; an integer ``code`` is the HTTP status instead)
and ``unknown`` (a 200 whose body is not JSON, as from a broken proxy).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Literal

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from providers.openai import sim_chat, sim_media
from providers.openai.sim_media import ImageRequest, SimError
from providers.simulator.faults import FaultBook, FaultRule

DEFAULT_LATENCY_SECONDS = 1.0
LATENCY_ENV = "SIM_OPENAI_LATENCY_SECONDS"
ENDPOINTS = ("generations", "edits", "chat")
MAX_CACHED_RESULTS = 32


class OpenAIFaultRule(FaultRule):
    """A ``FaultRule`` for this simulator: ``on`` is always "submit" (any call); a 429 reports
    ``reset_requests``/``reset_tokens`` in ``x-ratelimit-reset-*`` (OpenAI's duration format)."""

    on: Literal["submit"] = "submit"  # type: ignore[assignment]
    reset_requests: str = "1s"
    reset_tokens: str = "12ms"


class SimConfig(BaseModel):
    latency_seconds: float = Field(ge=0)


@dataclass
class SimState:
    default_latency: float
    latency: float = 0.0
    faults: FaultBook = field(default_factory=FaultBook)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))
    in_flight: int = 0
    max_in_flight: int = 0
    last_edit_parts: list[str] = field(default_factory=list)  # part names of the last edit, in order
    results: OrderedDict[str, asyncio.Future[Any]] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.latency = self.default_latency

    @asynccontextmanager
    async def track(self, endpoint: str) -> AsyncIterator[None]:
        with self.lock:
            self.counters[endpoint] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self.lock:
                self.in_flight -= 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {**self.counters, "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                    "latency_seconds": self.latency, "last_edit_parts": list(self.last_edit_parts)}

    def reset(self) -> None:
        with self.lock:
            self.counters = dict.fromkeys(ENDPOINTS, 0)
            self.max_in_flight = self.in_flight
            self.last_edit_parts = []
            self.latency = self.default_latency
        self.faults.clear()

    async def once(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` run in a thread once per ``key``: concurrent callers share one run, and the
        last ``MAX_CACHED_RESULTS`` results are kept. The run is its own task, so a caller that
        goes away does not cancel it for the others; a failed run is forgotten."""
        task = self.results.get(key)
        if task is None:
            task = asyncio.ensure_future(run_in_threadpool(make))
            self.results[key] = task
            while len(self.results) > MAX_CACHED_RESULTS:
                self.results.popitem(last=False)
        else:
            self.results.move_to_end(key)
        try:
            return await asyncio.shield(task)
        except Exception:
            if self.results.get(key) is task:
                del self.results[key]
            raise


def openai_error(status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def unauthorized(request: Request) -> JSONResponse | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return None
    return openai_error(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                             "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def fault_response(rule: FaultRule) -> Response | None:
    """The answer an HTTP-level fault gives; ``None`` for kinds that answer normally."""
    if rule.kind == "429":
        headers = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
                   "x-ratelimit-limit-tokens": "100000", "x-ratelimit-remaining-tokens": "99000",
                   "x-ratelimit-reset-requests": getattr(rule, "reset_requests", "1s"),
                   "x-ratelimit-reset-tokens": getattr(rule, "reset_tokens", "12ms")}
        if rule.retry_after is not None:
            headers["retry-after"] = _seconds(rule.retry_after)
            headers["retry-after-ms"] = str(round(rule.retry_after * 1000))
        code = rule.code if isinstance(rule.code, str) else "rate_limit_exceeded"
        kind = "insufficient_quota" if code == "insufficient_quota" else "requests"
        message = rule.message or ("You exceeded your current quota, please check your plan and billing details."
                                   if kind == "insufficient_quota" else
                                   "Rate limit reached for requests (simulated). Please try again later.")
        return openai_error(429, message, kind=kind, code=code, headers=headers)
    if rule.kind in ("500", "503"):
        message = rule.message or (
            "The server had an error while processing your request. Sorry about that!" if rule.kind == "500"
            else "The engine is currently overloaded, please try again later.")
        return openai_error(int(rule.kind), message, kind="server_error")
    if rule.kind == "error":
        if isinstance(rule.code, int):
            return openai_error(rule.code, rule.message or "Simulated error.", code=None)
        code = rule.code or "moderation_blocked"
        if code == "moderation_blocked":
            message = rule.message or ("Your request was rejected as a result of our safety system. Your request may "
                                       "contain content that is not allowed by our safety system.")
            return openai_error(400, message, kind="image_generation_user_error", code=code)
        return openai_error(400, rule.message or "Simulated error.", code=code)
    if rule.kind == "unknown":
        return Response(b"<html><body>upstream proxy error</body></html>", media_type="text/html")
    return None


def images_response(request: ImageRequest, b64_images: list[str], size: tuple[int, int]) -> dict[str, Any]:
    return {
        "created": int(time.time()),
        "data": [{"b64_json": b64, "revised_prompt": request.prompt} for b64 in b64_images],
        "background": "transparent" if request.transparent else "opaque",
        "output_format": request.output_format,
        "quality": "medium" if request.quality == "auto" else request.quality,
        "size": f"{size[0]}x{size[1]}",
        "usage": sim_media.usage(request, size),
    }


def _render_all(render: Callable[[ImageRequest, int], bytes], request: ImageRequest) -> list[str]:
    return [base64.b64encode(render(request, index)).decode("ascii") for index in range(request.n)]


def create_app(latency_seconds: float | None = None) -> FastAPI:
    """The simulator app; ``latency_seconds`` defaults to ``SIM_OPENAI_LATENCY_SECONDS`` (1.0)."""
    if latency_seconds is None:
        latency_seconds = float(os.environ.get(LATENCY_ENV) or DEFAULT_LATENCY_SECONDS)
    state = SimState(default_latency=latency_seconds)
    app = FastAPI(title="visiongate OpenAI simulator", docs_url="/_sim/docs", openapi_url="/_sim/openapi.json")
    app.state.sim = state

    async def serve(request: Request, endpoint: str, subject: Callable[[], Awaitable[tuple[str, Any]]],
                    answer: Callable[[Any], Awaitable[dict[str, Any]]]) -> Response:
        """The common path: count, authenticate, read the body, apply a fault, wait, answer."""
        async with state.track(endpoint):
            denied = unauthorized(request)
            if denied is not None:
                return denied
            try:
                text, parsed = await subject()
                rule = state.faults.take("submit", text)
                if rule is not None:
                    response = fault_response(rule)
                    if response is not None:
                        return response
                    await asyncio.sleep(rule.delay)  # "timeout": late, then a normal answer
                body = await answer(parsed)
            except SimError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            return JSONResponse(body)

    async def wait() -> None:
        if state.latency > 0:
            await asyncio.sleep(state.latency)

    def json_subject(request: Request, path: str) -> Callable[[], Awaitable[tuple[str, Any]]]:
        async def read() -> tuple[str, Any]:
            raw = await request.body()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = SimError("We could not parse the JSON body of your request. (HINT: This likely means you "
                                  "aren't using your HTTP library correctly.)", code=None)
            return f"{path} {raw.decode('utf-8', 'replace')}", parsed
        return read

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> Response:
        async def answer(body: Any) -> dict[str, Any]:
            if isinstance(body, SimError):
                raise body
            if not isinstance(body, dict):
                raise SimError("The body must be a JSON object.", code=None)
            parsed = sim_media.parse_image_request(body, edit=False)
            await wait()
            key = "gen:" + json.dumps([parsed.prompt, parsed.n, parsed.size, parsed.background,
                                       parsed.output_format, parsed.compression])
            images = await state.once(key, lambda: _render_all(sim_media.generate, parsed))
            return images_response(parsed, images, parsed.size or (1024, 1024))

        return await serve(request, "generations", json_subject(request, "/images/generations"), answer)

    @app.post("/v1/images/edits")
    async def edits(request: Request) -> Response:
        async def subject() -> tuple[str, Any]:
            try:
                form = await request.form()
            except Exception:  # malformed multipart: starlette would answer in its own shape
                raise SimError("Could not parse the multipart form body of your request.", code=None) from None
            state.last_edit_parts = [name for name, _ in form.multi_items()]
            files = [v for v in (*form.getlist("image"), *form.getlist("image[]")) if isinstance(v, UploadFile)]
            if len(files) < len(form.getlist("image")) + len(form.getlist("image[]")):
                raise SimError("Invalid 'image': expected a file, but got a string instead.", param="image",
                               code="invalid_type")
            mask = form.get("mask")
            if mask is not None and not isinstance(mask, UploadFile):
                raise SimError("Invalid 'mask': expected a file, but got a string instead.", param="mask",
                               code="invalid_type")
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            images = [await f.read() for f in files]
            mask_bytes = await mask.read() if mask is not None else None
            await form.close()
            return f"/images/edits {fields.get('prompt', '')}", (fields, images, mask_bytes)

        async def answer(parts: tuple[dict[str, str], list[bytes], bytes | None]) -> dict[str, Any]:
            fields, images, mask = parts
            parsed = sim_media.parse_image_request(fields, edit=True)
            await run_in_threadpool(sim_media.check_edit_inputs, parsed, images, mask)
            await wait()
            digest = hashlib.sha256()
            for data in (*images, mask or b""):
                digest.update(hashlib.sha256(data).digest())
            key = "edit:" + json.dumps([digest.hexdigest(), parsed.prompt, parsed.n, parsed.size, parsed.background,
                                        parsed.output_format, parsed.compression])
            rendered = await state.once(key, lambda: (_render_all(sim_media.edit, parsed), _size_of(parsed)))
            return images_response(parsed, rendered[0], rendered[1])

        return await serve(request, "edits", subject, answer)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        async def answer(body: Any) -> dict[str, Any]:
            if isinstance(body, SimError):
                raise body
            result = await run_in_threadpool(sim_chat.complete, body)
            await wait()
            return result

        return await serve(request, "chat", json_subject(request, "/chat/completions"), answer)

    # ------------------------------------------------------------------- control API
    @app.post("/_sim/faults")
    async def add_faults(rules: list[OpenAIFaultRule]) -> dict[str, Any]:
        state.faults.add(list(rules))
        return {"pending": state.faults.pending()}

    @app.get("/_sim/faults")
    async def list_faults() -> dict[str, Any]:
        return {"pending": state.faults.pending()}

    @app.delete("/_sim/faults")
    async def clear_faults() -> dict[str, Any]:
        state.faults.clear()
        return {"pending": []}

    @app.post("/_sim/config")
    async def set_config(config: SimConfig) -> dict[str, Any]:
        state.latency = config.latency_seconds
        return {"latency_seconds": state.latency}

    @app.get("/_sim/stats")
    async def stats() -> dict[str, Any]:
        return state.stats()

    @app.post("/_sim/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return state.stats()

    return app


def _size_of(request: ImageRequest) -> tuple[int, int]:
    if request.size:
        return request.size
    return sim_media.image_header(request.inputs[0], "image")[1]
