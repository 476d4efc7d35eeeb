"""Scenarios where a server goes away: Redis (down under load; restarted empty with starts
queued) and PostgreSQL (down under load)."""

from __future__ import annotations

import time
from typing import Any

import redis

from bench.chaos.cluster import Cluster
from bench.chaos.scenario import Scenario


def broker_backlog(c: Cluster) -> dict[str, int]:
    """Messages held by Redis: each list's length (the queues) and each hash's (Celery's unacked)."""
    out: dict[str, int] = {}
    try:
        client = c.svc.redis.client()
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            name = key.decode(errors="replace")
            if kind == b"list":
                out[name] = int(client.llen(key))
            elif kind == b"hash" and "unacked" in name:
                out[name] = int(client.hlen(key))
    except redis.RedisError as exc:
        out["error"] = -1
        out[str(exc)[:80]] = -1
    return {k: v for k, v in sorted(out.items()) if v}


def burst(s: Scenario) -> None:
    """``--burst`` jobs at ``--burst-rate`` on top of the steady load; returns three quarters of
    the way through it, so that the fault comes while the worker is busy with a backlog of starts
    (messages in Redis, jobs mid-submit): at the steady rate almost nothing is in flight."""
    a = s.c.c
    if a.burst > 0:
        s.traffic.submit(a.burst, a.burst_rate)
        s.c.sleep(0.75 * a.burst / a.burst_rate)


def load_text(a: Any) -> str:
    text = f"under load ({a.rate:g} jobs/s"
    if a.burst:
        text += f", the fault {0.75 * a.burst / a.burst_rate:g} s into a burst of {a.burst} at {a.burst_rate:g}/s"
    return text + ")"


def redis_outage(c: Cluster) -> dict[str, Any]:
    a = c.c
    c.fresh()
    s = Scenario(c, "redis", "Redis outage under load",
                 f"Redis stopped for {a.redis_outage:g} s {load_text(a)}, restarted empty")
    s.traffic.submit(int(a.rate * (a.lead + a.redis_outage + a.tail)), a.rate)
    c.sleep(a.lead)
    burst(s)
    held = broker_backlog(c)
    with s.fault():
        c.svc.redis.stop()
        c.event("stop", "redis")
        c.sleep(a.redis_outage)
        c.svc.redis.start()
        c.event("start", "redis (empty)")
    s.extra["broker_backlog_at_stop"] = held
    s.notes.append(f"messages in Redis when it stopped (lost): {held or 'none'}")
    return s.finish()


def redis_empty(c: Cluster) -> dict[str, Any]:
    a = c.c
    c.fresh()
    s = Scenario(c, "redis-empty", "Redis restarted empty, starts queued",
                 f"workers stopped, {a.queued} jobs submitted (start messages queued), Redis restarted "
                 "empty, workers started")
    c.stop_proc("worker")
    s.traffic.submit(a.queued, 50.0)
    s.wait_submitted()
    c.sleep(1.0)
    held = broker_backlog(c)
    with s.fault():
        c.svc.redis.stop()
        c.event("stop", "redis")
        c.sleep(1.0)
        c.svc.redis.start()
        c.event("start", "redis (empty)")
        c.launch("worker")
    s.extra["broker_backlog_at_stop"] = held
    s.notes.append(f"messages in Redis when it stopped (lost): {held or 'none'}; settle is counted from "
                   "the workers' start, right after Redis came back")
    return s.finish()


def postgres_outage(c: Cluster) -> dict[str, Any]:
    a = c.c
    c.fresh()
    s = Scenario(c, "postgres", "PostgreSQL outage under load",
                 f"PostgreSQL stopped (pg_ctl stop -m fast) for {a.pg_outage:g} s {load_text(a)}")
    s.traffic.submit(int(a.rate * (a.lead + a.pg_outage + a.tail)), a.rate)
    c.sleep(a.lead)
    burst(s)
    with s.fault():
        t = time.monotonic()
        c.svc.pg.stop("fast")
        c.event("stop", "postgres", took_s=round(time.monotonic() - t, 2))
        c.sleep(a.pg_outage)
        c.svc.pg.start()
        c.event("start", "postgres")
    return s.finish()
