"""Scenarios that kill the product's own processes: workers (SIGKILL under load) and beat."""

from __future__ import annotations

import os
import random
import re
import signal
import time
from typing import Any

from bench.chaos.cluster import Cluster
from bench.chaos.scenario import Scenario
from bench.common import log
from bench.stats import percentile


SWEEP_RECEIVED = re.compile(
    rb"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}): INFO/[^\]]*\] Task visiongate\.sweep\[[^\]]*\] received", re.M)


def sweep_times(log: bytes) -> list[float]:
    """Wall-clock times at which the worker received a sweep (its log's local timestamps)."""
    return [time.mktime(time.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
            for m in SWEEP_RECEIVED.finditer(log)]


def _worker_back(c: Cluster, before_proc: Any, before_kids: set[int], victim: int, offset: int,
                 timeout: float) -> tuple[str, float | None]:
    """After a kill: who brought the worker back (``product``: a new Celery process under the
    same ``visiongate worker``; ``harness``: ``visiongate worker`` exited and the run relaunched it)
    and when it was ready again (None: not within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c.sleep(0.1)
        proc = c.procs.running.get("worker")
        if proc is not before_proc:
            if c.ready("worker"):
                return "harness", time.monotonic()
            continue
        kids = set(c.worker_children())
        new = kids - before_kids
        if (victim not in kids and len(kids) >= c.a.worker_processes and new
                and c.ready_markers("worker", since=offset) >= len(new)):
            return "product", time.monotonic()
    proc = c.procs.running.get("worker")
    return ("harness" if proc is not before_proc else "nobody"), None


def kill(c: Cluster) -> dict[str, Any]:
    a = c.c
    c.fresh()
    s = Scenario(c, "kill", "Worker SIGKILLs under load",
                 f"{a.kills} × SIGKILL of a Celery worker process during {a.kill_jobs:,} jobs at {a.kill_rate:g}/s")
    s.traffic.submit(a.kill_jobs, a.kill_rate)
    by: dict[str, int] = {"product": 0, "harness": 0, "nobody": 0}
    back: list[float] = []
    after_load = 0
    rng = random.Random(a.seed)
    first = last = None
    for i in range(a.kills):
        point = (i + 1) * a.kill_jobs / (a.kills + 1)
        while len(s.traffic.submits) < point and not s.traffic.done_submitting:
            c.sleep(0.1)
        if not c.wait_ready(["worker"], 90):
            s.notes.append(f"kill {i + 1}: the worker was not ready within 90 s; killed anyway")
        c.sleep(a.kill_gap)  # some work in hand
        kids = c.worker_children()
        if not kids:
            s.notes.append(f"kill {i + 1}: no worker process to kill")
            continue
        victim = rng.choice(kids)
        path = c.procs.log_path("worker")
        offset = path.stat().st_size if path.exists() else 0
        before_proc = c.procs.running.get("worker")
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            continue
        t_kill = time.monotonic()
        first = first or t_kill
        after_load += s.traffic.done_submitting
        c.event("kill", "worker", pid=victim)
        who, ready_at = _worker_back(c, before_proc, set(kids), victim, offset, 90)
        by[who] += 1
        if ready_at is not None:
            back.append(ready_at - t_kill)
        last = ready_at or time.monotonic()
    if first is not None:
        s.windows.append((first, last))
    s.extra.update({
        "kills": sum(by.values()), "kills_after_load": after_load,
        "restarted_by_product": by["product"], "restarted_by_harness": by["harness"],
        "not_back_within_90s": sum(by.values()) - len(back),
        "worker_back_s_p50": _r(percentile(back, 0.5)), "worker_back_s_max": _r(max(back) if back else None),
        "restarts_text": f"{by['product']} by the product, {by['harness']} by the harness",
    })
    s.notes.append(
        f"{sum(by.values())} kills ({after_load} after the load ended): the worker came back "
        f"{by['product']} time(s) by itself (a new Celery process under the running `visiongate worker`) and "
        f"{by['harness']} time(s) only because the harness relaunched `visiongate worker` after it exited; "
        f"ready again after p50 {s.extra['worker_back_s_p50']} s, max {s.extra['worker_back_s_max']} s.")
    return s.finish()


def beat(c: Cluster) -> dict[str, Any]:
    a = c.c
    c.fresh(beats=a.beats)
    cycle = a.beat_down + a.beat_up
    load_s = a.lead + a.beat_kills * cycle + 5
    s = Scenario(c, "beat", f"Beat killed ({a.beats} beat process{'es' if a.beats > 1 else ''})",
                 f"{a.beat_kills} × {a.beat_down:g} s SIGKILL of beat #1 under load ({a.rate:g} jobs/s)")
    s.traffic.submit(int(a.rate * load_s), a.rate)
    c.sleep(a.lead)
    for i in range(a.beat_kills):
        proc = c.procs.running.get("beat")
        with s.fault():
            c.watched.discard("beat")  # down on purpose for the window
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            c.event("kill", "beat", pid=None if proc is None else proc.pid)
            c.sleep(a.beat_down)
            c.launch("beat")
        c.sleep(a.beat_up)
    record = s.finish()
    rows = c.job_rows()
    sweeps = sweep_times(c.procs.log_path("worker").read_bytes())

    def per_s(times: list[float], wa: float, wb: float) -> float | None:
        return round(sum(1 for t in times if wa <= t <= wb) / (wb - wa), 2) if wb > wa else None

    finished = [r["finished"] for r in rows if r["finished"] is not None]
    windows = []
    for start, end in s.windows:
        wa, wb = s.wall(start), s.wall(end)
        windows.append({"down_s": round(end - start, 1), "finished": sum(1 for t in finished if wa <= t <= wb),
                        "accepted": sum(1 for t, _, o, _ in s.traffic.submits if start <= t <= end and o == "202"),
                        "sweeps_per_s": per_s(sweeps, wa, wb)})
    pre = (s.wall(s.t0 + 2.0), s.wall(s.windows[0][0])) if s.windows else (0.0, 0.0)
    before = {"finished_per_s": per_s(finished, *pre), "sweeps_per_s": per_s(sweeps, *pre)}
    record["figures"]["beat_windows"] = windows
    record["figures"]["before_kills"] = before
    record["notes"].append(
        "while beat #1 was down: " + "; ".join(
            f"{w['finished']} jobs finished in {w['down_s']} s ({w['accepted']} accepted meanwhile), "
            f"{w['sweeps_per_s']} sweeps/s received by the worker" for w in windows)
        + f". Before the first kill: {before['finished_per_s']} jobs/s finished, {before['sweeps_per_s']} sweeps/s.")
    if a.beats > 1:
        record["notes"].append(f"{a.beats} beat processes ran, each with the product's command line (the same "
                               "data folder and schedule file, as two containers sharing a volume).")
    log("  " + record["notes"][-2 if a.beats > 1 else -1])
    return record


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)
