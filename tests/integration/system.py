"""Real processes for the integration tier: the Bria simulator, uvicorn serving the API and
Celery worker and beat processes, all against real PostgreSQL and Redis.

Each component is a subprocess started with the same command line ``visiongate`` uses, so
these tests exercise what production runs. Logs go to files under the system's data dir and
are printed when a test fails (see conftest).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _worker_queues() -> list[str]:
    from workers.app import worker_queues  # every provider's queues, from the registry

    return worker_queues()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class System:
    """Starts and stops the components; ``env`` is what every component sees."""

    def __init__(self, env: dict[str, str], data_dir: Path):
        self.env = env
        self.data_dir = data_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.api_port = free_port()
        self.sim_port = int(env["VISIONGATE_SIMULATOR_PORT"])
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"

    def _cmd(self, name: str) -> list[str]:
        py = sys.executable
        if name.startswith("api"):
            return [py, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                    "--port", str(self.api_port), "--no-access-log"]
        if name.startswith("supervised-worker"):  # the product's command: restarts its processes
            return [py, "-m", "cli.main", "worker", "--processes", "1"]
        if name.startswith("worker"):
            return [py, "-m", "celery", "-A", "workers.app:celery_app", "worker", "-Q",
                    ",".join(_worker_queues()), "--pool", "threads", "--concurrency", "4",
                    "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                    "--without-heartbeat", "-n", f"{name}@%h"]
        if name.startswith("beat"):
            return [py, "-m", "celery", "-A", "workers.app:celery_app", "beat", "--loglevel", "INFO"]
        if name == "simulator":
            return [py, "-m", "providers.simulator", "--host", "127.0.0.1", "--port", str(self.sim_port)]
        raise ValueError(name)

    def log_path(self, name: str) -> Path:
        return self.data_dir / f"{name}.log"

    def start(self, name: str, env: dict[str, str] | None = None, port: int | None = None,
              args: tuple[str, ...] = ()) -> subprocess.Popen:
        """Start a component; ``env`` overrides settings, ``port`` runs another API instance,
        ``args`` are appended to its command line (e.g. ``--workers 4``)."""
        log = open(self.log_path(name), "ab")
        offset = log.tell()  # a restarted component's log: look only at what it writes now
        cmd = self._cmd(name) + list(args)
        if port is not None:
            cmd[cmd.index("--port") + 1] = str(port)
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        if name.startswith("api"):
            wait_http(f"http://127.0.0.1:{port or self.api_port}/health", proc=proc)
        elif name == "simulator":
            wait_http(f"{self.sim_url}/_sim/stats", proc=proc)
        elif name.startswith(("worker", "supervised-worker")):
            self._wait_log(name, b"ready.", offset=offset)
        return proc

    def _wait_log(self, name: str, marker: bytes, timeout: float = 30.0, offset: int = 0) -> None:
        deadline = time.time() + timeout
        path = self.log_path(name)
        while time.time() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited: {path.read_text()[-2000:]}")
            with open(path, "rb") as fh:
                fh.seek(offset)
                if marker in fh.read():
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{name} not ready: {path.read_text()[-2000:]}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(15)

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs[name]
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            self.procs.pop(name)

    def logs(self) -> str:
        out = []
        for path in sorted(self.data_dir.glob("*.log")):
            out.append(f"----- {path.name} (tail)\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)

    # -------------------------------------------------------------- simulator control
    def sim(self, method: str, path: str, **kw) -> httpx.Response:
        return httpx.request(method, f"{self.sim_url}{path}", timeout=10, **kw)

    def faults(self, *rules: dict) -> None:
        self.sim("POST", "/_sim/faults", json=list(rules)).raise_for_status()

    def sim_stats(self) -> dict:
        return self.sim("GET", "/_sim/stats").json()
