"""The sliding-window limiter (Redis Lua script on fakeredis, and the in-memory twin), the
header fields it produces, the plan grid and the upstream throttle."""

import asyncio

import fakeredis
import redis
import pytest

from core.plans import DEFAULT_PLANS, limits_for, plan_grid, validate_overrides
from core.ratelimit import LeasedLimiter, MemoryLimiter, MemoryWindow, RedisLimiter, SyncRedisLimiter


@pytest.fixture(params=["redis", "memory"])
def limiter(request):
    if request.param == "redis":
        return RedisLimiter(fakeredis.FakeAsyncRedis())
    return MemoryLimiter()


def run(coro):
    return asyncio.run(coro)


def test_admits_exactly_the_quota_then_refuses(limiter):
    async def go():
        return [await limiter.hit("t:endpoint:/x", 5, 60) for _ in range(8)]

    decisions = run(go())
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0, 0]
    refused = decisions[-1]
    assert 58 <= refused.reset_after <= 60 and refused.retry_after == 60


def test_header_fields_follow_the_ietf_draft(limiter):
    async def go():
        first = await limiter.hit("k", 60, 60)
        for _ in range(59):
            await limiter.hit("k", 60, 60)
        return first, await limiter.hit("k", 60, 60)

    first, refused = run(go())
    assert first.headers("endpoint") == {"RateLimit-Policy": '"endpoint";q=60;w=60',
                                         "RateLimit": '"endpoint";r=59;t=60'}
    h = refused.headers("endpoint")
    assert h["RateLimit"] == '"endpoint";r=0;t=60' and h["Retry-After"] == "60"


def test_window_slides(limiter):
    async def go():
        assert (await limiter.hit("s", 2, 1)).allowed
        assert (await limiter.hit("s", 2, 1)).allowed
        assert not (await limiter.hit("s", 2, 1)).allowed
        await asyncio.sleep(1.05)  # the first two leave the 1-second window
        return await limiter.hit("s", 2, 1)

    assert run(go()).allowed


def test_buckets_are_separate_and_usage_is_readable(limiter):
    async def go():
        for _ in range(3):
            await limiter.hit("a", 10, 60)
        await limiter.hit("b", 10, 60)
        return await limiter.used("a", 60), await limiter.used("b", 60), await limiter.used("c", 60)

    assert run(go()) == (3, 1, 0)


def test_weighted_hits_never_overshoot():
    window = SyncRedisLimiter(fakeredis.FakeRedis())
    assert window.hit("up", 5, 60, weight=4).allowed
    assert not window.hit("up", 5, 60, weight=2).allowed  # 4 + 2 > 5: refused whole
    assert window.hit("up", 5, 60, weight=1).remaining == 0


