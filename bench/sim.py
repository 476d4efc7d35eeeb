"""The simulators as the benchmark runs them (Bria's at the root, the others at their paths): ``python -m bench.sim --port P``.

Two differences from ``visiongate simulator``, both so that the numbers describe the gateway:

* Image rendering is cached per (aspect ratio, resolution): the simulator's PNG renderer takes
  ~110 ms of CPU per 1 MP image, which on a 2-core machine would otherwise dominate every
  pipeline figure. Downloads still return a real ~1 MP PNG (the same bytes for every task).
  ``BENCH_SIM_REAL_RENDER=1`` turns the cache off.
* ``GET /_bench/tasks`` returns, per upstream task id, the wall-clock time (Unix seconds) at
  which the simulator considers it finished (created + latency), so the in-flight scenario can
  say how late the gateway noticed each one.

No access log (the simulator's own logging is not what is measured).
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from typing import Any

import uvicorn

from providers.bria.simulator import app as simapp
from providers.bria.simulator import state as simstate

_real_render = simstate.render_png


@functools.lru_cache(maxsize=64)
def _cached_render(aspect_ratio: str, resolution: str) -> bytes:
    return _real_render("visiongate benchmark", 0, aspect_ratio, resolution)


def _fast_render(prompt: str, seed: int, aspect_ratio: str = "1:1", resolution: str = "1MP") -> bytes:
    return _cached_render(aspect_ratio, resolution)


def create_app():  # noqa: ANN201 - FastAPI
    if os.environ.get("BENCH_SIM_REAL_RENDER") != "1":
        simstate.render_png = _fast_render
    app = simapp.create_app()
    state = app.state.sim
    offset = time.time() - time.monotonic()

    @app.get("/_bench/tasks")
    async def bench_tasks() -> dict[str, Any]:
        with state.lock:
            return {rid: t.created + t.latency + offset for rid, t in state.tasks.items()}

    # Every other provider's simulator at its own path, as the product's simulator process does.
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from providers.registry import PLUGINS

    others = [Mount(p.simulator_path, app=p.simulator()) for p in PLUGINS if p.simulator and p.simulator_path]
    return Starlette(routes=[*others, Mount("", app=app)])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning",
                access_log=False, workers=1)


if __name__ == "__main__":
    main()
