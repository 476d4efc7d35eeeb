"""Jobs whose upstream answers only when the work is done (OpenAI's image calls), many at once.

    python -m bench.slow_upstream [--jobs 1000] [--latency 30] [--worker-processes 2]

Starts the product in production mode (PostgreSQL, Redis, the API, `visiongate worker`, beat,
the simulators) like ``make bench``, with the OpenAI simulator answering each image call after
``--latency`` seconds (one prompt for every job: the simulator renders the image once and serves
it from its cache, so its own rendering is not charged to the gateway), submits ``--jobs`` OpenAI
generate-image jobs as fast as it can and waits
until all are final. Without in-flight calls every job would hold a worker thread for the whole
call: ``processes × concurrency`` threads at ``latency`` s each (2 × 8 threads at 30 s = 0.53
jobs/s, 1,000 jobs in about 31 minutes). The report gives the wall-clock time from the first
submit to the last final job next to that bound, the worker's peak RSS and thread count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

from bench import procs as P
from bench.run import Bench, log, parse_args

PATH = "/api/v1/openai/image/generation/generate-image"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.slow_upstream", description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--latency", type=float, default=30.0)
    p.add_argument("--worker-processes", type=int, default=2)
    p.add_argument("--max-in-flight", type=int, default=1000, help="OPENAI_MAX_IN_FLIGHT per worker process")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "slow-upstream.json"))
    a = p.parse_args(argv)
    bench = Bench(parse_args(["--worker-processes", str(a.worker_processes), "--db", "visiongate_bench_slow",
                              "--redis", "redis://127.0.0.1:6379/6"]))
    bench.env.update({
        "SIM_OPENAI_LATENCY_SECONDS": str(a.latency),
        "OPENAI_MAX_IN_FLIGHT": str(a.max_in_flight),
        "VISIONGATE_SYNC_DEADLINE_SECONDS": "0",  # 202 at once: the client polls
        "VISIONGATE_UPSTREAM_LIMITS": json.dumps({"openai": {"rpm": None, "concurrency": None}}),
        "VISIONGATE_JOB_TIMEOUT_SECONDS": str(max(600, a.latency * 10)),
    })
    try:
        bench.setup()
        bench.start("sim", "api", "worker", "beat")
        worker = bench.procs.running["worker"]
        started = time.monotonic()
        accepted = asyncio.run(_submit(bench, a.jobs))
        submitted = time.monotonic() - started
        threads = 0

        def sample() -> None:
            nonlocal threads
            threads = max(threads, sum(_threads(pid) for pid in P.tree(worker.pid)))

        counts: dict[str, int] = {}
        with bench.pg() as conn:
            while time.monotonic() - started < a.latency * 20 + 120:
                counts = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
                sample()
                if sum(counts.get(s, 0) for s in ("COMPLETED", "ERROR", "CANCELLED")) >= accepted:
                    break
                time.sleep(0.5)
        elapsed = time.monotonic() - started
        with bench.pg() as conn:  # where the time went: waiting for a start, the call, finishing
            phases = conn.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)),"
                " percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),"
                " extract(epoch FROM max(finished_at) - min(created_at)) FROM jobs").fetchone()
        bound = a.jobs / (a.worker_processes * bench.a.worker_concurrency) * a.latency
        report = {"jobs": a.jobs, "accepted": accepted, "latency_s": a.latency, "counts": counts,
                  "submit_s": round(submitted, 2), "all_final_s": round(elapsed, 2),
                  "overhead_s": round(elapsed - a.latency, 2),
                  "thread_per_call_bound_s": round(bound, 1), "speedup_vs_thread_per_call": round(bound / elapsed, 1),
                  "queued_to_started_p50_p99_s": [round(float(x), 2) for x in phases[0] or []],
                  "started_to_finished_p50_p99_s": [round(float(x), 2) for x in phases[1] or []],
                  "first_created_to_last_finished_s": round(float(phases[2] or 0), 2),
                  "worker_processes": a.worker_processes, "worker_threads_peak": threads,
                  "worker_rss_mib_peak": P.peak_rss_mib(worker.pid)["total_mib"]}
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
        log(json.dumps(report))
        return 0 if counts.get("COMPLETED", 0) == accepted else 1
    finally:
        bench.teardown()


def _threads(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def _submit(bench: Bench, n: int) -> int:
    url = f"http://127.0.0.1:{bench.api_port}{PATH}"
    headers = {"X-API-Key": bench.api_key}
    accepted = 0
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
        sem = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            nonlocal accepted
            async with sem:
                resp = await client.post(url, headers=headers, json={"prompt": "a slow upstream"})
                if resp.status_code in (200, 202):
                    accepted += 1
                else:
                    log(f"  submit {i}: {resp.status_code} {resp.text[:200]}")

        await asyncio.gather(*(one(i) for i in range(n)))
    return accepted


if __name__ == "__main__":
    sys.exit(main())
