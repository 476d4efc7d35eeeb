"""The per-process status cache: what it keeps, for how long, and what drops it."""

import datetime as dt
import time

from core.models import utcnow
from core.notify import ALL
from core.statuscache import StatusCache, StatusEntry


def entry(job_id: str = "j1", status: str = "RUNNING", tenant: str = "t1", provider: str = "bria",
          expires_in: float | None = 3600) -> StatusEntry:
    expires = utcnow() + dt.timedelta(seconds=expires_in) if expires_in is not None else None
    return StatusEntry(job_id, tenant, provider, status, None, None, None, None, expires)


def live_cache(ttl: float = 60) -> StatusCache:
    cache = StatusCache(ttl)
    cache.set_live(True)
    return cache


def test_final_entries_stay_until_the_job_expires_even_without_a_subscription():
    cache = StatusCache(60)  # not live
    cache.put(entry(status="COMPLETED"), cache.begin())
    assert cache.get("j1").status == "COMPLETED"
    cache.put(entry("j2", status="ERROR", expires_in=-1), cache.begin())
    assert cache.get("j2") is None  # retention over: read the database (which says 404)


def test_unfinished_entries_only_while_subscribed_and_for_the_ttl():
    cache = StatusCache(60)
    cache.put(entry(), cache.begin())
    assert cache.get("j1") is None  # no subscription: a finish could be missed
    cache.set_live(True)
    cache.put(entry(), cache.begin())
    assert cache.get("j1").status == "RUNNING"
    short = live_cache(ttl=0.05)
    short.put(entry(), short.begin())
    time.sleep(0.06)
    assert short.get("j1") is None


def test_a_finish_drops_the_unfinished_entry_and_a_stale_read_is_not_stored():
    cache = live_cache()
    cache.put(entry(), cache.begin())
    cache.finished("j1")
    assert cache.get("j1") is None
    # A read that began before the finish was announced may hold the old state: not stored.
    started = cache.begin()
    cache.finished("j1")
    cache.put(entry(), started)
    assert cache.get("j1") is None
    # A read that began after it is fine, and so is a read of another job.
    cache.put(entry(), cache.begin())
    cache.put(entry("j2"), started)
    assert cache.get("j1") is not None and cache.get("j2") is not None
    # The final state read after the finish replaces the unfinished one.
    cache.put(entry(status="COMPLETED"), started)
    assert cache.get("j1").status == "COMPLETED"


def test_all_and_losing_the_subscription_drop_every_unfinished_entry():
    cache = live_cache()
    for i in range(3):
        cache.put(entry(f"j{i}"), cache.begin())
    cache.put(entry("done", status="COMPLETED"), cache.begin())
    started = cache.begin()
    cache.finished(ALL)
    assert [cache.get(f"j{i}") for i in range(3)] == [None] * 3
    cache.put(entry("j0"), started)  # read before the bulk change: not stored
    assert cache.get("j0") is None
    cache.put(entry("j0"), cache.begin())
    cache.set_live(False)
    assert cache.get("j0") is None and cache.get("done") is not None
    cache.put(entry("j0"), cache.begin())
    assert cache.get("j0") is None  # not cached again until the subscription is back


def test_visibility_follows_the_job_rules():
    e = entry(status="COMPLETED")
    assert e.visible_to("t1", "bria") and e.visible_to("t1", None)
    assert not e.visible_to("t2", "bria") and not e.visible_to("t1", "openai")
    assert not entry(status="EXPIRED").visible_to("t1", "bria")
    assert not entry(expires_in=-5).visible_to("t1", "bria")
    assert entry(expires_in=None).visible_to("t1", "bria")


def test_the_cache_is_bounded():
    cache = StatusCache(60, size=10)
    for i in range(25):
        cache.put(entry(f"j{i}", status="COMPLETED"), cache.begin())
    assert len(cache) == 10 and cache.get("j24") is not None and cache.get("j0") is None
