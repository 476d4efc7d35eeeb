"""Sliding-window rate limits, exact across processes.

Each counted request is one member of a Redis sorted set scored by the Redis server's clock; a
Lua script drops members older than the window, counts, and admits only while the count is under
the quota — atomically, so N API processes admit exactly ``quota`` requests in any window of
``window`` seconds, also at a window's edge (a fixed-window counter would admit up to twice
the quota across a boundary). The embedded mode (one API process, no Redis) uses the same
algorithm in memory.

Why our own script and not the ``limits`` package: one round trip, server time (no clock skew
between API processes), exact sliding window, and the numbers the IETF ``RateLimit`` header
fields need (remaining, seconds until a slot frees) come out of the same call.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

log = logging.getLogger(__name__)

# KEYS[1] = bucket; ARGV = window_ms, quota, member, want, least, back_member, back_from, back_to.
# Admits up to ``want`` requests (members member:1…), none if fewer than ``least`` fit: a plain
# hit of weight w is want = least = w (all or nothing); a lease is want = n, least = 1. First it
# gives back unused members back_member:back_from…back_to (a lease's leftovers; '' = none).
# Returns {admitted (0/1), used, ms until the oldest counted request leaves the window, slots taken}.
SLIDING_WINDOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
if ARGV[6] ~= '' then
  for i = tonumber(ARGV[7]), tonumber(ARGV[8]) do
    redis.call('ZREM', KEYS[1], ARGV[6] .. ':' .. i)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local granted = math.min(tonumber(ARGV[4]), quota - used)
local admitted = 0
if granted >= tonumber(ARGV[5]) then
  for i = 1, granted do
    redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. i)
  end
  used = used + granted
  admitted = 1
  redis.call('PEXPIRE', KEYS[1], window)
else
  granted = 0
end
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
return {admitted, used, reset, granted}
"""
NO_GIVE_BACK = ("", 0, 0)

