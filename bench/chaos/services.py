"""The fault run's own Redis and PostgreSQL servers, so they can be stopped and started at will.

* Redis: ``redis-server`` on a free loopback port without persistence (``--save ""``,
  ``--appendonly no``): stopping it loses every message, so a restart is a restart *empty*.
* PostgreSQL: a cluster made by ``initdb`` in a temporary folder, on a free loopback port with its
  socket in that folder, its postmaster run in the foreground as our child; an outage is
  ``pg_ctl stop -m fast`` (every session is cut, a clean shutdown), after which the postmaster is
  started again. initdb refuses to run as root: as root the cluster belongs to the ``postgres``
  user and every server command runs as that user.

Both servers die with the run (on the way out, and by the parent-death signal if the run itself
is killed) and their folder is removed.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import redis

from bench import procs as P
from bench.common import free_port, log


def _pg_bindir() -> Path:
    """Where initdb and pg_ctl are: ``$PG_BINDIR``, the PATH, or the newest /usr/lib/postgresql/*/bin."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not versions:
        raise RuntimeError("initdb not found: install PostgreSQL's server binaries or set PG_BINDIR")
    return Path(versions[-1]).parent


class PrivateRedis:
    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.folder), "--protected-mode", "no",
               "--logfile", str(self.folder / "redis.log"), "--maxclients", "2000"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=P._die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with redis.Redis(port=self.port, socket_timeout=1) as probe:
                    if probe.ping():
                        return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def stop(self) -> None:
        """SIGKILL: the server goes away at once, with everything it held (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=2)


class PrivatePostgres:
    def __init__(self, folder: Path):
        self.folder = folder
        self.data = folder / "data"
        self.sock = folder / "sock"
        self.port = free_port()
        self.bindir = _pg_bindir()
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.admin_dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen | None = None

    def _become(self, death_signal: int = signal.SIGTERM):  # noqa: ANN202 - a preexec_fn
        user = self.user

        def become() -> None:  # the server's user, then die with the run (in this order:
            if user is not None:  # changing the user clears the parent-death signal)
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            try:
                ctypes.CDLL(None, use_errno=True).prctl(1, death_signal)  # PR_SET_PDEATHSIG
            except (OSError, AttributeError):
                pass

        return become

    def _run(self, *argv: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.bindir / argv[0]), *argv[1:]], capture_output=True, text=True,
                              timeout=timeout, preexec_fn=self._become(), cwd=self.folder)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-2000:] or proc.stdout[-2000:]}")
        return proc

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if self.user is not None:
            for path in (self.folder, self.sock):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        t0 = time.monotonic()
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.sock}'\nmax_connections = 300\n"
                       "logging_collector = off\n")
        log(f"PostgreSQL cluster made in {time.monotonic() - t0:.1f} s ({self.data}, port {self.port})")

    def start(self, timeout: float = 60.0) -> None:
        """The postmaster in the foreground, as our child (it dies with the run: SIGQUIT, an
        immediate shutdown); ready when it accepts connections."""
        log_file = open(self.folder / "server.log", "ab")
        try:
            self.proc = subprocess.Popen([str(self.bindir / "postgres"), "-D", str(self.data)],
                                         stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=self._become(signal.SIGQUIT),
                                         cwd=self.folder)
        finally:
            log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: "
                                   f"{(self.folder / 'server.log').read_text()[-2000:]}")
            try:
                psycopg.connect(self.admin_dsn, connect_timeout=2).close()
                return
            except psycopg.Error:
                time.sleep(0.1)
        raise TimeoutError(f"PostgreSQL on port {self.port} did not accept connections within {timeout} s")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast``: every session is cut, the server shuts down cleanly."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60", check=False)
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def teardown(self) -> None:
        if self.up:
            self.stop("immediate")


class Services:
    """Both servers in one temporary folder; ``close()`` stops them and removes it."""

    def __init__(self, keep: bool = False):
        self.base = Path(__import__("tempfile").mkdtemp(prefix="visiongate-chaos-"))
        self.base.chmod(0o755)  # the postgres user must reach its folder inside
        self.keep = keep
        self.redis = PrivateRedis(self.base / "redis")
        self.pg = PrivatePostgres(self.base / "pg")

    def start(self) -> None:
        self.redis.start()
        self.pg.init()
        self.pg.start()
        log(f"private Redis on port {self.redis.port}, PostgreSQL on port {self.pg.port} ({self.base})")

    def close(self) -> None:
        for stop in (self.redis.stop, self.pg.teardown):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - go on cleaning up
                log(f"stopping a private server: {exc}")
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)
