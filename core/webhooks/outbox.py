"""The outbox: events and their deliveries, written in the caller's transaction (the one that
moved the job or batch), so an event is never lost; the sweeper sends what is due."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Sequence

from sqlalchemy import String, bindparam, cast, func, insert, null, select, union_all
from sqlalchemy.orm import Session

from core.models import Batch, Job, JobWebhook, WebhookDelivery, WebhookEndpoint, WebhookEvent, new_id, utcnow
from core.settings import get_settings
from core.webhooks.retry import schedule
from core.webhooks.schemas import JOB_COMPLETED, JOB_PROGRESS, JOB_STARTED, PROGRESS_GAP_SECONDS, JobOptions

# A delivery's states: due attempts are made while it is pending.
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


def _new_event_id() -> str:
    return "msg_" + uuid.uuid4().hex


def _first_attempt_at(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=schedule(get_settings())[0])


def _job_targets(session: Session, tenant_id: str, job_ids: Sequence[str],
                 event_type: str) -> dict[str, list[tuple[str, str, str | None]]]:
    """job id → [(url, base_url, endpoint id)] that subscribe to ``event_type``."""
    targets: dict[str, list[tuple[str, str, str | None]]] = {}
    for i in range(0, len(job_ids), 1000):
        chunk = job_ids[i:i + 1000]
        for job_id, url, events, base in session.execute(
                select(JobWebhook.job_id, JobWebhook.url, JobWebhook.events, JobWebhook.base_url)
                .where(JobWebhook.job_id.in_(chunk))):
            if event_type in (events or ()):
                targets.setdefault(job_id, []).append((url, base or "", None))
    endpoints = [(ep_id, url, base) for ep_id, url, events, base in session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.events, WebhookEndpoint.base_url)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled.is_(True)))
        if event_type in (events or ())]
    if endpoints:
        for job_id in job_ids:
            have = {t[0] for t in targets.get(job_id, ())}
            for ep_id, url, base in endpoints:
                if url not in have:
                    targets.setdefault(job_id, []).append((url, base or "", ep_id))
    return targets


def _write(session: Session, tenant_id: str, event_type: str, now: dt.datetime,
           items: list[tuple[str | None, str | None, list[tuple[str, str, str | None]]]],
           chunk: int = 1000) -> int:
    """Insert one event per item (job id, batch id, targets) and one delivery per target."""
    events, deliveries = [], []
    first = _first_attempt_at(now)
    for job_id, batch_id, targets in items:
        if not targets:
            continue
        event_id = _new_event_id()
        events.append({"id": event_id, "tenant_id": tenant_id, "type": event_type, "job_id": job_id,
                       "batch_id": batch_id, "created_at": now})
        for url, base, endpoint_id in targets:
            deliveries.append({"id": new_id(), "event_id": event_id, "tenant_id": tenant_id,
                               "job_id": job_id, "batch_id": batch_id, "endpoint_id": endpoint_id,
                               "url": url, "base_url": base, "status": PENDING, "attempts": 0,
                               "round_attempts": 0, "trigger": "event", "next_attempt_at": first,
                               "created_at": now, "updated_at": now})
    for i in range(0, len(events), chunk):
        session.execute(insert(WebhookEvent), events[i:i + chunk])
    for i in range(0, len(deliveries), chunk):
        session.execute(insert(WebhookDelivery), deliveries[i:i + chunk])
    return len(deliveries)


def _subscriptions_statement() -> Any:
    jw, we = JobWebhook.__table__, WebhookEndpoint.__table__
    own = select(jw.c.url, jw.c.events, jw.c.base_url, cast(null(), String(32)).label("endpoint_id")) \
        .where(jw.c.job_id == bindparam("s_job"))
    endpoints = select(we.c.url, we.c.events, we.c.base_url, we.c.id) \
        .where(we.c.tenant_id == bindparam("s_tenant"), we.c.enabled.is_(True))
    return union_all(own, endpoints)


_SUBSCRIPTIONS = _subscriptions_statement()  # built once: it runs in every job's start and finish


def _subscriptions(session: Session, job_id: str, tenant_id: str) -> list[tuple[str, list[str], str, str | None]]:
    """(url, events, base_url, endpoint id) of the job's own webhook and the tenant's enabled
    endpoints, in one round trip (this runs in every job's start and finish transaction)."""
    return [tuple(r) for r in session.execute(_SUBSCRIPTIONS, {"s_job": job_id, "s_tenant": tenant_id}).all()]


def _pick(subs: list[tuple[str, list[str], str, str | None]], event_type: str) -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for url, events, base, endpoint_id in subs:
        if event_type in (events or ()) and url not in {t[0] for t in out}:
            out.append((url, base or "", endpoint_id))
    return out


def job_event(session: Session, job_id: str, event_type: str, tenant_id: str | None = None) -> int:
    """Record ``event_type`` for a job in the caller's transaction (the one that moved it).
    A job that finishes without ever having been SUBMITTED (outputs came inline) also gets its
    ``job.started`` first. Returns the number of deliveries created (usually one query when
    nobody subscribes)."""
    if tenant_id is None:
        tenant_id = session.scalar(select(Job.tenant_id).where(Job.id == job_id))
        if tenant_id is None:
            return 0
    subs = _subscriptions(session, job_id, tenant_id)
    if not subs:
        return 0
    created = 0
    now = utcnow()
    if event_type == JOB_COMPLETED and _pick(subs, JOB_STARTED) and session.scalar(
            select(Job.submitted_at).where(Job.id == job_id)) is None:
        created += _write(session, tenant_id, JOB_STARTED, now, [(job_id, None, _pick(subs, JOB_STARTED))])
        now = now + dt.timedelta(microseconds=1)
    created += _write(session, tenant_id, event_type, now, [(job_id, None, _pick(subs, event_type))])
    return created


def progress_event(session: Session, job_id: str, tenant_id: str) -> int:
    """``job.progress`` for a job whose upstream reported progress, to whoever subscribed to
    it, at most once per ``PROGRESS_GAP_SECONDS`` per job."""
    targets = _pick(_subscriptions(session, job_id, tenant_id), JOB_PROGRESS)
    if not targets:
        return 0
    now = utcnow()
    last = session.scalar(select(func.max(WebhookEvent.created_at)).where(
        WebhookEvent.job_id == job_id, WebhookEvent.type == JOB_PROGRESS))
    if last is not None and (now - last).total_seconds() < PROGRESS_GAP_SECONDS:
        return 0
    return _write(session, tenant_id, JOB_PROGRESS, now, [(job_id, None, targets)])


def jobs_event(session: Session, tenant_id: str, job_ids: Sequence[str], event_type: str) -> int:
    """``job_event`` for many jobs of one tenant at once (a batch cancel)."""
    if not job_ids:
        return 0
    targets = _job_targets(session, tenant_id, list(job_ids), event_type)
    return _write(session, tenant_id, event_type, utcnow(),
                  [(job_id, None, targets[job_id]) for job_id in job_ids if job_id in targets])


def batch_event(session: Session, batch: Batch, event_type: str) -> int:
    """A batch's final event to its own webhook_url and the tenant's subscribed endpoints."""
    targets: list[tuple[str, str, str | None]] = []
    if batch.webhook_url:
        targets.append((batch.webhook_url, batch.base_url or "", None))
    for ep_id, url, events, base in session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.events, WebhookEndpoint.base_url)
            .where(WebhookEndpoint.tenant_id == batch.tenant_id, WebhookEndpoint.enabled.is_(True))):
        if event_type in (events or ()) and url not in {t[0] for t in targets}:
            targets.append((url, base or "", ep_id))
    return _write(session, batch.tenant_id, event_type, utcnow(), [(None, batch.id, targets)])


def subscribe_job(session: Session, job_id: str, options: JobOptions, base_url: str) -> None:
    """Keep a job's own webhook_url (same transaction as the job)."""
    if options.webhook_url:
        session.add(JobWebhook(job_id=job_id, url=options.webhook_url, events=options.events(),
                               base_url=base_url))
