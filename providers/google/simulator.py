"""A local stand-in for Vertex AI Gemini ``:generateContent``, speaking Google's protocol.

Mount it anywhere; paths are relative to the mount point, as on ``{region}-aiplatform.
googleapis.com``:

* ``POST /{v1|v1beta1}/projects/{P}/locations/{L}/publishers/google/models/{model}:generateContent``
  with ``Authorization: Bearer <token>`` (any non-empty token, or exactly ``access_token`` /
  ``SIM_GOOGLE_ACCESS_TOKEN`` when set) → ``{candidates, usageMetadata, modelVersion,
  responseId, createTime}``. Models must be ``gemini-*``.
* Errors as ``{"error": {"code", "message", "status"}}``: 400 INVALID_ARGUMENT, 401
  UNAUTHENTICATED, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE.

The answers are deterministic (``sim_text.py``) and describe what inline media really show
(``sim_media.py``: size, orientation, colours; duration and frames of videos). Images or frames
over 25 MP are refused from their header. ``fileData`` references are acknowledged, not fetched.

Control API (not Google's): ``/_sim/faults`` takes ``FaultRule`` lists (``on: "submit"``;
``match`` is tested against the raw request body):

* ``429`` → RESOURCE_EXHAUSTED (``Retry-After`` when ``retry_after`` is given), ``500`` →
  INTERNAL, ``503`` → UNAVAILABLE, ``timeout`` → sleep ``delay`` seconds, then answer;
* ``error`` → 400 INVALID_ARGUMENT with ``message``; ``code`` may name another status
  ("PERMISSION_DENIED", 403, …). Safety blocks answer 200 like Gemini does: ``code`` SAFETY,
  PROHIBITED_CONTENT, BLOCKLIST, SPII or IMAGE_SAFETY → a candidate with that ``finishReason``
  and no text; ``prompt:<REASON>`` (e.g. ``prompt:SAFETY``) → ``promptFeedback.blockReason``;
* ``unknown`` → 200 without candidates.

``/_sim/config`` ``{latency_seconds}`` (default ``SIM_GOOGLE_LATENCY_SECONDS``, 0.2),
``/_sim/stats``, ``/_sim/reset``. State lives in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from providers.google import sim_text
from providers.google.sim_parse import BadRequest, ParsedRequest, analyse, parse_request
from providers.simulator.faults import FaultBook, FaultRule

DEFAULT_LATENCY_SECONDS = 0.2
API_VERSIONS = ("v1", "v1beta1")
MAX_BODY_BYTES = 64 * 1024 * 1024
MODERATION_CODES = ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                405: "UNIMPLEMENTED", 409: "ABORTED", 422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED"}
STATUS_CODES = {"FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, **{v: k for k, v in STATUS_NAMES.items()
                                                                     if k not in (405, 422)}}
MISSING_CREDENTIALS = ("Request is missing required authentication credential. Expected OAuth 2 access token, "
                       "login cookie or other valid authentication credential.")
INVALID_CREDENTIALS = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                       "cookie or other valid authentication credential.")


def google_error(http_status: int, message: str, status: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    """Google's error body: ``{"error": {"code", "message", "status"}}``."""
    body = {"error": {"code": http_status, "message": message,
                      "status": status or STATUS_NAMES.get(http_status, "UNKNOWN")}}
    return JSONResponse(body, status_code=http_status, headers=headers)


def fault_response(rule: FaultRule) -> JSONResponse | None:
    """The HTTP error a fault rule produces (``None`` for timeout, safety blocks and unknown)."""
    if rule.kind == "429":
        headers = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else None
        return google_error(429, rule.message or "Resource exhausted. Please try again later.", headers=headers)
    if rule.kind == "500":
        return google_error(500, rule.message or "Internal error encountered.")
    if rule.kind == "503":
        return google_error(503, rule.message or "The service is currently unavailable.")
    if rule.kind == "error" and not _block_reason(rule):
        code = rule.code
        if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
            status_code = int(code) if 400 <= int(code) <= 599 else 400
            return google_error(status_code, rule.message or "Request contains an invalid argument.")
        name = str(code).upper() if code else "INVALID_ARGUMENT"
        return google_error(STATUS_CODES.get(name, 400), rule.message or "Request contains an invalid argument.",
                            name)
    return None


def _block_reason(rule: FaultRule) -> tuple[str, str] | None:
    """``("candidate" | "prompt", REASON)`` for a safety-block fault."""
    code = str(rule.code or "").upper()
    if code.startswith("PROMPT:"):
        return "prompt", code.split(":", 1)[1] or "SAFETY"
    return ("candidate", code) if code in MODERATION_CODES else None


# --------------------------------------------------------------------------- state
@dataclass
class SimState:
    default_latency: float
    access_token: str | None
    latency: float = 0.0
    faults: FaultBook = field(default_factory=FaultBook)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("generate_content", "answered", "faults", "blocked", "unauthorized", "invalid"), 0))
    last_path: str | None = None  # path of the last generateContent request
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.latency = self.default_latency

    def count(self, what: str) -> None:
        with self.lock:
            self.counters[what] += 1

    def reset(self) -> None:
        with self.lock:
            self.counters = dict.fromkeys(self.counters, 0)
            self.latency = self.default_latency
            self.last_path = None
        self.faults.clear()


class SimConfig(BaseModel):
    latency_seconds: float = Field(ge=0)


