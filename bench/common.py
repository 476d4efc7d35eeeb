"""What the benchmark's modules share: where the repository is, the request every scenario
sends, the job states that need nothing more, and small helpers."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path


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


def git_commit() -> str | None:
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



def children_cpu() -> float:
    """CPU seconds of this process's reaped children (the no-op sender runs as one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rnd(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))