# Read-only: how much of the window is used (for the account view).
PEEK_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    quota: int
    window: int
    remaining: int
    reset_after: float  # seconds until the oldest counted request leaves the window

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_after))

    def headers(self, policy: str) -> dict[str, str]:
        """IETF draft-ietf-httpapi-ratelimit-headers (RateLimit-Policy / RateLimit)."""
        out = {
            "RateLimit-Policy": f'"{policy}";q={self.quota};w={self.window}',
            "RateLimit": f'"{policy}";r={self.remaining};t={math.ceil(self.reset_after)}',
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


def _decision(admitted: int, used: int, reset_ms: float, quota: int, window: int) -> Decision:
    reset = reset_ms / 1000 if used else 0.0
    return Decision(bool(admitted), quota, window, max(0, quota - used), max(0.0, reset))


class RedisLimiter:
    """For the API (async)."""

    def __init__(self, client: aioredis.Redis, prefix: str = "visiongate:rl:"):
        self._client = client
        self._prefix = prefix
        self._hit = client.register_script(SLIDING_WINDOW_LUA)
        self._peek = client.register_script(PEEK_LUA)

    async def hit(self, key: str, quota: int, window: int, weight: int = 1) -> Decision:
        admitted, used, reset, _ = await self._hit(
            keys=[self._prefix + key],
            args=[window * 1000, quota, uuid.uuid4().hex, weight, weight, *NO_GIVE_BACK])
        return _decision(admitted, used, reset, quota, window)

    async def lease(self, key: str, quota: int, window: int, size: int, member: str,
                    give_back: tuple[str, int, int] | None = None) -> tuple[int, int, float]:
        """Up to ``size`` slots as members ``member:1…``; returns (granted, used, reset ms)."""
        _, used, reset, granted = await self._hit(
            keys=[self._prefix + key], args=[window * 1000, quota, member, size, 1, *(give_back or NO_GIVE_BACK)])
        return int(granted), int(used), float(reset)

    async def used(self, key: str, window: int) -> int:
        return int(await self._peek(keys=[self._prefix + key], args=[window * 1000]))


@dataclass
class _Lease:
    quota: int
    member: str
    granted: int
    used: int          # the window's count in Redis right after the grant (the whole lease)
    reset_at: float    # monotonic time the window's oldest counted request leaves it
    started: float
    until: float
    taken: int = 0     # requests admitted from it (their rate sizes the next lease)


class LeasedLimiter:
    """The Redis limiter with the round trip taken off busy keys.

    A key that sees many requests in this process (a client polling its jobs' status, a burst
    of submissions) takes its admissions from Redis in small leases: one script call reserves
    as many slots as the key used here in the last ``period`` seconds (at most ``quota //
    share``), the requests of the next ``period`` are admitted from the lease in memory, and the
    next lease gives back what this one did not use. The count in Redis never exceeds the
    quota (a lease is granted only from free slots, partly if need be), so N processes together
    still admit at most ``quota`` per window; what leases change is timing: a slot counts from
    the moment it was leased, up to ``period`` early, and a process may hold up to one lease of
    slots that another process cannot use until it is given back or expires. Quotas below
    ``2 × share`` (the Free and Starter plans' 10 and 60 per minute) and weighted hits skip
    leases: every request asks Redis, exactly as ``RedisLimiter``.
    """

    def __init__(self, inner: RedisLimiter, period: float = 0.2, share: int = 50):
        self.inner = inner
        self.period = period
        self.share = share
        self._leases: dict[str, _Lease] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def hit(self, key: str, quota: int, window: int, weight: int = 1) -> Decision:
        if weight != 1 or quota // self.share < 2:
            return await self.inner.hit(key, quota, window, weight)
        lease = self._take(key, quota)
        if lease is not None:
            return self._admitted(lease, window)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:  # one lease request per key at a time; the others wait and share it
            lease = self._take(key, quota)
            if lease is not None:
                return self._admitted(lease, window)
            return await self._renew(key, quota, window)

    def _take(self, key: str, quota: int) -> _Lease | None:
        lease = self._leases.get(key)
        if (lease is None or lease.quota != quota or lease.taken >= lease.granted
                or time.monotonic() >= lease.until):
            return None
        lease.taken += 1
        return lease

    def _admitted(self, lease: _Lease, window: int) -> Decision:
        remaining = lease.quota - lease.used + lease.granted - lease.taken
        return Decision(True, lease.quota, window, max(0, remaining),
                        max(0.0, lease.reset_at - time.monotonic()))

    async def _renew(self, key: str, quota: int, window: int) -> Decision:
        now = time.monotonic()
        old = self._leases.pop(key, None)
        give_back, size = None, 1
        if old is not None and old.quota == quota:
            if old.taken < old.granted:
                give_back = (old.member, old.taken + 1, old.granted)
            rate = (old.taken + 1) / max(now - old.started, self.period / 4)
            size = max(1, min(math.ceil(rate * self.period), quota // self.share))
        member = uuid.uuid4().hex
        granted, used, reset_ms = await self.inner.lease(key, quota, window, size, member, give_back)
        if granted < 1:
            return _decision(0, used, reset_ms, quota, window)
        now = time.monotonic()
        lease = _Lease(quota, member, granted, used, now + (reset_ms / 1000 if used else 0.0),
                       started=now, until=now + self.period, taken=1)
        if len(self._leases) >= 10_000:
            # Leases are short-lived; the slots of a dropped one just age out of the window.
            self._leases.clear()
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        self._leases[key] = lease
        return self._admitted(lease, window)

    async def used(self, key: str, window: int) -> int:
        lease = self._leases.get(key)
        unused = lease.granted - lease.taken if lease is not None else 0
        return max(0, await self.inner.used(key, window) - unused)


class SyncRedisLimiter:
    """For workers (sync): the upstream throttle shared by every worker process."""

    def __init__(self, client: redis.Redis, prefix: str = "visiongate:rl:"):
        self._prefix = prefix
        self._hit = client.register_script(SLIDING_WINDOW_LUA)

    def hit(self, key: str, quota: int, window: int, weight: int = 1) -> Decision:
        admitted, used, reset, _ = self._hit(
            keys=[self._prefix + key],
            args=[window * 1000, quota, uuid.uuid4().hex, weight, weight, *NO_GIVE_BACK])
        return _decision(admitted, used, reset, quota, window)


class MemoryWindow:
    """The same sliding window in one process (embedded mode); thread-safe."""

    def __init__(self) -> None:
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def hit(self, key: str, quota: int, window: int, weight: int = 1) -> Decision:
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - window:
                hits.popleft()
            admitted = len(hits) + weight <= quota
            if admitted:
                hits.extend([now] * weight)
            # window − age, not (oldest + window) − now: the latter can round to a hair above
            # the window, which the header's ceil turns into t=window+1.
            reset_ms = (window - (now - hits[0])) * 1000 if hits else 0
            return _decision(int(admitted), len(hits), reset_ms, quota, window)

    def used(self, key: str, window: int) -> int:
        now = time.monotonic()
        with self._lock:
            return sum(1 for t in self._hits.get(key, ()) if t > now - window)


class MemoryLimiter:
    """Async face of ``MemoryWindow`` for the API."""

    def __init__(self) -> None:
        self._window = MemoryWindow()

    async def hit(self, key: str, quota: int, window: int, weight: int = 1) -> Decision:
        return self._window.hit(key, quota, window, weight)

    async def used(self, key: str, window: int) -> int:
        return self._window.used(key, window)


class FallbackLimiter:
    """The shared limiter while Redis answers; a local one in this process while it does not.

    When Redis is unreachable the API keeps admitting requests instead of failing them: each
    process counts in memory with ``1 / processes`` of every quota (``VISIONGATE_API_PROCESSES``,
    the number of API processes in the deployment), so all of them together never admit more
    than the plan allows. After a failure Redis is tried again ``retry_after`` seconds later
    (not on every request: a connection that fails costs time)."""

    def __init__(self, shared: Any, processes: int = 1, retry_after: float = 2.0):
        self.shared = shared
        self.local = MemoryLimiter()
        self.processes = max(1, processes)
        self.retry_after = retry_after
        self._down_until = 0.0

    def _share(self, quota: int) -> int:
        return max(1, quota // self.processes) if quota > 0 else quota

    def degraded(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self) -> None:
        if not self.degraded():
            log.warning("rate limits: Redis unavailable; counting locally (1/%d of each quota) "
                        "for %.0f s", self.processes, self.retry_after, exc_info=True)
        self._down_until = time.monotonic() + self.retry_after

    async def hit(self, key: str, quota: int, window: int, weight: int = 1) -> Decision:
        if not self.degraded():
            try:
                return await self.shared.hit(key, quota, window, weight)
            except (redis.RedisError, OSError):
                self._failed()
        decision = await self.local.hit(key, self._share(quota), window, weight)
        return Decision(decision.allowed, quota, window, decision.remaining, decision.reset_after)

    async def used(self, key: str, window: int) -> int:
        if not self.degraded():
            try:
                return await self.shared.used(key, window)
            except (redis.RedisError, OSError):
                self._failed()
        return await self.local.used(key, window)
