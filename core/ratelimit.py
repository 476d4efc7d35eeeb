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

import collections
import math
import threading
import time
import uuid
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

# KEYS[1] = bucket; ARGV = window_ms, quota, member, weight
# Returns {admitted (0/1), used, ms until the oldest counted request leaves the window}.
SLIDING_WINDOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local quota = tonumber(ARGV[2])
local weight = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local admitted = 0
if used + weight <= quota then
  for i = 1, weight do
    redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. i)
  end
  used = used + weight
  admitted = 1
  redis.call('PEXPIRE', KEYS[1], window)
end
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
return {admitted, used, reset}
"""

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
        admitted, used, reset = await self._hit(
            keys=[self._prefix + key], args=[window * 1000, quota, uuid.uuid4().hex, weight])
        return _decision(admitted, used, reset, quota, window)

    async def used(self, key: str, window: int) -> int:
        return int(await self._peek(keys=[self._prefix + key], args=[window * 1000]))


class SyncRedisLimiter:
    """For workers (sync): the upstream throttle shared by every worker process."""

    def __init__(self, client: redis.Redis, prefix: str = "visiongate:rl:"):
        self._prefix = prefix
        self._hit = client.register_script(SLIDING_WINDOW_LUA)

    def hit(self, key: str, quota: int, window: int, weight: int = 1) -> Decision:
        admitted, used, reset = self._hit(
            keys=[self._prefix + key], args=[window * 1000, quota, uuid.uuid4().hex, weight])
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
