"""Load generator: ``python -m bench.load '<json spec>'`` → one JSON line on stdout.

Runs in its own process (started by bench.run), on loopback, so its CPU is measured apart from
the server's. ``concurrency`` workers each hold one keep-alive connection and send requests back
to back (closed loop), or at a paced total ``rate`` (requests/s) when one is given. Every loop is
bounded twice: by ``duration`` seconds and by ``max_requests``.

Two HTTP clients, same measurement:

* ``raw`` (default): a minimal HTTP/1.1 keep-alive client on asyncio streams. A benchmark's
  client should cost much less than the server it measures; on a 2-core machine httpx costs
  about as much CPU per request as the endpoints under test, which caps what can be measured.
* ``httpx``: ``httpx.AsyncClient``, for comparison (``--client httpx`` in bench.run).

Spec keys: url (origin), paths (list, cycled), method, headers (dict), body (str), concurrency,
duration, warmup, max_requests, rate, timeout, expect (list of OK status codes), client, cpu
(pin this process to that CPU).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class RawConnection:
    """One keep-alive HTTP/1.1 connection; enough protocol for JSON APIs under uvicorn."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except Exception:
                pass
        self.reader = self.writer = None

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(head + body)
        reader = self.reader
        status_line = await reader.readline()
        if not status_line:
            await self.close()
            raise ConnectionError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = None, False, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()
                    break
                parts.append(await reader.readexactly(size))
                await reader.readline()
            data = b"".join(parts)
        elif length is not None:
            data = await reader.readexactly(length)
        else:
            data = await reader.read()
            close = True
        if close:
            await self.close()
        return status, data


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    origin = urlsplit(spec["url"])
    host, port = origin.hostname, origin.port or 80
    paths: list[str] = spec["paths"]
    method: str = spec.get("method", "GET").upper()
    headers: dict[str, str] = spec.get("headers", {})
    body: bytes = spec.get("body", "").encode()
    concurrency = int(spec.get("concurrency", 64))
    duration = float(spec.get("duration", 10))
    warmup = float(spec.get("warmup", 0))
    max_requests = int(spec.get("max_requests", 10_000_000))
    rate = spec.get("rate")
    timeout = float(spec.get("timeout", 30))
    expect = set(spec.get("expect", [200]))
    client_kind = spec.get("client", "raw")

    heads = []
    for path in paths:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        heads.append(("\r\n".join(lines) + "\r\n\r\n").encode())

    httpx_client = None
    if client_kind == "httpx":
        import httpx

        httpx_client = httpx.AsyncClient(
            base_url=spec["url"], headers=headers, timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    samples: list[str] = []
    issued = 0
    measuring = False

    async def one(conn: RawConnection | None, k: int) -> int:
        i = k % len(paths)
        if httpx_client is not None:
            resp = await httpx_client.request(method, paths[i], content=body or None)
            await resp.aread()
            return resp.status_code
        assert conn is not None
        status, _ = await asyncio.wait_for(conn.request(heads[i], body), timeout)
        return status

    async def loop(end: float, start: float, limit: int, conn: RawConnection | None) -> None:
        nonlocal issued, errors
        while True:
            now = time.perf_counter()
            if now >= end or issued >= limit:
                return
            k = issued
            issued += 1
            if rate:
                slot = start + k / float(rate)
                if slot > now:
                    await asyncio.sleep(slot - now)
                    if time.perf_counter() >= end:
                        return
            t0 = time.perf_counter()
            try:
                status = await one(conn, k)
            except Exception as exc:  # noqa: BLE001 - every failure is a counted error
                if measuring:
                    errors += 1
                    if len(samples) < 5:
                        samples.append(f"{type(exc).__name__}: {exc}"[:200])
                if conn is not None:
                    await conn.close()
                continue
            if measuring:
                latencies.append(time.perf_counter() - t0)
                statuses[status] += 1
                if status not in expect:
                    errors += 1

    conns = [RawConnection(host, port) if httpx_client is None else None for _ in range(concurrency)]
    if warmup > 0:
        t = time.perf_counter()
        await asyncio.gather(*(loop(t + warmup, t, 10_000_000, c) for c in conns))
    issued = 0
    measuring = True
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t_start = time.perf_counter()
    await asyncio.gather(*(loop(t_start + duration, t_start, max_requests, c) for c in conns))
    wall = time.perf_counter() - t_start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for c in conns:
        if c is not None:
            await c.close()
    if httpx_client is not None:
        await httpx_client.aclose()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    ms = [x * 1000 for x in latencies]
    return {
        "client": client_kind,
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "error_samples": samples,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": round(wall, 3),
        "rps": round(len(latencies) / wall, 1) if wall > 0 else 0.0,
        "p50_ms": _r(percentile(ms, 0.50)),
        "p90_ms": _r(percentile(ms, 0.90)),
        "p99_ms": _r(percentile(ms, 0.99)),
        "max_ms": _r(max(ms) if ms else None),
        "loadgen_cpu_s": round(cpu, 3),
        "loadgen_cpu_util": round(cpu / wall, 3) if wall > 0 else 0.0,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {int(spec["cpu"])})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(spec))), flush=True)


if __name__ == "__main__":
    main()
