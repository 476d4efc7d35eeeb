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
import datetime as dt
import fcntl
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from bench import procs as P
from bench.report import render_markdown
from bench.stats import percentile
from core.jobs.states import FINISHED_OR_EXPIRED, values

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
GEN_PATH = "/api/v1/bria/image/generation/generate-image"
# A fixed seed: the simulator renders this image once and serves it from its cache afterwards,
# so the upstream's own rendering (40–70 ms of CPU per 1 MP PNG, on the same 2 cores) is not
# charged to the gateway. Every job still goes through submit, status checks, download and
# storage of a real PNG.
GEN_BODY = json.dumps({"prompt": "a red bicycle leaning on a stone wall at dusk", "seed": 7, "sync": False})
DONE = values(FINISHED_OR_EXPIRED)  # a job in one of these needs nothing more


def _git_commit() -> str | None:
    """The measured code: HEAD, marked "+changes" when the tree has uncommitted edits."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+changes" if head and dirty else head or None


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
class Bench:
    def __init__(self, args: argparse.Namespace):
        self.a = args
        self.out = Path(args.out)
        self.data_dir = Path(tempfile.mkdtemp(prefix="visiongate-bench-"))
        self.procs = P.Procs(self.data_dir / "logs")
        self.api_port, self.base_port, self.sim_port, self.prof_port = (free_port() for _ in range(4))
        admin = args.pg_admin.rsplit("/", 1)[0]
        self.pg_dsn = f"{admin}/{args.db}"
        self.db_url = "postgresql+psycopg://" + self.pg_dsn.split("://", 1)[1]
        self.redis = redis.Redis.from_url(args.redis)
        self.env = self._env()
        self.api_key = ""
        self.results: dict[str, Any] = {"scenarios": {}}
        self.started_pids: list[int] = []
        self.loadavg_start = [round(x, 2) for x in os.getloadavg()]

    # ------------------------------------------------------------------ environment
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VISIONGATE_", "BRIA_", "SIM_", "BENCH_"))
               and k not in ("DATABASE_URL", "BROKER_URL", "REDIS_URL")}
        env.update({
            "DATABASE_URL": self.db_url,
            "BROKER_URL": self.a.redis,
            "VISIONGATE_ENV": "production",
            "VISIONGATE_SECRET_KEY": "visiongate-bench-secret-0123456789abcdefghij",
            "VISIONGATE_DATA_DIR": str(self.data_dir),
            "VISIONGATE_HOST": "127.0.0.1",
            "VISIONGATE_PORT": str(self.api_port),
            "VISIONGATE_API_PROCESSES": str(self.a.api_processes),
            "VISIONGATE_WORKER_POOL": self.a.worker_pool,
            "VISIONGATE_WORKER_CONCURRENCY": str(self.a.worker_concurrency),
            "VISIONGATE_SIMULATOR_HOST": "127.0.0.1",
            "VISIONGATE_SIMULATOR_PORT": str(self.sim_port),
            "SIM_LATENCY_SECONDS": "0",
            # The upstream is the simulator: Bria's quota (1000 rpm by default) would make the
            # in-flight and pipeline scenarios measure the quota instead of the gateway.
            "VISIONGATE_UPSTREAM_LIMITS": json.dumps({"bria": {"rpm": None, "concurrency": None}}),
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def command(self, name: str) -> list[str]:
        """The product's command line for a component (cli.main.component_command)."""
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("VISIONGATE_")})
        from cli.main import component_command
        from core.settings import Settings

        return component_command(name, Settings(_env_file=None))  # type: ignore[call-arg]

    # ------------------------------------------------------------------ services
    def setup(self) -> None:
        self.commit = _git_commit()
        self.out.mkdir(parents=True, exist_ok=True)
        log(f"data dir {self.data_dir}; database {self.a.db}; broker {self.a.redis}")
        with psycopg.connect(self.a.pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.a.db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.a.db}"')
        self._check_redis_unused()
        self.redis.flushdb()
        # `keys create` migrates first (as every tenant/key command does).
        out = self.cli("keys", "create", "--tenant", "bench", "--plan", self.a.plan, "--name", "bench")
        match = re.search(r"api key: (\S+)", out)
        if not match:
            raise RuntimeError(f"no key in: {out}")
        self.api_key = match.group(1)
        # The plan's metering stays as it is; its limits must not turn the load into 429s or
        # hold jobs in line, and its balance must not run out.
        big = 10**9
        try:
            self.cli(["tenants", "set-limits", "bench", "--rpm", str(big), "--status-rpm", str(big),
                      "--concurrency", str(big)],
                     ["credits", "add", "bench", str(10**12), "--note", "benchmark"])
        except RuntimeError as exc:  # a CLI without these commands: set the columns directly
            log(f"  (tenant limits via SQL: {str(exc).splitlines()[-1][:120]})")
            with self.pg() as conn:
                cols = {r[0] for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name='tenants'")}
                if "limits" in cols:
                    conn.execute("UPDATE tenants SET limits = %s::jsonb WHERE name = 'bench'", (json.dumps(
                        {"rpm": big, "status_rpm": big, "concurrency": big}),))
                if "credits" in cols:
                    conn.execute("UPDATE tenants SET credits = %s WHERE name = 'bench'", (10**12,))
        from bench.baseline_app import create_tables

        create_tables(self.db_url)

    def _check_redis_unused(self, wait: float = 15.0) -> None:
        """Nobody else may use our Redis database: a stray worker would eat our messages."""
        db = self.redis.connection_pool.connection_kwargs.get("db", 0)
        deadline = time.monotonic() + wait
        while True:
            with redis.Redis.from_url(self.a.redis, single_connection_client=True) as probe:
                me = probe.client_id()
                others = [c for c in probe.client_list()
                          if int(c.get("db", -1)) == db and int(c["id"]) != int(me)]
            if not others:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{len(others)} other client(s) use Redis database {db} (e.g. {others[0]['addr']}, "
                    f"last command {others[0].get('cmd')}); stop them or pick another --redis database")
            time.sleep(1.0)

    def cli(self, *argvs: str | list[str]) -> str:
        """``visiongate ARGV`` (several lists: run side by side); returns the first one's stdout."""
        runs = [list(argvs)] if isinstance(argvs[0], str) else [list(a) for a in argvs]
        started = [(argv, subprocess.Popen([PY, "-m", "cli.main", *argv], cwd=ROOT, env=self.env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                   for argv in runs]
        outs = []
        for argv, proc in started:
            try:
                out, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"visiongate {' '.join(argv)} failed: {err[-2000:]}")
            outs.append(out)
        return outs[0]

    def pg(self) -> psycopg.Connection:
        return psycopg.connect(self.pg_dsn, autocommit=True)

    def start(self, *names: str) -> None:
        """Start components side by side, then wait until each one serves."""
        procs = [(name, self._launch(name)) for name in names]
        for name, proc in procs:
            self._ready(name, proc)

    def _launch(self, name: str) -> subprocess.Popen:
        env = self.env
        if name == "sim":
            cmd = [PY, "-m", "bench.sim", "--host", "127.0.0.1", "--port", str(self.sim_port)]
        elif name == "api":
            cmd = self.command("api")
        elif name == "baseline":
            cmd = self.command("api")
            cmd[cmd.index("api.app:create_app")] = "bench.baseline_app:create_app"
            cmd[cmd.index("--port") + 1] = str(self.base_port)
        elif name == "profiled-api":
            cmd = self.command("api")
            cmd[cmd.index("api.app:create_app")] = "bench.profiled_api:create_app"
            cmd[cmd.index("--port") + 1] = str(self.prof_port)
            cmd[cmd.index("--workers") + 1] = "1"
            env = {**env, "BENCH_PROFILE_OUT": str(self.out / "intake-profile")}
        elif name == "worker":  # the product's command: `visiongate worker --processes N`
            cmd = [PY, "-m", "cli.main", "worker", "--processes", str(self.a.worker_processes)]
        elif name == "beat":
            cmd = self.command(name)
        elif name == "noop-worker":  # as many processes as the product's, each as its worker
            cmds = []
            for i in range(self.a.worker_processes):
                one = self.command("worker")
                one[one.index("workers.app:celery_app")] = "bench.noop:app"
                one[one.index("-Q") + 1] = "bench_noop"
                cmds.append(one + ["-n", f"noop{i + 1}@%h"])
            cmd = [PY, "-c", "import json, sys; from cli.main import _supervise; "
                   "sys.exit(_supervise(json.loads(sys.argv[1])))", json.dumps(cmds)]
        else:
            raise ValueError(name)
        proc = self.procs.start(name, cmd, env, ROOT)
        self.started_pids.append(proc.pid)
        return proc

    def _ready(self, name: str, proc: subprocess.Popen) -> None:
        if name == "sim":
            P.wait_http(f"http://127.0.0.1:{self.sim_port}/_sim/stats", proc)
        elif name == "api":
            P.wait_http(f"http://127.0.0.1:{self.api_port}/health", proc)
        elif name == "baseline":
            P.wait_http(f"http://127.0.0.1:{self.base_port}/health", proc)
        elif name == "profiled-api":
            P.wait_http(f"http://127.0.0.1:{self.prof_port}/health", proc)
        elif name in ("worker", "noop-worker"):
            P.wait_log(self.procs.log_path(name), b"ready.", proc, count=self.a.worker_processes)
        elif name == "beat":  # it logs nothing when ready: wait until its start-up CPU is spent
            P.wait_settled(proc)
        if name in ("api", "baseline") and self.a.api_processes > 1:
            self._wait_children(proc, self.a.api_processes)

    def _wait_children(self, proc: subprocess.Popen, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(P.tree(proc.pid)) < n + 1:
            time.sleep(0.2)
        time.sleep(1.0)  # every process finishes its startup (lifespan) before load

    def stop(self, *names: str) -> None:
        for name in names:
            self.procs.stop(name)

    def wipe(self) -> None:
        """Forget all jobs and broker messages (workers must be stopped)."""
        with self.pg() as conn:
            conn.execute("TRUNCATE jobs, bench_typical_jobs, batches")
        self.redis.flushdb()

    def sim(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, f"http://127.0.0.1:{self.sim_port}{path}", timeout=60, **kw)
        r.raise_for_status()
        return r.json()

    # ------------------------------------------------------------------ load generator
    def load(self, url: str, paths: list[str], *, method: str = "GET", body: str = "",
             concurrency: int | None = None, duration: float | None = None,
             warmup: float | None = None, max_requests: int = 10_000_000,
             rate: float | None = None, expect: tuple[int, ...] = (200,)) -> dict[str, Any]:
        headers = {"X-API-Key": self.api_key, "Accept": "application/json"}
        if method == "POST":
            headers["Content-Type"] = "application/json"
        spec = {"url": url, "paths": paths, "method": method, "headers": headers, "body": body,
                "concurrency": concurrency or self.a.connections,
                "duration": self.a.duration if duration is None else duration,
                "warmup": self.a.warmup if warmup is None else warmup,
                "max_requests": max_requests, "rate": rate, "expect": list(expect),
                "client": self.a.client, "cpu": self.a.loadgen_cpu, "timeout": 30}
        limit = spec["duration"] + spec["warmup"] + 120
        proc = self.procs.start("loadgen", [PY, "-m", "bench.load", json.dumps(spec)], self.env, ROOT)
        self.started_pids.append(proc.pid)
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self.procs.stop("loadgen", timeout=5)
        text = self.procs.log_path("loadgen").read_text()
        self.procs.log_path("loadgen").unlink()
        lines = [line for line in text.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"load generator failed ({proc.returncode}): {text[-2000:]}")
        return json.loads(lines[-1])

    def measured_load(self, server: str, url: str, paths: list[str], **kw: Any) -> dict[str, Any]:
        """A load run plus the server's CPU use while it ran."""
        pid = self.procs.running[server].pid
        c0, t0 = P.cpu_seconds(pid), time.monotonic()
        res = self.load(url, paths, **kw)
        res["server_cpu_util"] = round((P.cpu_seconds(pid) - c0) / (time.monotonic() - t0), 3)
        res["loadavg_1m"] = round(os.getloadavg()[0], 2)
        return res

    # ------------------------------------------------------------------ scenario 1
    def intake(self) -> None:
        log("scenario 1: intake")
        self.start("api", "baseline")
        api = f"http://127.0.0.1:{self.api_port}"
        base = f"http://127.0.0.1:{self.base_port}"
        variants = {
            "visiongate": ("api", api, GEN_PATH, (202,)),
            "bare": ("baseline", base, "/bare/generate-image", (202,)),
            "typical": ("baseline", base, "/typical/generate-image", (202,)),
        }
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
        for rep in range(self.a.repeats):
            for name, (server, url, path, expect) in variants.items():
                res = self.measured_load(server, url, [path], method="POST", body=GEN_BODY, expect=expect)
                runs[name].append(res)
                log(f"  intake {name} rep {rep + 1}: {res['rps']} req/s p50 {res['p50_ms']} ms "
                    f"p99 {res['p99_ms']} ms errors {res['errors']} (loadgen cpu {res['loadgen_cpu_util']})")
        self.results["scenarios"]["intake"] = {"runs": runs, "connections": self.a.connections}
        if not self.a.no_profile:
            self.profile_intake()
        self.wipe()

    def profile_intake(self) -> None:
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            log("  pyinstrument is not installed: no intake profile (pip install -e '.[bench]')")
            return
        log("  profiling the intake path (1 uvicorn process under pyinstrument)")
        self.start("profiled-api")
        res = self.load(f"http://127.0.0.1:{self.prof_port}", [GEN_PATH], method="POST",
                        body=GEN_BODY, expect=(202,))
        self.stop("profiled-api")
        self.results["scenarios"]["intake"]["profile_run"] = res
        path = self.out / "intake-profile.txt"
        if path.exists():
            header = (f"# pyinstrument profile of the intake path: POST {GEN_PATH} (sync:false),\n"
                      f"# {self.a.connections} connections for {self.a.duration:.0f} s against ONE uvicorn "
                      f"process (event-loop thread only;\n# the group writer's insert and Redis publish run on "
                      f"the same loop). Result of that run: {res['rps']} req/s, "
                      f"p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms.\n\n")
            path.write_text(header + path.read_text())

    # ------------------------------------------------------------------ scenario 3
    def _wait_jobs(self, n: int, timeout: float, stall: float | None = None) -> dict[str, int]:
        """Until ``n`` jobs are final, ``timeout`` passes, or nothing moved for ``stall`` s."""
        stall = stall or (20.0 if self.a.quick else 180.0)
        deadline = time.monotonic() + timeout
        counts: dict[str, int] = {}
        last, moved = None, time.monotonic()
        with self.pg() as conn:  # one connection: a new one per look would cost a backend each
            while time.monotonic() < deadline:
                counts = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
                progress = conn.execute("SELECT max(updated_at) FROM jobs").fetchone()[0]
                if sum(counts.get(s, 0) for s in DONE) >= n:
                    break
                if progress != last:
                    last, moved = progress, time.monotonic()
                elif time.monotonic() - moved > stall:
                    log(f"  no job moved for {stall:.0f} s; giving up waiting ({counts})")
                    break
                self.procs.check_alive(["worker", "beat", "api"])
                time.sleep(0.25)
        return counts

    def _job_stats(self) -> dict[str, Any]:
        with self.pg() as conn:
            rows = conn.execute(
                "SELECT status, extract(epoch from created_at), extract(epoch from finished_at) FROM jobs"
            ).fetchall()
        done = [(float(c), float(f)) for s, c, f in rows if s == "COMPLETED"]
        lat = [(f - c) * 1000 for c, f in done]
        window = (max(f for _, f in done) - min(c for c, _ in done)) if done else 0.0
        return {"jobs": len(rows), "completed": len(done),
                "failed": sum(1 for s, _, _ in rows if s != "COMPLETED"),
                "window_s": round(window, 3),
                "per_s": round(len(done) / window, 2) if window > 0 else None,
                "p50_ms": _r(percentile(lat, 0.5)), "p99_ms": _r(percentile(lat, 0.99))}

    def cpu_meter(self, *names: str) -> P.CpuMeter:
        """CPU of our components ``names`` plus the PostgreSQL and Redis servers."""
        roots: dict[str, int | None] = {n: self.procs.running[n].pid for n in names if n in self.procs.running}
        roots.update(postgres=P.server_root("postgres"), redis=P.server_root("redis-server"))
        return P.CpuMeter(roots)

    def _pipeline_burst(self, n: int) -> dict[str, Any]:
        self.wipe_jobs()
        meter = self.cpu_meter("worker", "beat", "api", "sim")
        sub = self.load(f"http://127.0.0.1:{self.api_port}", [GEN_PATH], method="POST", body=GEN_BODY,
                        concurrency=16, duration=max(60.0, n / 5), warmup=0, max_requests=n,
                        expect=(202,))
        self._wait_jobs(sub["requests"], timeout=self._drain_timeout(10))
        st = self._job_stats()
        st["submit_errors"] = sub["errors"]
        st["cpu_s"] = {**meter.read(), "loadgen": sub.get("loadgen_cpu_s")}
        return st

    def _pipeline_paced(self) -> dict[str, Any]:
        self.wipe_jobs()
        n = int(self.a.pipeline_rate * self.a.duration)
        sub = self.load(f"http://127.0.0.1:{self.api_port}", [GEN_PATH], method="POST", body=GEN_BODY,
                        concurrency=4, duration=self.a.duration + 5, warmup=0, max_requests=n,
                        rate=self.a.pipeline_rate, expect=(202,))
        self._wait_jobs(sub["requests"], timeout=self._drain_timeout(6))
        st = self._job_stats()
        st["submit_errors"] = sub["errors"]
        return st

    def _drain_timeout(self, factor: float) -> float:
        return 30.0 if self.a.quick else max(60.0, factor * self.a.duration)

    def wipe_jobs(self) -> None:
        with self.pg() as conn:
            conn.execute("TRUNCATE jobs")

    def _noop(self, n: int, rate: float | None, drain: float | None = None) -> dict[str, Any]:
        from bench.noop import RESULTS_KEY

        self.redis.delete(RESULTS_KEY)
        max_s = (n / rate + 30) if rate else 120.0
        meter, sender0 = self.cpu_meter("noop-worker"), _children_cpu()
        res = subprocess.run([PY, "-m", "bench.noop", "send", str(n), str(rate or 0), str(max_s)],
                             cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=max_s + 60)
        if res.returncode != 0:
            raise RuntimeError(f"noop sender failed: {res.stderr[-2000:]}")
        sent = int(res.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + (drain or self._drain_timeout(10))
        while time.monotonic() < deadline and self.redis.llen(RESULTS_KEY) < sent:
            self.procs.check_alive(["noop-worker"])
            time.sleep(0.1)
        cpu = {**meter.read(), "sender": round(_children_cpu() - sender0, 3)}
        pairs = [tuple(map(float, x.split(b","))) for x in self.redis.lrange(RESULTS_KEY, 0, -1)]
        lat = [(d - s) * 1000 for s, d in pairs]
        window = (max(d for _, d in pairs) - min(s for s, _ in pairs)) if pairs else 0.0
        return {"jobs": sent, "completed": len(pairs), "failed": sent - len(pairs),
                "window_s": round(window, 3), "per_s": round(len(pairs) / window, 2) if window > 0 else None,
                "p50_ms": _r(percentile(lat, 0.5)), "p99_ms": _r(percentile(lat, 0.99)), "cpu_s": cpu}

    def pipeline(self) -> None:
        log("scenario 3: pipeline (simulator latency 0)")
        self.sim("POST", "/_sim/config", json={"latency_seconds": 0})
        if "api" not in self.procs.running:
            self.start("api")
        target = self.a.duration
        if self.a.quick:
            n_pipe, n_noop = self.a.pipeline_max_jobs, 200
        else:  # size the bursts so each lasts about `duration` seconds at the measured rate
            self.start("worker", "beat")
            cal = self._pipeline_burst(100)
            self.stop("worker", "beat")
            self.start("noop-worker")
            cal_noop = self._noop(1000, None)
            self.stop("noop-worker")
            n_pipe = _clamp(math.ceil((cal["per_s"] or 10) * target * 1.3), 100, self.a.pipeline_max_jobs)
            n_noop = _clamp(math.ceil((cal_noop["per_s"] or 100) * target * 1.3), 1000, 200_000)
            log(f"  calibration: pipeline {cal['per_s']} jobs/s → N={n_pipe}; "
                f"no-op {cal_noop['per_s']} tasks/s → N={n_noop}")
        runs: dict[str, list[dict[str, Any]]] = {"visiongate": [], "noop": []}
        for rep in range(self.a.repeats):
            self.start("worker", "beat")
            if not self.a.quick:  # steady state: the fresh worker has met the operation once
                self._pipeline_burst(_clamp(round(n_pipe * self.a.warmup / target), 20, n_pipe))
            burst, paced = self._pipeline_burst(n_pipe), self._pipeline_paced()
            self.stop("worker", "beat")
            runs["visiongate"].append({"burst": burst, "paced": paced})
            log(f"  pipeline rep {rep + 1}: {burst['per_s']} jobs/s over {burst['window_s']} s; "
                f"paced p50 {paced['p50_ms']} ms p99 {paced['p99_ms']} ms")
            self.start("noop-worker")
            if not self.a.quick:
                self._noop(_clamp(round(n_noop * self.a.warmup / target), 200, n_noop), None)
            burst, paced = self._noop(n_noop, None), self._noop(
                int(self.a.pipeline_rate * self.a.duration), self.a.pipeline_rate)
            self.stop("noop-worker")
            runs["noop"].append({"burst": burst, "paced": paced})
            log(f"  no-op    rep {rep + 1}: {burst['per_s']} tasks/s over {burst['window_s']} s; "
                f"paced p50 {paced['p50_ms']} ms p99 {paced['p99_ms']} ms")
        self.redis.flushdb()
        self.results["scenarios"]["pipeline"] = {
            "runs": runs, "burst_jobs": n_pipe, "burst_noop_tasks": n_noop,
            "paced_rate": self.a.pipeline_rate}

    # ------------------------------------------------------------------ scenario 2
    def status(self) -> None:
        log("scenario 2: status reads")
        for name in ("worker", "beat", "noop-worker"):
            self.stop(name)
        self.start(*[n for n in ("api", "baseline") if n not in self.procs.running])
        half = max(1, self.a.status_jobs // 2)
        with self.pg() as conn:
            completed = [r[0] for r in conn.execute(
                "SELECT id FROM jobs WHERE status='COMPLETED' LIMIT %s", (half,))]
        missing = half - len(completed)
        if missing > 0:  # no pipeline scenario in this run: make completed jobs now
            self.start("worker", "beat")
            self.load(f"http://127.0.0.1:{self.api_port}", [GEN_PATH], method="POST", body=GEN_BODY,
                      concurrency=8, duration=120, warmup=0, max_requests=missing, expect=(202,))
            self._wait_jobs(missing + len(completed), timeout=120)
            self.stop("worker", "beat")
            with self.pg() as conn:
                completed = [r[0] for r in conn.execute(
                    "SELECT id FROM jobs WHERE status='COMPLETED' LIMIT %s", (half,))]
        # In progress: accepted jobs nobody works on (workers stopped), so they stay QUEUED.
        self.load(f"http://127.0.0.1:{self.api_port}", [GEN_PATH], method="POST", body=GEN_BODY,
                  concurrency=8, duration=120, warmup=0, max_requests=half, expect=(202,))
        with self.pg() as conn:
            in_progress = [r[0] for r in conn.execute(
                "SELECT id FROM jobs WHERE status='QUEUED' LIMIT %s", (half,))]
        ids = [x for pair in zip(completed, in_progress) for x in pair]
        api = f"http://127.0.0.1:{self.api_port}"
        base = f"http://127.0.0.1:{self.base_port}"
        runs: dict[str, list[dict[str, Any]]] = {"visiongate": [], "bare": []}
        for rep in range(self.a.repeats):
            res = self.measured_load("api", api, [f"/api/v1/bria/status/{i}" for i in ids])
            runs["visiongate"].append(res)
            bare = self.measured_load("baseline", base, [f"/bare/status/{i}" for i in ids])
            runs["bare"].append(bare)
            log(f"  status rep {rep + 1}: {res['rps']} req/s (p99 {res['p99_ms']} ms) vs bare "
                f"{bare['rps']} req/s (p99 {bare['p99_ms']} ms)")
        self.stop("baseline")
        self.results["scenarios"]["status"] = {
            "runs": runs, "completed_jobs": len(completed), "in_progress_jobs": len(in_progress),
            "connections": self.a.connections}
        self.wipe()

    # ------------------------------------------------------------------ scenario 4
    def inflight(self) -> None:
        n, lat = self.a.inflight_jobs, self.a.inflight_latency
        log(f"scenario 4: {n} jobs in flight, upstream latency {lat:.0f} s")
        runs = []
        for rep in range(self.a.inflight_repeats):
            for name in ("worker", "beat", "noop-worker", "api", "baseline", "sim"):
                self.stop(name)
            self.wipe()
            self.start("sim", "api", "worker", "beat")  # fresh processes: VmHWM is this run's
            runs.append(self._inflight_once(n, lat))
            r = runs[-1]
            log(f"  in-flight rep {rep + 1}: {r['completed']}/{n} completed; lateness p50 "
                f"{r['late_p50_s']} s p99 {r['late_p99_s']} s; status req/s {r['status_rps_mean']}")
        self.stop("worker", "beat")
        self.results["scenarios"]["inflight"] = {
            "runs": runs, "jobs": n, "upstream_latency_s": lat,
            "poll_interval_s": 1.0, "poll_interval_max_s": 15.0, "drain_s": self.a.inflight_drain}
        self.wipe()

    def _inflight_once(self, n: int, lat: float) -> dict[str, Any]:
        self.sim("POST", "/_sim/reset")
        self.sim("POST", "/_sim/config", json={"latency_seconds": lat})
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        hard_end = time.monotonic() + n / 5 + lat + self.a.inflight_drain + 120

        def sample() -> None:  # upstream status requests, once a second, bounded
            with httpx.Client(timeout=5) as c:
                while not stop.is_set() and time.monotonic() < hard_end:
                    try:
                        s = c.get(f"http://127.0.0.1:{self.sim_port}/_sim/stats").json()
                        samples.append((time.time(), int(s["status"])))
                    except Exception:  # noqa: BLE001 - a missed sample only
                        pass
                    stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.time()
        try:
            sub = self.load(f"http://127.0.0.1:{self.api_port}", [GEN_PATH], method="POST",
                            body=GEN_BODY, concurrency=32, duration=max(60.0, n / 5), warmup=0,
                            max_requests=n, expect=(202,))
            t_sub = time.time()
            counts = self._wait_jobs(sub["requests"], timeout=lat + self.a.inflight_drain + (t_sub - t0))
            t_end = time.time()
            rss = {name: P.peak_rss_mib(self.procs.running[name].pid) for name in ("worker", "beat", "api")}
        finally:
            stop.set()
            sampler.join(10)
        done_at = self.sim("GET", "/_bench/tasks")
        stats = self.sim("GET", "/_sim/stats")
        with self.pg() as conn:
            rows = conn.execute("SELECT status, extract(epoch from finished_at), upstream_tasks, polls "
                                "FROM jobs").fetchall()
        late = []
        for status, fin, tasks, _ in rows:
            if status == "COMPLETED" and tasks and tasks[0].get("id") in done_at:
                late.append(float(fin) - max(done_at[t["id"]] for t in tasks if t.get("id") in done_at))
        polls = [r[3] for r in rows if r[0] == "COMPLETED"]
        completed = sum(1 for r in rows if r[0] == "COMPLETED")
        finished = [float(r[1]) for r in rows if r[0] == "COMPLETED"]
        window = (max(finished) - t0) if finished else (t_end - t0)
        rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(samples, samples[1:]) if b[0] > a[0]]
        return {
            "jobs": n, "submitted": sub["requests"], "submit_errors": sub["errors"],
            "submit_s": round(t_sub - t0, 1), "submit_rps": sub["rps"],
            "completed": completed, "states": counts, "all_completed": completed == n,
            "window_s": round(window, 1),
            "late_p50_s": _r(percentile(late, 0.5)), "late_p99_s": _r(percentile(late, 0.99)),
            "late_max_s": _r(max(late) if late else None),
            # noticed within two poll intervals of the upstream finishing (the target)
            "late_within_2_intervals": sum(1 for x in late if x <= 2 * min(15.0, max(1.0, 0.1 * lat))),
            "polls_per_job_p50": percentile(polls, 0.5),
            "status_requests": stats["status"], "submit_requests": stats["submit"],
            "download_requests": stats["download"],
            "status_rps_mean": round(stats["status"] / window, 1) if window > 0 else None,
            "status_rps_peak": round(max(rates), 1) if rates else None,
            "peak_rss_mib": rss,
        }

    # ------------------------------------------------------------------ scenario 5
    def batch(self) -> None:
        n = self.a.batch_lines
        log(f"scenario 5: batch ingest, {n:,}-line JSONL (simulator latency 0), "
            f"{self.a.batch_repeats} repetition(s), drain ≤ {self.a.batch_drain:g} s")
        runs: dict[str, list[dict[str, Any]]] = {"visiongate": [], "copy": [], "executemany": [],
                                                 "noop": []}
        with self.pg() as conn:
            tenant_id = conn.execute("SELECT id FROM tenants WHERE name = 'bench'").fetchone()[0]
            conn.execute(BATCH_BASELINE_DDL)
        for rep in range(self.a.batch_repeats):
            for name in ("worker", "beat", "noop-worker", "api", "baseline", "profiled-api"):
                self.stop(name)
            self.wipe()
            if "sim" not in self.procs.running:
                self.start("sim")
            self.sim("POST", "/_sim/reset")
            self.sim("POST", "/_sim/config", json={"latency_seconds": 0})
            lines, params = _batch_lines(n, f"r{rep + 1}")
            rows = _baseline_rows(lines, params, tenant_id)
            # The bulk-INSERT baselines first (same Postgres, same rows, nothing else busy), then
            # the upload on freshly started processes (VmHWM of the API = this acceptance's peak).
            base = {"copy": self._bulk_insert(rows, "copy"),
                    "executemany": self._bulk_insert(rows, "executemany")}
            del rows
            self.start("api", "worker", "beat")
            vg = self._batch_once(lines, rep)
            del lines
            self.stop("worker", "beat")  # jobs left unfinished by the drain bound are dropped here
            self.redis.flushdb()
            self.start("noop-worker")
            n_noop = _clamp(vg["completed"] or n, 200, 200_000)
            noop = self._noop(n_noop, None, drain=max(60.0, n_noop / 50))
            self.stop("noop-worker")
            for key, val in (("visiongate", vg), ("copy", base["copy"]),
                             ("executemany", base["executemany"]), ("noop", noop)):
                runs[key].append(val)
            log(f"  batch rep {rep + 1}: HTTP {vg['http_status']} in {vg['accept_s']} s (COPY "
                f"{base['copy']['seconds']} s, executemany {base['executemany']['seconds']} s); "
                f"API peak RSS {vg['api_rss_after_mib']['total_mib']} MiB; {vg['completed']}/{n} "
                f"completed at {vg['per_s']} jobs/s (no-op {noop['per_s']} tasks/s)")
        self.stop("worker", "beat", "noop-worker")
        with self.pg() as conn:
            conn.execute("DROP TABLE IF EXISTS bench_batch_rows")
        self.results["scenarios"]["batch"] = {
            "runs": runs, "lines": n, "drain_s": self.a.batch_drain,
            "endpoint": GEN_PATH, "baseline_table": "bench_batch_rows (same columns as the job "
                                                    "rows, primary key only)"}
        self.wipe()

    def _bulk_insert(self, rows: list[tuple[Any, ...]], how: str) -> dict[str, Any]:
        """The acceptance baseline: the same rows into a plain table, one transaction, timed from
        the first statement to the commit (connection set up beforehand, table emptied)."""
        cols = ", ".join(BATCH_BASELINE_COLUMNS)
        with self.pg() as conn:
            conn.execute("TRUNCATE bench_batch_rows")
        with psycopg.connect(self.pg_dsn) as conn:  # a transaction, as the API's insert is
            conn.execute("SELECT 1")
            conn.commit()
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                if how == "copy":
                    with cur.copy(f"COPY bench_batch_rows ({cols}) FROM STDIN") as cp:
                        for row in rows:
                            cp.write_row(row)
                else:
                    marks = ", ".join(["%s"] * len(BATCH_BASELINE_COLUMNS))
                    cur.executemany(f"INSERT INTO bench_batch_rows ({cols}) VALUES ({marks})", rows)
            conn.commit()
            seconds = time.perf_counter() - t0
            count = conn.execute("SELECT count(*) FROM bench_batch_rows").fetchone()[0]
        with self.pg() as conn:
            conn.execute("TRUNCATE bench_batch_rows")
        return {"how": how, "rows": count, "seconds": round(seconds, 3),
                "rows_per_s": round(count / seconds, 1) if seconds > 0 else None}

    def _batch_once(self, lines: list[bytes], rep: int) -> dict[str, Any]:
        n = len(lines)
        api = f"http://127.0.0.1:{self.api_port}"
        headers = {"X-API-Key": self.api_key, "Accept": "application/json"}
        payload = b"".join(lines)
        api_pid = self.procs.running["api"].pid
        rss_before = P.peak_rss_mib(api_pid)
        cpu0 = P.cpu_seconds(api_pid)
        status, doc, err = None, {}, None
        t0 = time.perf_counter()
        with httpx.Client(timeout=httpx.Timeout(600.0, connect=10.0)) as client:
            try:
                resp = client.post(f"{api}/api/v1/batches", headers=headers,
                                   files={"file": (f"bench-{rep + 1}.jsonl", payload, "application/jsonl")})
                status = resp.status_code
                accept_s = time.perf_counter() - t0
                try:
                    doc = resp.json()
                except ValueError:
                    doc = {"raw": resp.text[:500]}
            except httpx.HTTPError as exc:
                accept_s, err = time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
        rss_after = P.peak_rss_mib(api_pid)
        api_cpu = P.cpu_seconds(api_pid) - cpu0
        batch = (doc.get("result") or {}) if isinstance(doc, dict) else {}
        log(f"  batch upload ({len(payload) / 1e6:.1f} MB): HTTP {status} in {accept_s:.2f} s; "
            f"counts {batch.get('counts')}; API VmHWM {rss_before['total_mib']} → "
            f"{rss_after['total_mib']} MiB")
        out: dict[str, Any] = {
            "lines": n, "upload_bytes": len(payload), "http_status": status, "error": err,
            "accept_s": round(accept_s, 3), "accepted_counts": batch.get("counts"),
            "batch_id": batch.get("id"), "api_rss_before_mib": rss_before,
            "api_rss_after_mib": rss_after, "api_cpu_accept_s": round(api_cpu, 2),
        }
        if status is None or not 200 <= status < 300 or not batch.get("id"):
            out.update({"detail": str(doc)[:1000], "completed": 0, "finished": 0, "per_s": None,
                        "final_status": None, "drain_s": 0.0, "all_completed": False})
            log(f"  batch upload refused: HTTP {status} {err or str(doc)[:300]}")
            return out
        out.update(self._batch_drain(api, headers, batch["id"], n))
        return out

    def _batch_drain(self, api: str, headers: dict[str, str], batch_id: str, n: int) -> dict[str, Any]:
        """Poll GET /api/v1/batches/{id} until the batch is closed, the drain bound passes, or no
        job finished for the stall bound; then take the times from the job rows."""
        stall = 20.0 if self.a.quick else 180.0
        every = 0.5 if self.a.quick else 2.0
        t0 = time.monotonic()
        deadline = t0 + self.a.batch_drain
        doc: dict[str, Any] = {}
        last, moved, polls, reason = -1, t0, 0, "drain bound"
        with httpx.Client(timeout=30.0) as client:
            while time.monotonic() < deadline:
                polls += 1
                try:
                    r = client.get(f"{api}/api/v1/batches/{batch_id}", headers=headers)
                    if r.status_code == 200:
                        doc = r.json()["result"]
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                if doc.get("status") in ("completed", "cancelled", "failed"):
                    reason = "batch " + doc["status"]
                    break
                finished = (doc.get("counts") or {}).get("finished", 0)
                if finished != last:
                    last, moved = finished, time.monotonic()
                elif time.monotonic() - moved > stall:
                    reason = f"no job finished for {stall:g} s"
                    log(f"  batch: {reason}; giving up waiting ({doc.get('counts')})")
                    break
                self.procs.check_alive(["worker", "beat", "api"])
                time.sleep(every)
        drain = time.monotonic() - t0
        with self.pg() as conn:
            created, closed, bstatus = conn.execute(
                "SELECT extract(epoch from created_at), extract(epoch from finished_at), status "
                "FROM batches WHERE id = %s", (batch_id,)).fetchone()
            completed, finished, first_start, last_done = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'COMPLETED'), "
                "count(*) FILTER (WHERE status IN ('COMPLETED','ERROR','CANCELLED','EXPIRED')), "
                "extract(epoch from min(started_at)), "
                "extract(epoch from max(finished_at) FILTER (WHERE status = 'COMPLETED')) "
                "FROM jobs WHERE batch_id = %s", (batch_id,)).fetchone()
            states = dict(conn.execute("SELECT status, count(*) FROM jobs WHERE batch_id = %s "
                                       "GROUP BY status", (batch_id,)).fetchall())
        window = float(last_done) - float(created) if completed and last_done is not None else None
        window_started = (float(last_done) - float(first_start)
                          if completed and last_done is not None and first_start is not None else None)
        return {
            "completed": completed, "finished": finished, "states": states,
            "all_completed": completed == n, "final_status": bstatus, "stopped_by": reason,
            "drain_s": round(drain, 1), "status_polls": polls,
            "window_s": _r(window, 3),
            "per_s": round(completed / window, 2) if window else None,
            "window_from_first_start_s": _r(window_started, 3),
            "per_s_from_first_start": round(completed / window_started, 2) if window_started else None,
            "batch_wall_s": _r(float(closed) - float(created), 3) if closed is not None else None,
            "first_start_after_created_s": _r(float(first_start) - float(created), 3)
            if first_start is not None else None,
        }

    # ------------------------------------------------------------------ output
    def meta(self, started: float) -> dict[str, Any]:
        a = self.a
        return {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_s": round(time.time() - started, 1),
            "quick": a.quick, "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "api_processes": a.api_processes,
            "worker": f"{a.worker_processes} process(es), pool {a.worker_pool}, concurrency {a.worker_concurrency} each",
            "connections": a.connections, "duration_s": a.duration, "warmup_s": a.warmup,
            "repeats": a.repeats, "inflight_repeats": a.inflight_repeats,
            "batch_repeats": a.batch_repeats, "client": a.client,
            "loadgen_cpu": a.loadgen_cpu, "plan": a.plan, "database": a.db, "broker": a.redis,
            "poll_interval": "VISIONGATE_POLL_INTERVAL_SECONDS=1 (default), max 15 s",
            "sweep_interval_s": 1.0,
            "loadavg_start": self.loadavg_start, "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "pids": self.started_pids,
            "commit": getattr(self, "commit", None),
        }

    def write(self, started: float) -> None:
        self.results["meta"] = self.meta(started)
        md, table = render_markdown(self.results)
        self.results["table"] = table
        (self.out / "results.json").write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        (self.out / "results.md").write_text(md)
        log(f"wrote {self.out / 'results.md'} and results.json")

    def teardown(self) -> None:
        try:
            self.procs.stop_all()
        except Exception as exc:  # noqa: BLE001 - go on cleaning up
            log(f"stopping processes: {exc}")
        try:
            self.redis.flushdb()
        except redis.RedisError:
            pass
        if not self.a.keep:
            try:
                with psycopg.connect(self.a.pg_admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.a.db}" WITH (FORCE)')
            except psycopg.Error as exc:
                log(f"could not drop {self.a.db}: {exc}")
            shutil.rmtree(self.data_dir, ignore_errors=True)
        else:
            log(f"kept database {self.a.db} and {self.data_dir}")


# --------------------------------------------------------------------------- scenario 5 helpers
# The acceptance baseline's table: the columns (and types) of the job rows a batch inserts, with
# a primary key and nothing else (no other index, no foreign key).
BATCH_BASELINE_COLUMNS = ("id", "tenant_id", "provider", "operation", "status", "credit_cost",
                          "held_at", "published_at", "params", "sync", "run_at", "attempts", "polls",
                          "poll_failures", "created_at", "updated_at", "batch_id", "custom_id")
BATCH_BASELINE_DDL = """CREATE TABLE IF NOT EXISTS bench_batch_rows (
    id varchar(32) PRIMARY KEY, tenant_id varchar(32), provider varchar(32), operation varchar(100),
    status varchar(16), credit_cost integer, held_at timestamptz, published_at timestamptz,
    params jsonb, sync boolean, run_at timestamptz, attempts integer, polls integer,
    poll_failures integer, created_at timestamptz, updated_at timestamptz, batch_id varchar(32),
    custom_id varchar(200))"""


def _batch_lines(n: int, tag: str) -> tuple[list[bytes], dict[str, Any]]:
    """``n`` JSONL request lines (own custom_id, the same body: see GEN_BODY on the seed), and
    the stored params of one line (the endpoint's model, dumped as the batch stores it)."""
    from core.batches import job_endpoints
    from providers.registry import OPERATIONS

    base = json.loads(GEN_BODY)
    lines = [json.dumps({"custom_id": f"{tag}-{i:06d}", "endpoint": GEN_PATH, "body": base},
                        separators=(",", ":")).encode() + b"\n" for i in range(n)]
    op = job_endpoints(OPERATIONS)[GEN_PATH]
    params = op.request_model.model_validate(base).model_dump(mode="json")
    return lines, {"params": params, "provider": op.provider, "operation": op.name}


def _baseline_rows(lines: list[bytes], spec: dict[str, Any], tenant_id: str) -> list[tuple[Any, ...]]:
    """The rows of the bulk-INSERT baseline: one per line, the values a batch insert writes."""
    import uuid

    from psycopg.types.json import Jsonb

    now = dt.datetime.now(dt.UTC)
    batch_id = uuid.uuid4().hex
    rows = []
    for i in range(len(lines)):
        params = spec["params"]
        created = now + dt.timedelta(microseconds=i)
        rows.append((uuid.uuid4().hex, tenant_id, spec["provider"], spec["operation"], "QUEUED", 0,
                     now, None, Jsonb(params), False, now, 0, 0, 0, created, now, batch_id,
                     f"baseline-{i:06d}"))
    return rows


def _children_cpu() -> float:
    """CPU seconds of this process's reaped children (the no-op sender runs as one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))


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
