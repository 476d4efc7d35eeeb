"""Keep a set of child processes running: the supervisor of ``visiongate worker`` (N Celery
worker processes) and ``visiongate run`` (API, worker, beat, simulator).

A child that exits while the supervisor is not stopping is started again after a backoff (1 s,
doubling up to 30 s; back to 1 s once it has run for a minute), and the restart is logged. SIGTERM
and SIGINT stop every child (SIGTERM, then SIGKILL after a grace period) and end the supervisor.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable

BACKOFF_START, BACKOFF_MAX, STABLE_AFTER = 1.0, 30.0, 60.0


@dataclass
class Child:
    name: str
    command: list[str]
    stdout: IO[bytes] | None = None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = BACKOFF_START
    restart_at: float | None = None
    restarts: int = 0
    popen: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, stdout=self.stdout,
                                     stderr=subprocess.STDOUT if self.stdout else None, **self.popen)
        self.started = time.monotonic()
        self.restart_at = None


def say(message: str) -> None:
    print(f"visiongate: {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, children: list[Child], log: Callable[[str], None] = say):
        self.children = children
        self.log = log
        self.stopping = False

    def start(self) -> None:
        for child in self.children:
            child.start()

    def check(self) -> None:
        """Restart children that exited (after their backoff); call it about twice a second."""
        now = time.monotonic()
        for child in self.children:
            if self.stopping or child.proc is None:
                continue
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    child.start()
                    self.log(f"{child.name} restarted (restart {child.restarts}, pid {child.proc.pid})")
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started >= STABLE_AFTER:
                    child.backoff = BACKOFF_START
                continue
            child.restart_at = now + child.backoff
            self.log(f"{child.name} exited with {code}; restarting in {child.backoff:.0f} s")
            child.backoff = min(BACKOFF_MAX, child.backoff * 2)

    def signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signum)

    def stop(self, grace: float = 30.0) -> int:
        self.stopping = True
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace
        code = 0
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            code = code or child.proc.returncode
        return code

    def run(self, grace: float = 30.0) -> int:
        """Start, keep running until SIGTERM/SIGINT, stop."""
        def on_signal(_signum: int, _frame: object) -> None:
            self.stopping = True

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not self.stopping:
                self.check()
                time.sleep(0.5)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.stop(grace)
