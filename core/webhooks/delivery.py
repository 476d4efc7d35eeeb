"""Sending deliveries: claiming the due ones, building each signed request, recording every
attempt (the log) and moving the delivery on by the retry policy; reading the log and
re-arming deliveries (redelivery)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.orm import Session

from core.batches import batch_document
from core.jobs.states import is_expired
from core.models import Batch, Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent, utcnow
from core.results import iso, status_document
from core.settings import Settings
from core.webhooks.outbox import FAILED, PENDING, SUCCEEDED
from core.webhooks.retry import classify, next_delay, schedule
from core.webhooks.schemas import JOB_PROGRESS
from core.webhooks.signing import signed_headers
from core.webhooks.tenant_secrets import active_secrets, tenant_secret

RESPONSE_CAPTURE_BYTES = 1024  # of a receiver's answer, kept in the attempt log


def claim_due(session: Session, lease_seconds: float, limit: int) -> list[str]:
    """Due deliveries, stamped ``next_attempt_at = now + lease`` so the next sweep does not send
    them again (if the task is lost, they become due again when the lease runs out)."""
    now = utcnow()
    cond = and_(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
    ids = select(WebhookDelivery.id).where(cond).order_by(WebhookDelivery.next_attempt_at).limit(limit)
    if session.bind.dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    rows = session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id.in_(ids.scalar_subquery()), cond)
        .values(next_attempt_at=now + dt.timedelta(seconds=lease_seconds))
        .returning(WebhookDelivery.id).execution_options(synchronize_session=False)).all()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class Prepared:
    """Everything one attempt needs, read in one short transaction."""

    delivery_id: str
    url: str
    body: str
    headers: dict[str, str]
    signatures: int
    trigger: str


def prepare(session: Session, delivery_id: str, settings: Settings,
            now: dt.datetime | None = None) -> Prepared | str | None:
    """Build the signed request for a pending delivery. None: nothing to do (not pending);
    a string: the delivery cannot be sent and why (it is then marked failed by the caller)."""
    now = now or utcnow()
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.status != PENDING:
        return None
    if delivery.endpoint_id is not None:
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None:
            return "the endpoint was deleted"
        if not endpoint.enabled:
            return f"the endpoint is disabled ({endpoint.disabled_reason or 'by its owner'})"
    event = session.get(WebhookEvent, delivery.event_id)
    base = settings.public_base_url.rstrip("/") or delivery.base_url
    payload: dict[str, Any] = {"type": event.type, "timestamp": iso(event.created_at)}
    if event.job_id is not None:
        job = session.get(Job, event.job_id)
        if job is None or is_expired(job, now):
            return "the job has expired; its results are gone"
        payload["data"] = status_document(job, settings, base)
        if event.type == JOB_PROGRESS:  # where the job is (0–1), beside its status document
            payload["progress"] = job.progress
        if job.batch_id is not None:
            payload["batch_id"] = job.batch_id
            payload["custom_id"] = job.custom_id
    else:
        batch = session.get(Batch, event.batch_id)
        if batch is None:
            return "the batch no longer exists"
        payload["data"] = batch_document(session, batch)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    keys = active_secrets(tenant_secret(session, delivery.tenant_id), now)
    headers = signed_headers(keys, event.id, int(now.timestamp()), body)
    trigger = "manual" if delivery.trigger == "manual" and delivery.round_attempts == 0 else (
        "initial" if delivery.attempts == 0 else "retry")
    return Prepared(delivery.id, delivery.url, body, headers, len(keys), trigger)


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    response_body: str | None
    error: str | None
    headers: dict[str, str]
    blocked: bool = False


def record_attempt(session: Session, prepared: Prepared, result: AttemptResult,
                   settings: Settings) -> str:
    """Log the attempt and move the delivery on. Returns the delivery's new status."""
    now = utcnow()
    session.execute(insert(WebhookAttempt).values(
        delivery_id=prepared.delivery_id, attempted_at=now, trigger=prepared.trigger,
        status_code=result.status_code, latency_ms=result.latency_ms,
        response_body=result.response_body, error=result.error, signatures=prepared.signatures))
    delivery = session.get(WebhookDelivery, prepared.delivery_id, with_for_update=True)
    delivery.attempts += 1
    delivery.round_attempts += 1
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    delivery.updated_at = now
    if delivery.status != PENDING:  # someone finished it meanwhile (a duplicate task)
        return delivery.status
    outcome = classify(result.status_code, result.headers)
    if result.blocked:
        _finish(delivery, FAILED, now, result.error)
    elif outcome.kind == "success":
        _finish(delivery, SUCCEEDED, now, None)
    elif outcome.kind == "gone":
        reason = f"the endpoint answered 410 Gone at {iso(now)}"
        _finish(delivery, FAILED, now, reason + "; it is disabled")
        disable_destination(session, delivery, reason)
    else:
        delay = next_delay(schedule(settings), delivery.round_attempts, retry_after=outcome.retry_after,
                           max_retry_after=settings.webhook_max_retry_after_seconds)
        if delay is None:
            _finish(delivery, FAILED, now, (result.error or f"HTTP {result.status_code}")
                    + f" (gave up after {delivery.round_attempts} attempts)")
        else:
            delivery.next_attempt_at = now + dt.timedelta(seconds=delay)
    return delivery.status