def test_memory_window_is_thread_safe():
    import threading

    w = MemoryWindow()
    results = []

    def worker():
        for _ in range(50):
            results.append(w.hit("x", 100, 60).allowed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results.count(True) == 100


def test_plan_grid_defaults_and_overrides():
    assert [DEFAULT_PLANS[p].rpm for p in ("free", "starter", "pro", "enterprise")] == [10, 60, 1000, 1000]
    grid = plan_grid({"starter": {"rpm": 120}, "team": {"rpm": 300}})
    assert grid["starter"].rpm == 120 and grid["starter"].concurrency == DEFAULT_PLANS["starter"].concurrency
    assert grid["team"].rpm == 300
    eff = limits_for(grid, "starter", {"concurrency": 3, "unmetered": True})
    assert (eff.rpm, eff.concurrency, eff.unmetered) == (120, 3, True)
    assert limits_for(grid, "unknown-plan", None) == grid["free"]
    with pytest.raises(ValueError):
        validate_overrides({"rpm": -1})
    with pytest.raises(ValueError):
        validate_overrides({"speed": 1})
    with pytest.raises(ValueError):
        validate_overrides({"unmetered": "yes"})


def test_upstream_throttle_spaces_requests(db):
    from core.models import Job
    from core.tenants import get_or_create_tenant
    from workers.throttle import Throttle

    sessions, _ = db
    th = Throttle({"bria": {"rpm": 2, "concurrency": 1}}, MemoryWindow(), busy_delay=0.5)
    with sessions.begin() as s:
        tenant = get_or_create_tenant(s, "t")
        running = Job(tenant_id=tenant.id, provider="bria", operation="bria.generate_image", params={},
                      status="SUBMITTED")
        s.add(running)
    with sessions() as s:
        assert th.wait_time(s, "bria", "other", 1) == 0.5  # one task upstream already: at the cap
    th.limits["bria"]["concurrency"] = None
    with sessions() as s:
        assert th.wait_time(s, "bria", "a", 1) is None
        assert th.wait_time(s, "bria", "b", 1) is None
        wait = th.wait_time(s, "bria", "c", 1)
    assert wait is not None and 59 < wait <= 60


# --------------------------------------------------------------------------- leased limiter
def leased_pair(period: float = 0.2):
    """Two API processes' limiters on one Redis, counting their round trips."""
    server = fakeredis.FakeServer()
    limiters, calls = [], []
    for _ in range(2):
        inner = RedisLimiter(fakeredis.FakeAsyncRedis(server=server))
        lease = inner.lease

        async def counted(*args, _lease=lease, **kw):
            calls.append(args[3])
            return await _lease(*args, **kw)

        inner.lease = counted
        limiters.append(LeasedLimiter(inner, period=period))
    return limiters, calls


def test_leases_never_admit_more_than_the_quota_across_processes():
    (a, b), calls = leased_pair()

    async def go():
        out = []
        for i in range(1500):
            out.append(await (a if i % 3 else b).hit("t:reads", 1000, 60))
        return out

    decisions = run(go())
    admitted = sum(d.allowed for d in decisions)
    # At most one lease (quota // 50 = 20 slots) per process can sit unused at the end.
    assert 1000 - 2 * 20 <= admitted <= 1000
    # Most admissions took no round trip (every refusal asks Redis: no request is refused on a
    # stale local view).
    assert len(calls) - (1500 - admitted) < admitted / 5
    assert all(d.remaining >= 0 for d in decisions)


def test_lease_sizes_follow_the_rate_and_unused_slots_go_back():
    (a, _), calls = leased_pair(period=0.05)

    async def go():
        for _ in range(200):
            assert (await a.hit("t:reads", 10_000, 60)).allowed
        await asyncio.sleep(0.06)  # the lease expires with slots left
        assert (await a.hit("t:reads", 10_000, 60)).allowed
        return await a.inner.used("t:reads", 60)

    used = run(go())
    assert calls[0] == 1 and max(calls) > 1  # starts exact, grows with the request rate
    # The renewal gave back what the expired lease did not use: Redis counts real requests
    # plus the new lease's unused slots.
    assert used <= 201 + calls[-1] - 1
    assert run(a.used("t:reads", 60)) == 201


def test_small_quotas_are_exact_on_every_request():
    (a, b), calls = leased_pair()

    async def go():
        return [await (a if i % 2 else b).hit("t:endpoint:/x", 60, 60) for i in range(70)]

    decisions = run(go())
    assert [d.allowed for d in decisions] == [True] * 60 + [False] * 10
    assert calls == []  # quota 60 < 2 × 50: straight to the sliding window, no leases
    assert [d.remaining for d in decisions[:3]] == [59, 58, 57]


# --------------------------------------------------------------------------- Redis away
class _Down:
    """A shared limiter whose Redis refuses connections."""

    def __init__(self):
        self.calls = 0

    async def hit(self, *a, **kw):
        self.calls += 1
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    async def used(self, *a, **kw):
        self.calls += 1
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379")


def test_fallback_admits_a_share_of_the_quota_locally_while_redis_is_down():
    from core.ratelimit import FallbackLimiter

    down = _Down()
    limiter = FallbackLimiter(down, processes=4, retry_after=60)

    async def run():
        return [await limiter.hit("t:endpoint:/x", 60, 60) for _ in range(20)]
    decisions = asyncio.run(run())
    assert sum(d.allowed for d in decisions) == 15  # 60 / 4 processes: never more than the plan
    assert decisions[0].quota == 60  # the headers still state the plan's quota
    assert down.calls == 1  # Redis is not asked again before retry_after
    assert asyncio.run(limiter.used("t:endpoint:/x", 60)) == 15


def test_fallback_goes_back_to_redis_after_the_pause():
    from core.ratelimit import FallbackLimiter, MemoryLimiter

    class Flaky(MemoryLimiter):
        fail = True

        async def hit(self, *a, **kw):
            if self.fail:
                raise redis.exceptions.TimeoutError("Timeout reading from socket")
            return await super().hit(*a, **kw)

    shared = Flaky()
    limiter = FallbackLimiter(shared, processes=1, retry_after=0.0)
    assert asyncio.run(limiter.hit("k", 5, 60)).allowed
    shared.fail = False
    asyncio.run(limiter.hit("k", 5, 60))
    assert shared._window.used("k", 60) == 1  # counted in the shared limiter again
