"""The product API under pyinstrument: ``uvicorn bench.profiled_api:create_app --factory``.

The profiler samples the event-loop thread from the end of startup to shutdown (SIGTERM) and
writes ``$BENCH_PROFILE_OUT.txt``: the call tree and a flat self-time list (the HTML
rendering of a 10-s run is ~30 MB, too big to keep in the repository). Work handed to the thread pool (the Celery
publish, ``run_in_threadpool``) runs on other threads and shows up here only as awaiting.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path

from api.app import create_app as product_app


def create_app():  # noqa: ANN201 - FastAPI
    from pyinstrument import Profiler

    app = product_app()
    inner = app.router.lifespan_context
    out = Path(os.environ["BENCH_PROFILE_OUT"])

    @asynccontextmanager
    async def lifespan(a):  # noqa: ANN001, ANN202
        async with inner(a) as state:
            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
            try:
                yield state
            finally:
                profiler.stop()
                tree = profiler.output_text(unicode=True, color=False, time="percent_of_total")
                flat = profiler.output_text(unicode=True, color=False, flat=True, flat_time="self")
                top = "\n".join(flat.splitlines()[:60])
                out.with_suffix(".txt").write_text(
                    "## Call tree (share of the event-loop thread's wall time; library frames folded)\n\n"
                    + tree + "\n\n## Flat: self time per function, top 60\n\n" + top + "\n")

    app.router.lifespan_context = lifespan
    return app
