"""Celery task bodies: thin wrappers that hand the job id to ``workers.pipeline`` (the sweeps to
``workers.sweeper``).

The worker process builds one ``Context`` (DB sessions, storage, provider clients) lazily,
after Celery has forked its pool processes, so no connection is shared across a fork.
"""

from __future__ import annotations

import functools
import logging
import os
import threading

import redis
from celery.signals import worker_process_init

from core.db import reset_engines, session_factory
from core.notify import Notifier
from core.ratelimit import MemoryWindow, SyncRedisLimiter
from core.settings import get_settings
from core.storage import LocalStorage
from workers import pipeline, sweeper, webhooks
from workers.context import Context
from workers.holdings import Holdings
from workers.inflight import InFlight
from workers.journal import Journal
from workers.app import BrokerProbe, CANCEL_TASK, EXPIRE_TASK, POLL_TASK, START_TASK, SWEEP_TASK, celery_app, poll_queue, publish
from workers.throttle import Throttle
from workers.upstreams import build_providers, upstream_limits

log = logging.getLogger(__name__)


_context_lock = threading.Lock()


def context() -> Context:
    """The process's one Context, built on first use by whichever task thread comes first (the
    others wait: a Context holds connection pools, an event loop and the adapters' clients)."""
    with _context_lock:
        if _built.cache_info().currsize == 0:
            log.info("building the worker context")
        return _built()


@functools.lru_cache(maxsize=1)
def _built() -> Context:
    settings = get_settings()
    log.info("worker context built in pid %d", os.getpid())
    window = (SyncRedisLimiter(redis.Redis.from_url(settings.notify_redis_url))
              if settings.notify_redis_url else MemoryWindow())
    sessions = session_factory()
    holdings = Holdings(sessions, settings.start_lease_seconds, Journal(settings.data_path / "journal"))
    ctx = Context(
        settings=settings,
        sessions=sessions,
        storage=LocalStorage(settings.results_path),
        notifier=Notifier(settings.notify_redis_url),
        providers=build_providers(settings),
        publish=publish,
        throttle=Throttle(upstream_limits(settings), window, busy_delay=settings.poll_interval_seconds),
        start_task=START_TASK,
        poll_task=POLL_TASK,
        poll_queue=poll_queue,
        inflight=InFlight(),
        broker=BrokerProbe(),
        holdings=holdings,
    )
    # Task ids the journal kept through a database outage: once written, the job moves on.
    holdings.on_recorded = lambda job_id, tasks, recorded: pipeline.resume_recorded(ctx, job_id, tasks, recorded)
    holdings.start()
    return ctx


@worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    reset_engines()
    _built.cache_clear()


@celery_app.task(name=START_TASK, bind=True)
def start(self, job_id: str) -> None:
    # Start messages go to their provider's queue: its name says which adapter will run the job.
    queue = (self.request.delivery_info or {}).get("routing_key")
    pipeline.start(context(), job_id, queue)


@celery_app.task(name=POLL_TASK)
def poll(job_ids: str | list[str]) -> None:
    """One job id (messages published before batching existed) or a batch of them."""
    pipeline.poll(context(), job_ids)


@celery_app.task(name=SWEEP_TASK)
def sweep() -> dict[str, int]:
    try:
        return sweeper.sweep(context())
    finally:
        # Due webhook deliveries and finished batches ride on the same beat message (no extra
        # broker traffic; a failure there is logged and never stops the job sweep).
        webhooks.sweep()


@celery_app.task(name=EXPIRE_TASK)
def expire() -> int:
    return sweeper.expire(context())


@celery_app.task(name=CANCEL_TASK)
def cancel_upstream(job_id: str) -> int:
    """Stop the upstream tasks of a job the client cancelled (where its provider can)."""
    return pipeline.cancel_upstream(context(), job_id)
