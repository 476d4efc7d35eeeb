"""A local stand-in for Bria API v2, speaking the same protocol as the real service.

It lets the gateway (and its tests, demos and load drills) run end to end without a Bria account:
the Bria adapter is pointed at this app instead of ``https://engine.prod.bria-api.com`` and runs
unchanged. What it mirrors (docs.bria.ai "Async requests, webhooks and polling", "Status
service", "Rate limits and errors"):

* ``POST /v2/image/generate`` with header ``api_token`` → ``202 {request_id, status_url}``
  (``sync: true`` → ``200`` with the result inline).
* ``GET /v2/status/{request_id}`` → ``200`` with ``IN_PROGRESS`` / ``COMPLETED`` (``result.
  image_url``, ``seed``, ``prompt``, ``refined_prompt``) / ``ERROR`` (``error{code,message,
  details}``) / ``UNKNOWN``; ``404 {"status": "NOT_FOUND"}`` for unknown ids.
* errors as ``{"error": {"code", "message", "details"}}``, 429 with ``Retry-After``.

Images are real PNGs (see ``render.py``) served from ``GET /files/{request_id}.png`` without
auth, like Bria's pre-signed result URLs. A control API under ``/_sim/`` (fault injection,
latency, counters) is the only addition. State lives in memory (state.py): run a single process.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from providers.bria.simulator import endpoints, tailored
from providers.bria.simulator.responses import bria_error, http_fault
from providers.bria.simulator.state import SimState, SimTask, file_name
from providers.simulator.faults import FaultRule
from providers.simulator.render import ASPECT_RATIOS

DEFAULT_LATENCY_SECONDS = 2.0
MAX_SEED = 2**31 - 1
GENERATE_RESOLUTIONS = ("1MP", "4MP")  # /v2/image/generate


# --------------------------------------------------------------------------- responses (bria_error, http_fault: responses.py)
def _rule_error(rule: FaultRule) -> dict[str, Any]:
    return {
        "code": rule.code if rule.code is not None else 500,
        "message": rule.message or "Generation failed",
        "details": "simulated error",
    }


class ValidationFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    seed: int | None
    aspect_ratio: str
    resolution: str
    sync: bool


def parse_generate_body(body: Any) -> GenerateRequest:
    """Bria-style minimal validation: one of prompt/images/structured_prompt, known ratio/resolution."""
    if not isinstance(body, dict):
        raise ValidationFailure(400, "Request body must be a JSON object")
    prompt = body.get("prompt")
    images = body.get("images")
    structured = body.get("structured_prompt")
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise ValidationFailure(422, "prompt must be a non-empty string")
    if images is not None and (not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str)):
        raise ValidationFailure(422, "images must contain exactly one item (URL or base64 string)")
    if not (prompt or images or structured):
        raise ValidationFailure(422, "One of prompt, images or structured_prompt is required")
    aspect_ratio = body.get("aspect_ratio", "1:1")
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValidationFailure(422, f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
    resolution = body.get("resolution", "1MP")
    if resolution not in GENERATE_RESOLUTIONS:
        raise ValidationFailure(422, f"resolution must be one of {', '.join(GENERATE_RESOLUTIONS)}")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise ValidationFailure(422, f"seed must be an integer between 0 and {MAX_SEED}")
    sync = body.get("sync", False)
    if not isinstance(sync, bool):
        raise ValidationFailure(422, "sync must be a boolean")
    if sync and resolution == "4MP":
        raise ValidationFailure(422, "sync cannot be combined with resolution 4MP")
    text = prompt or (structured if isinstance(structured, str) else "") or "inspired by a reference image"
    return GenerateRequest(text, seed, aspect_ratio, resolution, sync)


# --------------------------------------------------------------------------- control API models
class SimConfig(BaseModel):
    latency_seconds: float = Field(ge=0)


# --------------------------------------------------------------------------- app
def create_app(latency_seconds: float | None = None, api_token: str | None = None) -> FastAPI:
    """Build the simulator. Defaults come from ``SIM_LATENCY_SECONDS`` and ``SIM_API_TOKEN``."""
    if latency_seconds is None:
        latency_seconds = float(os.environ.get("SIM_LATENCY_SECONDS", DEFAULT_LATENCY_SECONDS))
    if api_token is None:
        api_token = os.environ.get("SIM_API_TOKEN") or None
    state = SimState(default_latency=latency_seconds, api_token=api_token)
    app = FastAPI(title="visiongate Bria v2 simulator", docs_url="/_sim/docs", openapi_url="/_sim/openapi.json")
    app.state.sim = state

    def unauthorized(request: Request) -> JSONResponse | None:
        token = request.headers.get("api_token")
        if not token or (state.api_token is not None and not secrets.compare_digest(token, state.api_token)):
            return bria_error(401, "Unauthorized", "missing or invalid api_token header")
        return None

    def file_url(request: Request, task: SimTask, index: int, ext: str) -> str:
        return f"{request.base_url}files/{file_name(task.request_id, index, ext)}"

    def result_body(request: Request, task: SimTask) -> dict[str, Any]:
        if task.produce is None:  # generation: the file is rendered on download
            return {
                "image_url": file_url(request, task, 0, "png"),
                "seed": task.seed,
                "prompt": task.prompt,
                "refined_prompt": f"{task.prompt}, rendered by the visiongate simulator",
            }
        ext = task.ext or "png"
        return {task.result_key: file_url(request, task, 0, ext), **(task.meta or {})}

    async def apply_delay(rule: FaultRule | None) -> None:
        if rule is not None and rule.kind == "timeout":
            await asyncio.sleep(rule.delay)

    async def take_submit_fault(request: Request) -> tuple[FaultRule | None, Response | None]:
        state.count("submit")
        body = (await request.body()).decode("utf-8", "replace")
        rule = state.faults.take("submit", body)
        if rule is not None and (response := http_fault(rule)) is not None:
            return rule, response
        await apply_delay(rule)
        return rule, unauthorized(request)

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise endpoints.BadRequest(400, "Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise endpoints.BadRequest(400, "Request body must be a JSON object")
        return body

    def new_task(rule: FaultRule | None, latency: float, **kw: Any) -> SimTask:
        return SimTask(
            request_id=uuid.uuid4().hex, created=time.monotonic(), latency=latency,
            error=_rule_error(rule) if rule is not None and rule.kind == "error" else None,
            unknown_once=rule is not None and rule.kind == "unknown", **kw)

    @app.post("/v2/image/generate")
    async def generate(request: Request) -> Response:
        rule, response = await take_submit_fault(request)
        if response is not None:
            return response
        try:
            parsed = parse_generate_body(await request.json())
        except ValueError:
            return bria_error(400, "Request body is not valid JSON")
        except ValidationFailure as exc:
            return bria_error(exc.status, exc.message)
        task = new_task(rule, 0.0 if parsed.sync else state.latency, prompt=parsed.prompt,
                        seed=parsed.seed if parsed.seed is not None else secrets.randbelow(MAX_SEED + 1),
                        aspect_ratio=parsed.aspect_ratio, resolution=parsed.resolution)
        state.note_submission(parsed.prompt)
        return await answer_v2(request, task, parsed.sync)

    async def answer_v2(request: Request, task: SimTask, sync: bool) -> Response:
        if sync:
            await asyncio.sleep(state.latency)  # a sync call holds the connection while it "generates"
            state.add_task(task)
            if task.error is not None:
                code = task.error["code"]
                status = code if isinstance(code, int) and 400 <= code <= 599 else 500
                return bria_error(status, task.error["message"], task.error["details"])
            if task.produce is not None:
                files = await run_in_threadpool(state.outputs, task)
                task.ext = files[0][2]
            return JSONResponse({"request_id": task.request_id, "status": "COMPLETED",
                                 "result": result_body(request, task)})
        state.add_task(task)
        if task.produce is not None and task.error is None:
            # Work on it in the background, as Bria does: the task completes when both its
            # latency has passed and its files exist (a status request never renders).
            threading.Thread(target=produce_in_background, args=(task,), daemon=True).start()
        status_url = f"{request.base_url}v2/status/{task.request_id}"
        return JSONResponse({"request_id": task.request_id, "status_url": status_url}, status_code=202)

    def produce_in_background(task: SimTask) -> None:
        try:
            files = state.outputs(task)
            task.ext = files[0][2]
        except Exception as exc:  # the input could not be processed: Bria reports ERROR
            task.error = {"code": 422, "message": f"processing failed: {exc}", "details": type(exc).__name__}

    async def v2_edit(request: Request) -> Response:
        handler = endpoints.V2_EDIT[request.url.path]
        rule, response = await take_submit_fault(request)
        if response is not None:
            return response
        try:
            body = await json_body(request)
            sync = body.get("sync", False)
            if not isinstance(sync, bool):
                raise endpoints.BadRequest(422, "sync must be a boolean")
            job = await run_in_threadpool(handler, body)
        except endpoints.BadRequest as exc:
            return bria_error(exc.status, exc.message)
        task = new_task(rule, 0.0 if sync else state.latency, prompt="", seed=int(job.meta.get("seed") or 0),
                        aspect_ratio="1:1", resolution="1MP", produce=job.produce, result_key=job.result_key,
                        meta=job.meta)
        return await answer_v2(request, task, sync)

    for path in endpoints.V2_EDIT:
        app.add_api_route(path, v2_edit, methods=["POST"], include_in_schema=True)

    async def v1_call(request: Request) -> Response:
        """Bria v1: synchronous; the answer carries the result URLs in the endpoint's own shape."""
        handler = endpoints.v1_handler(request.url.path)
        if handler is None:
            return bria_error(404, "Not Found", f"no endpoint {request.url.path}")
        rule, response = await take_submit_fault(request)
        if response is not None:
            return response
        try:
            body = await json_body(request)
            job = await run_in_threadpool(handler, body)
        except endpoints.BadRequest as exc:
            return bria_error(exc.status, exc.message)
        task = new_task(rule, 0.0, prompt="", seed=job.seeds[0] if job.seeds else 0, aspect_ratio="1:1",
                        resolution="1MP", produce=job.produce, meta=job.meta)
        await asyncio.sleep(state.latency)
        if task.error is not None:
            code = task.error["code"]
            status = code if isinstance(code, int) and 400 <= code <= 599 else 500
            return bria_error(status, task.error["message"], task.error["details"])
        state.add_task(task)
        files = await run_in_threadpool(state.outputs, task)
        urls = [file_url(request, task, i, ext) for i, (_, _, ext) in enumerate(files)]
        if job.v1_shape == "result_url":
            return JSONResponse({"result_url": urls[0]})
        if job.v1_shape == "masks":
            return JSONResponse({"objects_masks": urls[0]})
        if job.v1_shape == "lifestyle":
            return JSONResponse({"result": [[url, seed, task.request_id] for url, seed in zip(urls, job.seeds)]})
        return JSONResponse({"result": [{"urls": [url], "seed": seed, "uuid": task.request_id}
                                        for url, seed in zip(urls, job.seeds)]})

    @app.post("/v1/prompt_enhancer")
    async def prompt_enhancer(request: Request) -> Response:
        rule, response = await take_submit_fault(request)
        if response is not None:
            return response
        if rule is not None and rule.kind == "error":
            return bria_error(500, rule.message or "Prompt enhancement failed", "simulated error")
        try:
            enhanced = endpoints.prompt_enhancer(await json_body(request))
        except endpoints.BadRequest as exc:
            return bria_error(exc.status, exc.message)
        return JSONResponse({"prompt variations": enhanced})

    app.add_api_route("/v1/{rest:path}", v1_call, methods=["POST"])

    @app.get("/v2/status/{request_id}")
    async def status(request_id: str, request: Request) -> Response:
        state.count("status")
        rule = state.faults.take("status", request_id)
        if rule is not None and (response := http_fault(rule)) is not None:
            return response
        await apply_delay(rule)
        if (response := unauthorized(request)) is not None:
            return response
        task = state.tasks.get(request_id)
        if task is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        if rule is not None and rule.kind == "error":
            task.error = _rule_error(rule)
            task.latency = 0.0
        if task.unknown_once or (rule is not None and rule.kind == "unknown"):
            task.unknown_once = False
            return JSONResponse({"request_id": request_id, "status": "UNKNOWN"})
        now = time.monotonic()
        rendering = task.produce is not None and task.error is None and task.ext is None
        if not task.done(now) or rendering:
            return JSONResponse({"request_id": request_id, "status": "IN_PROGRESS", "progress": task.progress(now)})
        if task.error is not None:
            return JSONResponse({"request_id": request_id, "status": "ERROR", "error": task.error})
        return JSONResponse({"request_id": request_id, "status": "COMPLETED", "result": result_body(request, task)})

    @app.get("/files/{name}")
    async def files(name: str) -> Response:
        state.count("download")
        rule = state.faults.take("download", name)
        if rule is not None and (response := http_fault(rule)) is not None:
            return response
        await apply_delay(rule)
        if rule is not None and rule.kind == "error":
            return bria_error(404, rule.message or "Not Found", "simulated error")
        stem, _, ext = name.rpartition(".")
        request_id, _, index_text = stem.partition("_")
        index = int(index_text) if index_text.isdigit() else 0
        task = state.tasks.get(request_id)
        if task is None or not task.done(time.monotonic()) or task.error is not None:
            return bria_error(404, "Not Found", f"no file named {name}")
        produced = await run_in_threadpool(state.outputs, task)
        if index >= len(produced) or produced[index][2] != ext:
            return bria_error(404, "Not Found", f"no file named {name}")
        data, media_type, _ = produced[index]
        return Response(content=data, media_type=media_type)

    # ------------------------------------------------------------------- control API
    @app.post("/_sim/faults")
    async def add_faults(rules: list[FaultRule]) -> dict[str, Any]:
        state.faults.add(rules)
        return {"pending": state.faults.pending()}

    @app.delete("/_sim/faults")
    async def clear_faults() -> dict[str, Any]:
        state.faults.clear()
        return {"pending": []}

    @app.get("/_sim/faults")
    async def list_faults() -> dict[str, Any]:
        return {"pending": state.faults.pending()}

    @app.post("/_sim/config")
    async def set_config(config: SimConfig) -> dict[str, Any]:
        state.latency = config.latency_seconds  # applies to tasks submitted from now on
        return {"latency_seconds": state.latency}

    @app.get("/_sim/stats")
    async def stats() -> dict[str, int]:
        with state.lock:
            return dict(state.counters)

    @app.get("/_sim/submissions")
    async def submissions(prefix: str = "") -> dict[str, Any]:
        """Generation tasks created per prompt (``prefix``: only prompts starting with it); a
        prompt counted more than once was submitted more than once. Cleared by /_sim/reset."""
        return state.submission_counts(prefix)

    @app.post("/_sim/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return {"counters": dict(state.counters), "latency_seconds": state.latency, "pending": []}

    tailored.mount(app, state)  # Bria tailored generation (LoRA): tailored.py
    return app
