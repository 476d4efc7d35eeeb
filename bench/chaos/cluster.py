"""The system under a fault run: the benchmark's ``System`` (same production command lines, same
environment) on the run's private PostgreSQL and Redis, plus what a fault run needs on top:

* an outer supervisor, as compose or systemd would be: ``tend()`` (called by every wait of the
  run) relaunches a product process (API, worker, beat) that exited although nobody stopped it,
  and records that it had to;
* non-blocking readiness (a process relaunched during an outage may not be ready for a while);
* a fresh start per scenario: product processes stopped, jobs and broker wiped, simulator reset;
* the database read out at the end of a scenario (tolerating an unreachable server meanwhile).
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import time
from typing import Any

import httpx
import psycopg

from bench import procs as P
from bench.chaos.services import Services
from bench.common import ROOT, log
from bench.system import System

PRODUCT = ("api", "worker", "beat", "beat2")
RESTART_SEC = 1.0
FINAL_SQL = "('COMPLETED', 'ERROR', 'CANCELLED', 'EXPIRED')"
WIPE_SQL = ("TRUNCATE jobs, batches, job_webhooks, webhook_events, webhook_deliveries, webhook_attempts, "
            "credit_ledger CASCADE")


def bench_args(a: argparse.Namespace, services: Services) -> argparse.Namespace:
    """The benchmark's settings (bench.run's parser), pointed at the private servers."""
    from bench.run import parse_args

    return parse_args(["--pg-admin", services.pg.admin_dsn, "--redis", services.redis.url,
                       "--db", "visiongate_chaos", "--out", a.out,
                       "--worker-processes", str(a.worker_processes),
                       "--api-processes", str(a.api_processes), "--lock-wait", "0"])


class Cluster(System):
    def __init__(self, a: argparse.Namespace, services: Services):
        super().__init__(bench_args(a, services))
        self.c = a
        self.svc = services
        self.env.update({
            # Webhooks of the webhook scenario go to a receiver on 127.0.0.1.
            "VISIONGATE_OUTBOUND_ALLOW_HOSTS": "127.0.0.1",
            "VISIONGATE_WEBHOOK_RETRY_SCHEDULE": a.webhook_schedule,
            # A submit that takes longer than this is a timeout (the upstream scenario's
            # timeouts are this plus 2 s): the product default (30 s) would make it long.
            "VISIONGATE_UPSTREAM_TIMEOUT_SECONDS": str(a.upstream_timeout),
        })
        self.watched: set[str] = set()
        self.launched: dict[str, tuple[float, int]] = {}  # name -> (monotonic, log offset)
        self.events: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.scenario: Any = None  # the scenario running now
        self.run_id = secrets.token_hex(3)  # in every prompt: no two runs' jobs look alike

    # ------------------------------------------------------------------ processes
    def launch(self, name: str) -> subprocess.Popen:
        """Start a product process (or the simulator) without waiting for it."""
        self.procs.running.pop(name, None)
        path = self.procs.log_path(name)
        offset = path.stat().st_size if path.exists() else 0
        if name == "beat2":  # a second beat: the product's command line as it is (same data folder)
            cmd = self.command("beat")
            proc = self.procs.start(name, cmd, self.env, ROOT)
            self.started_pids.append(proc.pid)
        else:
            proc = self._launch(name)
        self.launched[name] = (time.monotonic(), offset)
        if name in PRODUCT:
            self.watched.add(name)
        return proc

    def ready(self, name: str) -> bool:
        proc = self.procs.running.get(name)
        if proc is None or proc.poll() is not None:
            return False
        if name == "api":
            try:
                return httpx.get(f"http://127.0.0.1:{self.api_port}/health", timeout=1.0).status_code < 500
            except httpx.HTTPError:
                return False
        if name == "sim":
            try:
                return httpx.get(f"http://127.0.0.1:{self.sim_port}/_sim/stats", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False
        if name == "worker":
            return self.ready_markers(name) >= self.a.worker_processes
        return time.monotonic() - self.launched[name][0] > 2.0  # beat logs nothing when ready

    def ready_markers(self, name: str, since: int | None = None) -> int:
        path = self.procs.log_path(name)
        offset = self.launched[name][1] if since is None else since
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read().count(b" ready.")
        except OSError:
            return 0

    def wait_ready(self, names: tuple[str, ...] | list[str], timeout: float = 90.0) -> bool:
        deadline = time.monotonic() + timeout
        waiting = list(names)
        while waiting and time.monotonic() < deadline:
            waiting = [n for n in waiting if not self.ready(n)]
            if waiting:
                self.sleep(0.2)
        if waiting:
            log(f"  not ready within {timeout:.0f} s: {', '.join(waiting)}")
        return not waiting

    def stop_proc(self, name: str) -> None:
        """Stop a process on purpose: it is no longer supervised."""
        self.watched.discard(name)
        self.procs.stop(name)

    def tend(self) -> None:
        """Relaunch watched processes that exited (recorded as an event)."""
        for name in sorted(self.watched):
            proc = self.procs.running.get(name)
            if proc is not None and proc.poll() is None:
                continue
            if time.monotonic() - self.launched.get(name, (0.0, 0))[0] < RESTART_SEC:
                continue  # as a service manager would: no faster than once a second
            code = None if proc is None else proc.returncode
            self.event("exit", name, code=code, restarted_by="harness",
                       log_tail=self.procs.log_tail(name, 600).splitlines()[-3:])
            log(f"  {name} exited ({code}); relaunched by the harness")
            self.launch(name)

    def event(self, kind: str, name: str, **kw: Any) -> None:
        self.events.append({"at": time.monotonic(), "kind": kind, "process": name, **kw})

    def sleep(self, seconds: float) -> None:
        """Sleep while supervising."""
        end = time.monotonic() + seconds
        while True:
            self.tend()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.2, left))

    # ------------------------------------------------------------------ per scenario
    def fresh(self, beats: int = 1) -> None:
        """Stop the product, wipe jobs and broker, reset the simulator, start the product again."""
        for name in PRODUCT:
            self.stop_proc(name)
        if not self.svc.pg.up:
            self.svc.pg.start()
        if not self.svc.redis.up:
            self.svc.redis.start()
        with self.pg() as conn:
            conn.execute(WIPE_SQL)
        self.svc.redis.client().flushall()
        if "sim" not in self.procs.running or self.procs.running["sim"].poll() is not None:
            self.launch("sim")
        self.wait_ready(["sim"], 60)
        self.sim("POST", "/_sim/reset")
        self.sim("POST", "/_sim/config", json={"latency_seconds": self.c.sim_latency})
        self.events = []
        names = ["api", "worker", "beat", "beat2"][:2 + beats]
        for name in names:
            self.launch(name)
        if not self.wait_ready(names, 120):
            raise RuntimeError("the product did not start: " + ", ".join(
                f"{n}: {self.procs.log_tail(n, 400)}" for n in names if not self.ready(n)))

    def sim_faults(self, rules: list[dict[str, Any]]) -> None:
        for i in range(0, len(rules), 500):
            self.sim("POST", "/_sim/faults", json=rules[i:i + 500])

    def submissions(self, tag: str) -> dict[str, Any]:
        return self.sim("GET", "/_sim/submissions", params={"prefix": tag + " "})

    # ------------------------------------------------------------------ the database
    def db(self, sql: str, params: tuple = ()) -> list[tuple] | None:
        """Rows of ``sql``, or None when the database cannot be reached (an outage)."""
        try:
            with psycopg.connect(self.pg_dsn, autocommit=True, connect_timeout=3) as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.Error:
            return None

    def unfinished(self) -> int | None:
        rows = self.db(f"SELECT count(*) FILTER (WHERE status NOT IN {FINAL_SQL}) FROM jobs")
        return None if rows is None else int(rows[0][0])

    def settle(self, done: Any, bound: float, extra: Any = None) -> float | None:
        """Wait (supervising) until ``done()`` (the load is over) and every job is final (and
        ``extra()``, if given); returns the monotonic time it happened, None if not within ``bound``."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if done() and self.unfinished() == 0 and (extra is None or extra()):
                return time.monotonic()
            self.sleep(0.5)
        return None

    def job_rows(self) -> list[dict[str, Any]]:
        rows = self.db("SELECT id, status, error_code, attempts, extract(epoch FROM created_at),"
                       " extract(epoch FROM finished_at), params->>'prompt' FROM jobs") or []
        return [{"id": r[0], "status": r[1], "error_code": r[2], "attempts": r[3],
                 "created": float(r[4]), "finished": None if r[5] is None else float(r[5]), "prompt": r[6]}
                for r in rows]

    def deliveries(self) -> dict[str, int]:
        rows = self.db("SELECT status, count(*) FROM webhook_deliveries GROUP BY status") or []
        return {r[0]: int(r[1]) for r in rows}

    def worker_children(self) -> list[int]:
        """The worker's Celery processes: the supervisor's children (or the process itself)."""
        proc = self.procs.running.get("worker")
        if proc is None or proc.poll() is not None:
            return []
        kids = [p for p in P.children(proc.pid) if P.alive(p)]
        return kids or [proc.pid]

    def meta(self, started: float) -> dict[str, Any]:  # type: ignore[override]
        a = self.c
        return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": getattr(self, "commit", None),
                "wall_s": round(time.time() - started, 1), "quick": a.quick,
                "api_processes": a.api_processes, "worker_processes": a.worker_processes,
                "worker": f"{a.worker_processes} process(es), pool {self.a.worker_pool}, "
                          f"concurrency {self.a.worker_concurrency} each",
                "sim_latency_s": a.sim_latency, "settle_bound_s": a.settle,
                "upstream_timeout_s": a.upstream_timeout, "webhook_schedule": a.webhook_schedule,
                "env": {k: v for k, v in self.env.items() if k.startswith("VISIONGATE_") and "SECRET" not in k},
                "postgres_port": self.svc.pg.port, "redis_port": self.svc.redis.port,
                "args": json.loads(json.dumps(vars(a), default=str))}