# --------------------------------------------------------------------------- answers
def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def answer(body: dict[str, Any], parsed: ParsedRequest, model: str) -> dict[str, Any]:
    """The ``:generateContent`` response for a valid request."""
    vocabulary = [w for f in parsed.facts for w in f.words()]
    vocabulary += [w for w in sim_text.keywords(parsed.texts) if w not in vocabulary]
    candidates, output_tokens = [], 0
    seed = sim_text.seed_for(body, model, parsed.temperature)
    for index in range(parsed.candidate_count):
        rng = random.Random(seed + index)
        text = sim_text.compose_text(parsed.texts, parsed.facts, parsed.references, rng)
        if parsed.json_mode:
            text = json.dumps(sim_text.json_answer(parsed.schema, text, vocabulary, rng))
        output_tokens += sim_text.count_tokens(text)
        candidates.append({"content": {"role": "model", "parts": [{"text": text}]},
                           "finishReason": "STOP", "index": index})
    return _envelope(parsed, model, candidates=candidates, output_tokens=output_tokens)


def _envelope(parsed: ParsedRequest | None, model: str, *, output_tokens: int = 0, **fields: Any) -> dict[str, Any]:
    prompt_tokens = 0
    if parsed is not None:
        prompt_tokens = sum(sim_text.count_tokens(t) for t in parsed.texts + parsed.system)
        prompt_tokens += sim_text.media_tokens(parsed.facts)
    return {**fields,
            "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
                              "totalTokenCount": prompt_tokens + output_tokens, "trafficType": "ON_DEMAND"},
            "modelVersion": model, "createTime": _now(), "responseId": uuid.uuid4().hex[:24]}


def blocked(kind: str, reason: str, parsed: ParsedRequest | None, model: str) -> dict[str, Any]:
    """What Gemini answers (HTTP 200) when a safety filter stops the prompt or the answer."""
    if kind == "prompt":
        return _envelope(parsed, model, promptFeedback={
            "blockReason": reason, "blockReasonMessage": "The prompt was blocked due to safety reasons."})
    ratings = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]
    return _envelope(parsed, model, candidates=[{"content": {"role": "model"}, "finishReason": reason,
                                                 "safetyRatings": ratings, "index": 0}])


# --------------------------------------------------------------------------- app
def create_app(latency_seconds: float | None = None, access_token: str | None = None) -> FastAPI:
    """Build the simulator. Defaults from ``SIM_GOOGLE_LATENCY_SECONDS`` (0.2) and
    ``SIM_GOOGLE_ACCESS_TOKEN`` (unset: any bearer token is accepted)."""
    if latency_seconds is None:
        latency_seconds = float(os.environ.get("SIM_GOOGLE_LATENCY_SECONDS", DEFAULT_LATENCY_SECONDS))
    if access_token is None:
        access_token = os.environ.get("SIM_GOOGLE_ACCESS_TOKEN") or None
    state = SimState(default_latency=latency_seconds, access_token=access_token)
    app = FastAPI(title="visiongate Vertex AI Gemini simulator", docs_url="/_sim/docs",
                  openapi_url="/_sim/openapi.json")
    app.state.sim = state

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return google_error(exc.status_code, str(exc.detail))

    def unauthorized(request: Request) -> JSONResponse | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return google_error(401, MISSING_CREDENTIALS)
        if state.access_token is not None and not secrets.compare_digest(token.strip(), state.access_token):
            return google_error(401, INVALID_CREDENTIALS)
        return None

    @app.post("/{version}/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent")
    async def generate_content(version: str, project: str, location: str, model: str,
                               request: Request) -> JSONResponse:
        if version not in API_VERSIONS:
            return google_error(404, f"API version {version} is not supported.")
        if (denied := unauthorized(request)) is not None:
            state.count("unauthorized")
            return denied
        state.count("generate_content")
        state.last_path = request.url.path
        length = request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return google_error(400, "Request payload size exceeds the limit.")
        raw = await request.body()
        rule = state.faults.take("submit", raw.decode("utf-8", "replace"))
        if rule is not None:
            state.count("faults")
            if rule.kind == "timeout":
                await asyncio.sleep(rule.delay)
                rule = None
            elif (response := fault_response(rule)) is not None:
                return response
        if not model.startswith("gemini-"):
            name = f"projects/{project}/locations/{location}/publishers/google/models/{model}"
            return google_error(404, f"Publisher Model `{name}` was not found or your project does not have "
                                     f"access to it.")
        await asyncio.sleep(state.latency)
        try:
            body, parsed = parse_request(raw)
            if rule is not None and rule.kind == "error":
                state.count("blocked")
                kind, reason = _block_reason(rule)  # type: ignore[misc]
                return JSONResponse(blocked(kind, reason, parsed, model))
            if rule is not None:  # unknown: an answer without candidates
                return JSONResponse(_envelope(parsed, model))
            await run_in_threadpool(analyse, parsed)
        except BadRequest as exc:
            state.count("invalid")
            return google_error(400, exc.message)
        state.count("answered")
        return JSONResponse(await run_in_threadpool(answer, body, parsed, model))

    # ------------------------------------------------------------------- control API
    @app.post("/_sim/faults")
    async def add_faults(rules: list[FaultRule]) -> JSONResponse:
        if any(rule.on != "submit" for rule in rules):
            return JSONResponse({"detail": "the Google simulator takes rules with on: submit only"}, 422)
        state.faults.add(rules)
        return JSONResponse({"pending": state.faults.pending()})

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
        with state.lock:
            return {**state.counters, "latency_seconds": state.latency, "last_path": state.last_path}

    @app.post("/_sim/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return {"counters": dict(state.counters), "latency_seconds": state.latency, "pending": []}

    return app
