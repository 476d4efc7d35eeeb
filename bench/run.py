"""``make bench``: start visiongate in production mode, load it, compare with same-run baselines.

    python -m bench.run                 # the full run (defaults = the issue's parameters)
    python -m bench.run --quick --out /tmp/b   # ~1 s per scenario, tiny N (the smoke test)
    python -m bench.run --help

What it starts (each a subprocess in its own session, stopped on exit, Ctrl-C or error):
the Bria simulator (``bench.sim``), the API under uvicorn with ``--api-processes`` processes,
the baselines app under the very same uvicorn command line, the Celery worker and beat with the
product's command lines (``cli.main.component_command``), a no-op Celery worker for the pipeline
baseline, and the load generator (``bench.load``) as a separate process on loopback.
PostgreSQL and Redis must be running (``scripts/ensure-services.sh``); the run creates and drops
its own database and uses its own Redis database number.

Results: ``<out>/results.md`` (the table) and ``<out>/results.json`` (every repetition), plus
``<out>/intake-profile.txt``/``.html`` (pyinstrument) unless ``--no-profile``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, log
from bench.scenario_batch import BatchScenarios
from bench.scenario_pipeline import PipelineScenarios
from bench.scenario_reads import ReadScenarios
from bench.system import System


# --------------------------------------------------------------------------- configuration
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results folder")
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: ~1 s per scenario, 1 repetition, tiny N, no profile")
    p.add_argument("--scenarios", default="intake,pipeline,status,inflight,batch",
                   help="comma-separated subset of intake,status,pipeline,inflight,batch")
    p.add_argument("--repeats", type=int, default=3, help="repetitions of every scenario")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    p.add_argument("--connections", type=int, default=64, help="concurrent connections (intake, status)")
    p.add_argument("--api-processes", type=int, default=2,
                   help="uvicorn processes for the API and for the baselines app (default 2 = cores)")
    p.add_argument("--worker-pool", default="threads", help="Celery pool (product default: threads)")
    p.add_argument("--worker-concurrency", type=int, default=8, help="Celery concurrency (product default: 8)")
    p.add_argument("--worker-processes", type=int, default=os.cpu_count() or 1,
                   help="Celery worker processes, for the product and the no-op baseline alike "
                        "(product default: one per core)")
    p.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator HTTP client")
    p.add_argument("--loadgen-cpu", type=int, default=None, help="pin the load generator to this CPU")
    p.add_argument("--pipeline-rate", type=float, default=5.0,
                   help="jobs/s of the paced (latency) phase of the pipeline scenario")
    p.add_argument("--pipeline-max-jobs", type=int, default=5000, help="cap of the burst phase")
    p.add_argument("--status-jobs", type=int, default=400,
                   help="jobs read by the status scenario (half completed, half in progress)")
    p.add_argument("--inflight-jobs", type=int, default=10_000, help="jobs of the in-flight scenario")
    p.add_argument("--inflight-latency", type=float, default=60.0, help="upstream seconds per job")
    p.add_argument("--inflight-repeats", type=int, default=None, help="default: --repeats")
    p.add_argument("--inflight-drain", type=float, default=300.0,
                   help="seconds allowed after the last upstream task finished")
    p.add_argument("--batch-lines", type=int, default=None,
                   help="lines of the batch scenario's JSONL upload (default 50,000; --quick: 50)")
    p.add_argument("--batch-drain", type=float, default=None,
                   help="seconds allowed for the batch's jobs to complete after it was accepted "
                        "(default 300; --quick: 60); the report says how many completed")
    p.add_argument("--batch-repeats", type=int, default=None, help="default: --repeats")
    p.add_argument("--db", default="visiongate_bench", help="database (created and dropped)")
    p.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/14", help="broker (this db is flushed)")
    p.add_argument("--plan", default="enterprise",
                   help="plan of the benchmark tenant (enterprise: unmetered; pro: metered, so every "
                        "submission also reserves credits); its limits are raised out of the way")
    p.add_argument("--no-profile", action="store_true", help="skip the pyinstrument intake profile")
    p.add_argument("--lock-wait", type=float, default=900.0,
                   help="seconds to wait for another run using the same database or Redis db")
    p.add_argument("--keep", action="store_true", help="keep the database and the data dir")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 1
        args.duration = 1.0
        args.warmup = 0.3
        args.connections = min(args.connections, 8)
        args.api_processes = 1
        args.pipeline_rate = 10.0
        args.pipeline_max_jobs = 20
        args.status_jobs = 20
        args.inflight_jobs = 20
        args.inflight_latency = 1.0
        args.inflight_drain = 30.0
        args.no_profile = True
    if args.inflight_repeats is None:
        args.inflight_repeats = args.repeats
    if args.batch_repeats is None:
        args.batch_repeats = args.repeats
    if args.batch_lines is None:
        args.batch_lines = 50 if args.quick else 50_000
    if args.batch_drain is None:
        args.batch_drain = 60.0 if args.quick else 300.0
    if args.batch_lines < 1 or args.batch_drain <= 0:
        p.error("--batch-lines must be ≥ 1 and --batch-drain > 0")
    return args


# --------------------------------------------------------------------------- the run
class Bench(System, ReadScenarios, PipelineScenarios, BatchScenarios):
    """The system and every scenario (``intake``, ``pipeline``, ``status``, ``inflight``, ``batch``)."""


@contextlib.contextmanager
def exclusive(args: argparse.Namespace):
    """One run at a time per database and per Redis database on this machine (a run drops its
    database and flushes its Redis database; two at once would wreck each other)."""
    names = [f"db-{args.db}", "redis-" + re.sub(r"[^A-Za-z0-9]+", "-", args.redis.split("://", 1)[-1])]
    files = []
    try:
        for name in names:
            fh = open(Path(tempfile.gettempdir()) / f"visiongate-bench.{name}.lock", "w")
            files.append(fh)
            deadline = time.monotonic() + args.lock_wait
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"another benchmark run holds {fh.name}")
                    if not getattr(fh, "_told", False):
                        log(f"waiting for another benchmark run ({fh.name})")
                        fh._told = True  # type: ignore[attr-defined]
                    time.sleep(1.0)
        yield
    finally:
        for fh in files:
            fh.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with exclusive(args):
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    bench = Bench(args)

    def on_term(*_a: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    started = time.time()
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    try:
        bench.setup()
        bench.start("sim")
        for name in ("intake", "pipeline", "status", "inflight", "batch"):  # pipeline makes status's jobs
            if name in wanted:
                getattr(bench, name)()
        bench.write(started)
    except KeyboardInterrupt:
        log("interrupted; stopping every process")
        return 130
    except Exception:
        for name in list(bench.procs.running):
            print(f"----- {name} log (tail)\n{bench.procs.log_tail(name)}", file=sys.stderr)
        raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        bench.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
