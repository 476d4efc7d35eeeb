"""Decompression bombs against the running system: a 20000x20000 PNG of a few hundred KB.

Sent as base64 it must be refused at intake (422 naming the field and the limit, no job row);
served from a URL (127.0.0.2, like the endpoint tests' inputs) the job must end in ERROR with the
limit message. Either way the worker must not decode it: its resident memory, sampled while the
jobs run, stays within a generous bound (decoding one such image costs hundreds of MB).
"""

from __future__ import annotations

import base64
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.bria_media import Files
from tests.integration.conftest import Client
from tests.integration.system import System

pytestmark = pytest.mark.integration

B = "/api/v1/bria"
TENANT = "media-limits"
SIDE = 20000
LIMIT_MSG = "this operation accepts at most 16.8 MP / 8192 px on the longest side"
RSS_BOUND_MB = 150  # decoding one bomb took the worker from 141 MB to 909 MB


def png_bomb(width: int = SIDE, height: int = SIDE) -> bytes:
    """A complete, valid 8-bit grayscale PNG of ``width``x``height`` zero pixels: zlib packs the
    400 MB of scanlines into a few hundred KB. Compressed in slices, so making it stays small."""
    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    packer = zlib.compressobj(9)
    rows = bytes(width + 1) * 500  # filter byte 0 + a row of zeros, 500 rows at a time
    idat = b"".join(packer.compress(rows) for _ in range(height // 500)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = png_bomb()
    assert len(data) < 1024 * 1024  # small on the wire: only the declared size is huge
    return data


@pytest.fixture(scope="module")
def served() -> Iterator[Files]:
    server = Files()
    yield server
    server.close()


@pytest.fixture
def mc(system: System, make_key) -> Iterator[Client]:
    c = Client(system.api_url, make_key(TENANT, "enterprise"))
    yield c
    c.http.close()


# --------------------------------------------------------------------------- worker memory
def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def worker_rss_mb(system: System) -> float:
    """Resident memory of the worker processes (and any children), in MB."""
    pids = [pid for name, proc in system.procs.items() if name.startswith("worker")
            for pid in _descendants(proc.pid)]
    assert pids, "no worker process is running"
    return sum(_rss_kb(pid) for pid in pids) / 1024


class PeakRss:
    """Samples the workers' RSS in the background; ``peak`` is the highest value seen."""

    def __init__(self, system: System, every: float = 0.05):
        self.system, self.every = system, every
        self.baseline = worker_rss_mb(system)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, worker_rss_mb(self.system))
            time.sleep(self.every)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, worker_rss_mb(self.system))

    @property
    def growth(self) -> float:
        return self.peak - self.baseline


# --------------------------------------------------------------------------- helpers
def job_count() -> int:
    from sqlalchemy import func, select

    from core.db import session_factory
    from core.models import Job, Tenant

    with session_factory()() as session:
        return session.scalar(select(func.count()).select_from(Job).join(Tenant, Tenant.id == Job.tenant_id)
                              .where(Tenant.name == TENANT))


def bodies(image: str) -> list[tuple[str, dict[str, Any]]]:
    """Requests whose upstream body needs the image's size (the worker used to decode it)."""
    return [
        ("/image/editing-generation/inpaint",
         {"image": image, "mask_type": "border_only", "prompt": "continue the scenery", "sync": False}),
        ("/image/editing-generation/expand-image", {"image": image, "canvas_size": [1000, 1000], "sync": False}),
        ("/image/editing/inpaint",  # 003's deprecated path: the same operation and limits
         {"image_url": image, "mask_type": "border_only", "prompt": "continue the scenery"}),
    ]


# --------------------------------------------------------------------------- tests
def test_bombs_are_refused_before_anything_decodes_them(mc: Client, system: System, served: Files, bomb: bytes):
    encoded = base64.b64encode(bomb).decode()
    url = served.put("bomb.png", bomb, "image/png")
    jobs_before, submits_before = job_count(), system.sim_stats()["submit"]
    with PeakRss(system) as rss:
        # URL: accepted (the API never fetches); several run in the worker at once
        ids = []
        for path, body in bodies(url) * 2:
            resp = mc.http.post(B + path, json=body)
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["result"]["request_id"])
        # base64: refused at intake, naming the field and the limit
        refused = [mc.http.post(B + path, json=body)
                   for path, body in bodies(encoded) + bodies("data:image/png;base64," + encoded)]
        docs = [mc.wait(request_id, timeout=90) for request_id in ids]
    print(f"worker RSS: baseline {rss.baseline:.0f} MB, peak {rss.peak:.0f} MB (+{rss.growth:.0f} MB)")
    for resp in refused:
        assert resp.status_code == 422, resp.text
        errors = [e for e in resp.json()["detail"] if e["loc"][:2] in (["body", "image"], ["body", "image_url"])]
        assert errors and errors[0]["type"] == "image_too_many_pixels", resp.text
        assert f"{SIDE}x{SIDE} (400.0 MP)" in errors[0]["msg"] and LIMIT_MSG in errors[0]["msg"], errors
    assert job_count() == jobs_before + len(ids)  # no job for any refused request
    assert system.sim_stats()["submit"] == submits_before  # no bomb reached the upstream
    for doc in docs:
        assert doc["status"] == "ERROR", doc
        assert doc["error"]["code"] == "image_too_many_pixels", doc
        message = doc["error"]["message"]
        assert message.startswith("image") and url in message, doc
        assert f"{SIDE}x{SIDE} (400.0 MP)" in message and LIMIT_MSG in message, doc
    assert rss.growth < RSS_BOUND_MB, f"the worker grew by {rss.growth:.0f} MB"


def test_a_legitimate_image_still_runs_after_the_bombs(mc: Client, system: System):
    from PIL import Image

    from tests.integration.bria_media import b64, completed, png_of

    img = Image.new("RGB", (320, 240), (236, 236, 230))
    resp = mc.http.post(B + "/image/editing-generation/inpaint",
                        json={"image": b64(img), "mask_type": "border_only", "prompt": "forest", "sync": False})
    assert resp.status_code == 202, resp.text
    (data,) = completed(mc.wait(resp.json()["result"]["request_id"], timeout=60))
    assert png_of(data).size == (320, 240)