def _finish(delivery: WebhookDelivery, status: str, now: dt.datetime, error: str | None) -> None:
    delivery.status = status
    delivery.next_attempt_at = None
    delivery.finished_at = now
    if error is not None:
        delivery.last_error = error


def fail_unsendable(session: Session, delivery_id: str, reason: str) -> None:
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is not None and delivery.status == PENDING:
        _finish(delivery, FAILED, utcnow(), reason)


def disable_destination(session: Session, delivery: WebhookDelivery, reason: str) -> None:
    """410 Gone: a tenant endpoint is disabled; for a job's own URL, the tenant's other pending
    deliveries to that exact URL stop. Either way pending deliveries there end as failed."""
    now = utcnow()
    if delivery.endpoint_id is not None:
        session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == delivery.endpoint_id)
                        .values(enabled=False, disabled_reason=reason, updated_at=now))
        cond = WebhookDelivery.endpoint_id == delivery.endpoint_id
    else:
        cond = and_(WebhookDelivery.tenant_id == delivery.tenant_id, WebhookDelivery.url == delivery.url,
                    WebhookDelivery.endpoint_id.is_(None))
    session.execute(update(WebhookDelivery).where(cond, WebhookDelivery.status == PENDING,
                                                  WebhookDelivery.id != delivery.id)
                    .values(status=FAILED, next_attempt_at=None, finished_at=now, updated_at=now,
                            last_error=reason + "; delivery stopped")
                    .execution_options(synchronize_session=False))


# --------------------------------------------------------------------------- reading, redelivery
def _delivery_filter(tenant_id: str, job_id: str | None, batch_id: str | None) -> Any:
    cond = WebhookDelivery.tenant_id == tenant_id
    if job_id is not None:
        cond = and_(cond, WebhookDelivery.job_id == job_id)
    if batch_id is not None:
        cond = and_(cond, WebhookDelivery.batch_id == batch_id, WebhookDelivery.job_id.is_(None))
    return cond


def list_deliveries(session: Session, tenant_id: str, *, job_id: str | None = None,
                    batch_id: str | None = None) -> list[dict[str, Any]]:
    rows = session.execute(
        select(WebhookDelivery, WebhookEvent.type).join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(_delivery_filter(tenant_id, job_id, batch_id))
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)).all()
    attempts: dict[str, list[dict[str, Any]]] = {}
    if rows:
        for a in session.scalars(select(WebhookAttempt).where(
                WebhookAttempt.delivery_id.in_([d.id for d, _t in rows])).order_by(WebhookAttempt.id)):
            attempts.setdefault(a.delivery_id, []).append({
                "attempted_at": iso(a.attempted_at), "trigger": a.trigger, "status_code": a.status_code,
                "latency_ms": a.latency_ms, "response_body": a.response_body, "error": a.error,
                "signatures": a.signatures})
    return [{
        "id": d.id, "event_id": d.event_id, "event_type": event_type, "url": d.url,
        "endpoint_id": d.endpoint_id, "status": d.status, "attempt_count": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at) if d.status == PENDING else None,
        "last_status_code": d.last_status_code, "last_error": d.last_error,
        "created_at": iso(d.created_at), "finished_at": iso(d.finished_at),
        "attempts": attempts.get(d.id, []),
    } for d, event_type in rows]


def redeliver(session: Session, tenant_id: str, *, job_id: str | None = None, batch_id: str | None = None,
              delivery_id: str | None = None) -> list[str]:
    """Send deliveries again (all of a job's or batch's, or one): each starts a new round of
    the schedule now, with the same ``webhook-id``. Returns the ids re-armed."""
    cond = _delivery_filter(tenant_id, job_id, batch_id)
    if delivery_id is not None:
        cond = and_(cond, WebhookDelivery.id == delivery_id)
    now = utcnow()
    rows = session.execute(
        update(WebhookDelivery).where(cond)
        .values(status=PENDING, round_attempts=0, trigger="manual", next_attempt_at=now,
                finished_at=None, updated_at=now)
        .returning(WebhookDelivery.id).execution_options(synchronize_session=False)).all()
    return [r[0] for r in rows]
