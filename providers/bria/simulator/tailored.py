"""Bria Tailored Generation for the simulator: the management API (projects, datasets, images,
models, training) in memory, and tailored generation with the trained models. This module mounts
the routes (fault injection, auth, the JSON body); the handlers, the state and the looks are
tailored_handlers.py, tailored_state.py and tailored_looks.py.

Paths, bodies and answers are the ones the adapter uses (providers/bria/tailored/client.py, sources
[T1]–[T3] there): ``/v1/tailored-gen/…`` JSON with the ``api_token`` header, integer ids, 201 on
create, 204 on delete, ``{"error": {"code", "message", "details"}}`` on failure, and Bria's state
rules (409/412). What it makes up is made from the data:

* an uploaded image's caption describes the image itself (size, orientation, dominant and
  secondary colours by name, brightness), measured with Pillow, after the dataset's
  ``caption_prefix``;
* training moves Created → InProgress → Completed (or Failed, when a fault says so; Stopping →
  Stopped when stopped) after ``training_seconds`` (``SIM_TRAINING_SECONDS``, default 20;
  ``POST /_sim/tailored/config`` changes it);
* a trained model remembers the palette of its training images; ``/v1/text-to-image/tailored/
  {id}`` and ``/v1/text-to-vector/tailored/{id}`` draw with that palette, seeded by prompt and
  seed (PNG, or the PNG traced into an SVG), answering ``{"result": [{"urls": [url], "seed"}]}``.

Faults (``/_sim/faults``) apply with ``on: "submit"``; the subject is "METHOD path body", so a
rule can ``match`` e.g. ``"tailored-gen/projects"``. An ``error`` fault on ``start_training``
makes that training end in ``Failed``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from providers.bria.simulator import tailored_handlers as h
from providers.bria.simulator.responses import bria_error, http_fault
from providers.bria.simulator.tailored_state import DEFAULT_TRAINING_SECONDS, Refused, TailoredConfig, TailoredState


def mount(app: FastAPI, sim: Any) -> TailoredState:
    """Add the tailored-generation routes to the simulator app (ahead of its catch-all v1 route)
    and return their state. ``sim`` is the app's ``SimState`` (api_token, faults, latency)."""
    t = TailoredState(training_seconds=float(os.environ.get("SIM_TRAINING_SECONDS", DEFAULT_TRAINING_SECONDS)))
    app.state.tailored = t
    router = APIRouter()
    B = "/v1/tailored-gen"

    async def guard(request: Request) -> tuple[Any, dict[str, Any], Response | None]:
        """Fault injection, auth and the JSON body: (fault rule, body, early response)."""
        raw = (await request.body()).decode("utf-8", "replace")
        sim.count("submit")
        rule = sim.faults.take("submit", f"{request.method} {request.url.path} {raw}")
        if rule is not None and rule.kind in ("429", "500", "503"):
            return rule, {}, http_fault(rule)
        if rule is not None and rule.kind == "timeout":
            await asyncio.sleep(rule.delay)
        token = request.headers.get("api_token")
        if not token or (sim.api_token is not None and not secrets.compare_digest(token, sim.api_token)):
            return rule, {}, bria_error(401, "Unauthorized", "missing or invalid api_token header")
        if rule is not None and rule.kind == "error" and "start_training" not in request.url.path:
            code = rule.code if isinstance(rule.code, int) and 400 <= rule.code <= 599 else 500
            return rule, {}, bria_error(code, rule.message or "simulated error", "simulated error")
        body: dict[str, Any] = {}
        if raw.strip():
            try:
                parsed = await request.json()
            except ValueError:
                return rule, {}, bria_error(400, "Request body is not valid JSON")
            if not isinstance(parsed, dict):
                return rule, {}, bria_error(400, "Request body must be a JSON object")
            body = parsed
        return rule, body, None

    def handler(fn):
        async def endpoint(request: Request) -> Response:
            rule, body, early = await guard(request)
            if early is not None:
                return early
            try:
                with t.lock:
                    result = fn(t, request, body, rule, **request.path_params)
                if asyncio.iscoroutine(result):
                    result = await result
            except Refused as exc:
                return bria_error(exc.status, exc.message)
            if isinstance(result, Response):
                return result
            status, payload = result
            return Response(status_code=204) if status == 204 else JSONResponse(payload, status_code=status)

        endpoint.__name__ = getattr(fn, "__name__", None) or fn.func.__name__ + "_" + fn.keywords["kind"]
        return endpoint

    routes = [
        ("POST", f"{B}/projects", h.create_project), ("GET", f"{B}/projects/{{project_id}}", h.get_project),
        ("PUT", f"{B}/projects/{{project_id}}", h.update_project),
        ("DELETE", f"{B}/projects/{{project_id}}", h.delete_project),
        ("POST", f"{B}/datasets", h.create_dataset), ("GET", f"{B}/datasets/{{dataset_id}}", h.get_dataset),
        ("PUT", f"{B}/datasets/{{dataset_id}}", h.update_dataset),
        ("DELETE", f"{B}/datasets/{{dataset_id}}", h.delete_dataset),
        ("POST", f"{B}/datasets/{{dataset_id}}/images", h.upload_image),
        ("GET", f"{B}/datasets/{{dataset_id}}/images", h.list_images),
        ("PUT", f"{B}/datasets/{{dataset_id}}/images", h.regenerate_captions),
        ("GET", f"{B}/datasets/{{dataset_id}}/images/{{image_id}}", h.get_image),
        ("PUT", f"{B}/datasets/{{dataset_id}}/images/{{image_id}}", h.update_caption),
        ("DELETE", f"{B}/datasets/{{dataset_id}}/images/{{image_id}}", h.delete_image),
        ("POST", f"{B}/models", h.create_model), ("GET", f"{B}/models/{{model_id}}", h.get_model),
        ("PUT", f"{B}/models/{{model_id}}", h.update_model), ("DELETE", f"{B}/models/{{model_id}}", h.delete_model),
        ("POST", f"{B}/models/{{model_id}}/start_training", h.start_training),
        ("POST", f"{B}/models/{{model_id}}/stop_training", h.stop_training),
        ("POST", "/v1/text-to-image/tailored/{model_id}", partial(h.generate, sim=sim, kind="image")),
        ("POST", "/v1/text-to-vector/tailored/{model_id}", partial(h.generate, sim=sim, kind="vector")),
    ]
    for method, path, fn in routes:
        router.add_api_route(path, handler(fn), methods=[method])

    @router.get("/files/tailored/{name}")
    async def tailored_file(name: str) -> Response:
        sim.count("download")
        entry = t.files.get(name)
        if entry is None:
            return bria_error(404, "Not Found", f"no file named {name}")
        return Response(content=entry[0], media_type=entry[1])

    @router.post("/_sim/tailored/config")
    async def tailored_config(config: TailoredConfig) -> dict[str, Any]:
        if config.training_seconds is not None:
            t.training_seconds = config.training_seconds
        if config.captions_seconds is not None:
            t.captions_seconds = config.captions_seconds
        return {"training_seconds": t.training_seconds, "captions_seconds": t.captions_seconds}

    before = len(app.router.routes)
    app.include_router(router)
    # Put these routes first: the simulator's generic "POST /v1/{rest:path}" must not shadow them.
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
    return t
