"""Webhook delivery and batch bookkeeping in the worker.

* ``dispatch``      (each sweep, i.e. every beat interval) – claims the deliveries whose next attempt is
  due and publishes one ``visiongate.webhooks.deliver`` message per delivery on the
  ``webhooks`` queue. The schedule lives in the database (``next_attempt_at``), never in broker
  countdowns, and no worker ever sleeps waiting for a retry.
* ``deliver``       – one HTTP attempt: sign, POST through the SSRF guard (connect 5 s, whole
  answer ~10 s), keep the first 1 KiB of the answer, log the attempt, schedule the next one
  or finish. Nothing here can change a job's outcome.
* ``sweep_batches`` (each sweep) – closes batches whose jobs have all finished and records their
  final event.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Callable

import httpx
from celery.signals import worker_process_init
from sqlalchemy.orm import sessionmaker

from core import batches, netguard
from core.webhooks import delivery, outbox
from core.db import session_factory
from core.settings import Settings, get_settings
from workers.app import (
    BATCH_SWEEP_TASK,
    WEBHOOK_DELIVER_TASK,
    WEBHOOK_DISPATCH_TASK,
    WEBHOOKS_QUEUE,
    celery_app,
    publish,
)

log = logging.getLogger(__name__)


def make_client(settings: Settings) -> httpx.Client:
    """The SSRF-guarded client for webhooks: connect 5 s, each read/write 10 s, no redirects."""
    client = netguard.guarded_client(settings.outbound_allow_hosts, timeout=settings.webhook_timeout_seconds)
    client.timeout = httpx.Timeout(settings.webhook_timeout_seconds,
                                   connect=min(settings.webhook_connect_timeout_seconds,
                                               settings.webhook_timeout_seconds))
    return client


def dispatch(sessions: sessionmaker, settings: Settings, publish: Callable[[str], None]) -> int:
    with sessions.begin() as session:
        due = delivery.claim_due(session, settings.webhook_dispatch_lease_seconds, settings.sweep_batch)
    for delivery_id in due:
        publish(delivery_id)
    if due:
        log.info("webhooks: dispatched %d deliveries", len(due))
    return len(due)


def send(client: httpx.Client, prepared: delivery.Prepared, deadline_seconds: float) -> delivery.AttemptResult:
    """One POST; never raises. Reads at most 1 KiB of the answer."""
    started = time.monotonic()
    status, body, error, headers, blocked = None, None, None, {}, False
    try:
        with client.stream("POST", prepared.url, content=prepared.body.encode(), headers=prepared.headers) as resp:
            status, headers = resp.status_code, {k.lower(): v for k, v in resp.headers.items()}
            chunks, size = [], 0
            for chunk in resp.iter_raw():
                chunks.append(chunk)
                size += len(chunk)
                if size >= delivery.RESPONSE_CAPTURE_BYTES or time.monotonic() - started > deadline_seconds:
                    break
            body = b"".join(chunks)[:delivery.RESPONSE_CAPTURE_BYTES].decode("utf-8", errors="replace")
    except netguard.Blocked as exc:
        error, blocked = f"blocked: {exc.reason}", True
    except httpx.TimeoutException as exc:
        error = f"timeout ({exc.__class__.__name__})"
    except httpx.HTTPError as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:500]
    except Exception as exc:  # noqa: BLE001 - a receiver must never crash the worker
        log.exception("webhook attempt to %s crashed", prepared.url)
        error = f"internal error: {exc}"[:500]
    latency = int((time.monotonic() - started) * 1000)
    return delivery.AttemptResult(status, latency, body, error, headers, blocked)


def deliver(sessions: sessionmaker, settings: Settings, client: httpx.Client, delivery_id: str) -> str | None:
    """One attempt of one delivery; returns the delivery's new status (None: nothing to do)."""
    with sessions.begin() as session:
        prepared = delivery.prepare(session, delivery_id, settings)
        if isinstance(prepared, str):
            delivery.fail_unsendable(session, delivery_id, prepared)
            return outbox.FAILED
    if prepared is None:
        return None
    result = send(client, prepared, settings.webhook_timeout_seconds + settings.webhook_connect_timeout_seconds)
    with sessions.begin() as session:
        status = delivery.record_attempt(session, prepared, result, settings)
    log.info("webhook %s → %s: %s (%s ms) %s", delivery_id, prepared.url, result.status_code or result.error,
             result.latency_ms, status)
    return status


def sweep_batches(sessions: sessionmaker, settings: Settings) -> int:
    with sessions.begin() as session:
        closed = batches.close_finished(session, settings.sweep_batch)
    for batch_id, status in closed:
        log.info("batch %s %s", batch_id, status)
    return len(closed)


# --------------------------------------------------------------------------- Celery tasks
@functools.lru_cache(maxsize=1)
def _client() -> httpx.Client:
    return make_client(get_settings())


@worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    _client.cache_clear()


def _publish(delivery_id: str) -> None:
    publish(WEBHOOK_DELIVER_TASK, delivery_id, WEBHOOKS_QUEUE)


def sweep() -> dict[str, int]:
    """Run by the sweep task each beat: dispatch due deliveries, close finished batches. Each
    part logs its own failure and never raises (the job sweep must not depend on it)."""
    counts: dict[str, int] = {}
    for name, step in (("webhooks", lambda: dispatch(session_factory(), get_settings(), _publish)),
                       ("batches_closed", lambda: sweep_batches(session_factory(), get_settings()))):
        try:
            counts[name] = step()
        except Exception:  # noqa: BLE001
            log.exception("sweep step %s failed", name)
    return counts


@celery_app.task(name=WEBHOOK_DISPATCH_TASK)
def dispatch_task() -> int:
    return dispatch(session_factory(), get_settings(), _publish)


@celery_app.task(name=WEBHOOK_DELIVER_TASK)
def deliver_task(delivery_id: str) -> str | None:
    return deliver(session_factory(), get_settings(), _client(), delivery_id)


@celery_app.task(name=BATCH_SWEEP_TASK)
def sweep_batches_task() -> int:
    return sweep_batches(session_factory(), get_settings())
