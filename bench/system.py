"""The system under benchmark: the product's processes (API, worker, beat, the simulator, the
baselines) started with their production command lines in their own sessions, its own database
and Redis database, the load generator, CPU meters, and writing the results."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from bench import procs as P
from bench.common import DONE, PY, ROOT, free_port, git_commit, log, rnd
from bench.report import render_markdown
from bench.stats import percentile



class System:
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
        self.commit = git_commit()
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
                "p50_ms": rnd(percentile(lat, 0.5)), "p99_ms": rnd(percentile(lat, 0.99))}


    def cpu_meter(self, *names: str) -> P.CpuMeter:
        """CPU of our components ``names`` plus the PostgreSQL and Redis servers."""
        roots: dict[str, int | None] = {n: self.procs.running[n].pid for n in names if n in self.procs.running}
        roots.update(postgres=P.server_root("postgres"), redis=P.server_root("redis-server"))
        return P.CpuMeter(roots)


    def wipe_jobs(self) -> None:
        with self.pg() as conn:
            conn.execute("TRUNCATE jobs")


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
