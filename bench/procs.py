"""Subprocesses of a benchmark run and what /proc says about them.

Every process is started in its own session (``start_new_session``) so that stopping it stops
its children too (uvicorn's worker processes, Celery's pool); ``Procs.stop_all`` runs from a
``finally`` and from the SIGTERM/SIGINT handlers, so a run leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterable

import httpx

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """SIGTERM this child when the benchmark process dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Procs:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        if name in self.running:
            raise RuntimeError(f"{name} is already running")
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        finally:
            log.close()
        self.running[name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, name: str, timeout: float = 15.0) -> None:
        proc = self.running.pop(name, None)
        if proc is None:
            return
        stop_group(proc, timeout)

    def stop_all(self) -> None:
        for name in list(self.running)[::-1]:
            self.stop(name)

    def check_alive(self, names: Iterable[str] | None = None) -> None:
        for name in names or list(self.running):
            proc = self.running.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")


def stop_group(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    # The leader may be gone while children linger (they share its process group).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


# --------------------------------------------------------------------------- waiting
def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def wait_log(path: Path, marker: bytes, proc: subprocess.Popen, timeout: float = 60.0,
             count: int = 1) -> None:
    """Wait until ``marker`` appears ``count`` times in the log (one per worker process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {path.read_text()[-2000:]}")
        if path.exists() and path.read_bytes().count(marker) >= count:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{path.name}: no {marker!r} within {timeout}s")


def wait_settled(proc: subprocess.Popen, timeout: float = 30.0, step: float = 0.25,
                 busy: float = 0.1) -> None:
    """Until ``proc`` (and its children) use under ``busy`` of a core for two steps running:
    its start-up (imports, connections) is over, so its CPU from here on is its work."""
    deadline = time.monotonic() + timeout
    last, quiet = cpu_seconds(proc.pid), 0
    while time.monotonic() < deadline and quiet < 2:
        time.sleep(step)
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} while starting")
        now = cpu_seconds(proc.pid)
        quiet = quiet + 1 if now - last < busy * step else 0
        last = now


# --------------------------------------------------------------------------- /proc
def _processes() -> Iterable[tuple[int, str, int]]:
    """(pid, command name, parent pid) of every process /proc shows."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        yield int(entry), stat[stat.find("(") + 1:stat.rfind(")")], int(stat.rsplit(")", 1)[1].split()[1])


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for pid, _name, ppid in _processes():
        kids.setdefault(ppid, []).append(pid)
    return kids


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    return _children_map().get(pid, [])


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mib(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set) of ``pid`` and each descendant, and their sum, in MiB."""
    per = {p: _status_kib(p, "VmHWM") / 1024 for p in tree(pid)}
    return {"total_mib": round(sum(per.values()), 1), "processes": len(per),
            "largest_mib": round(max(per.values(), default=0.0), 1)}


def cpu_seconds(pid: int) -> float:
    """user+system CPU time of ``pid`` and its live descendants (plus reaped children)."""
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the comm field: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        total += sum(int(x) for x in fields[11:15]) / TICKS
    return total


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def server_root(comm: str) -> int | None:
    """The topmost running process named ``comm`` (PostgreSQL's postmaster, redis-server)."""
    named = {pid: ppid for pid, name, ppid in _processes() if name == comm}
    roots = [pid for pid, ppid in named.items() if ppid not in named]
    return min(roots) if roots else None


class CpuMeter:
    """CPU seconds used by named process trees between ``__init__`` and ``read()``.

    A tree's figure includes children that exited meanwhile (once reaped: PostgreSQL's
    backends are reaped by the postmaster, so its tree counts closed connections too).
    """

    def __init__(self, roots: dict[str, int | None]):
        self.roots = {name: pid for name, pid in roots.items() if pid is not None}
        self.start = {name: cpu_seconds(pid) for name, pid in self.roots.items()}

    def read(self) -> dict[str, float]:
        return {name: round(cpu_seconds(pid) - self.start[name], 3) for name, pid in self.roots.items()}
