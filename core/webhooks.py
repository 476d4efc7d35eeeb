"""Webhooks: events, signing (Standard Webhooks), the retry schedule and the delivery log.

* An **event** (``webhook_events``) is something that happened once: ``job.started``,
  ``job.completed``, ``job.failed``, ``batch.completed``, ``batch.cancelled``. Its id
  (``msg_…``) is the ``webhook-id`` header of every attempt, so receivers can de-duplicate.
* A **delivery** (``webhook_deliveries``) is one event to one URL: the job's own
  ``webhook_url``, the batch's, or one of the tenant's default endpoints. Deliveries are
  created in the transaction that moves the job (or batch) to the new state, so an event is
  never lost when a job finishes. ``next_attempt_at`` is the schedule: the sweeper dispatches
  due deliveries to a short Celery task that makes one HTTP attempt (workers/webhooks.py).
* Every HTTP **attempt** is logged (``webhook_attempts``): time, status, latency, the first
  1 KiB of the response, the error.

Payload: ``{"type", "timestamp", "data"}`` where ``data`` is the job's status document (what
``GET /api/v1/bria/status/{id}`` answers, result URLs signed at send time) or, for batch events,
the batch document. Signature per Standard Webhooks v1: ``webhook-signature: v1,<base64
HMAC-SHA256(secret, "{webhook-id}.{webhook-timestamp}.{body}")>``; during a secret rotation's
grace period the header carries both signatures, space-separated.

This module knows neither HTTP frameworks nor Celery; the functions take a sync ``Session``
(the API calls them through ``AsyncSession.run_sync``).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import random
import re
import secrets as _secrets
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlalchemy import String, and_, bindparam, cast, insert, null, select, union_all, update
from sqlalchemy.orm import Session

from core import netguard
from core.models import (
    Batch,
    Job,
    JobStatus,
    JobWebhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSecret,
    new_id,
    utcnow,
)
from core.results import iso, status_document
from core.settings import Settings, get_settings

# --------------------------------------------------------------------------- event types
JOB_STARTED = "job.started"  # the job was submitted upstream
JOB_COMPLETED = "job.completed"  # COMPLETED: data.result has the (freshly signed) URLs
JOB_FAILED = "job.failed"  # ERROR or CANCELLED: data.error has code and message
BATCH_COMPLETED = "batch.completed"  # every job of the batch finished
BATCH_CANCELLED = "batch.cancelled"  # the batch was cancelled and its last running job finished

JOB_EVENTS = (JOB_STARTED, JOB_COMPLETED, JOB_FAILED)
BATCH_EVENTS = (BATCH_COMPLETED, BATCH_CANCELLED)
ALL_EVENTS = JOB_EVENTS + BATCH_EVENTS
# A job's webhook_url gets the final event unless webhook_events says otherwise.
DEFAULT_JOB_EVENTS = (JOB_COMPLETED, JOB_FAILED)
# A tenant endpoint gets every final event unless its ``events`` says otherwise.
DEFAULT_ENDPOINT_EVENTS = (JOB_COMPLETED, JOB_FAILED, BATCH_COMPLETED, BATCH_CANCELLED)
SHORT_NAMES = {"started": JOB_STARTED, "completed": JOB_COMPLETED, "failed": JOB_FAILED}

SECRET_PREFIX = "whsec_"
RESPONSE_CAPTURE_BYTES = 1024
MAX_URL_LENGTH = 2048

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


def normalize_events(values: Iterable[str], allowed: Sequence[str] = JOB_EVENTS) -> list[str]:
    """``["started", "job.completed"]`` → ``["job.started", "job.completed"]``; ValueError for
    names outside ``allowed``."""
    out: list[str] = []
    for value in values:
        name = SHORT_NAMES.get(value, value) if isinstance(value, str) else value
        if name not in allowed:
            choices = ", ".join([*(k for k, v in SHORT_NAMES.items() if v in allowed), *allowed])
            raise ValueError(f"unknown event {value!r}; choose from {choices}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("at least one event is needed")
    return out


def _check_webhook_url(value: str, info: ValidationInfo) -> str:
    context = info.context or {}
    allow = context["allow_hosts"] if "allow_hosts" in context else get_settings().outbound_allow_hosts
    try:
        netguard.check_url(value, allow)
    except netguard.Blocked as exc:
        raise ValueError(f"webhook_url is not allowed: {exc.reason}") from None
    return value


class JobOptions(BaseModel):
    """Fields any job endpoint accepts beside the operation's own (read from the same body)."""

    model_config = ConfigDict(extra="ignore")

    webhook_url: str | None = Field(None, min_length=1, max_length=MAX_URL_LENGTH,
                                    description="URL that receives signed job events")
    webhook_events: list[str] | None = Field(
        None, description="job.started, job.completed, job.failed (or started, completed, failed); "
                          "default: the final event (job.completed or job.failed)")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _check_webhook_url(value, info)

    @field_validator("webhook_events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalize_events(value, JOB_EVENTS)

    @model_validator(mode="after")
    def _events_need_url(self) -> "JobOptions":
        if self.webhook_events is not None and self.webhook_url is None:
            raise ValueError("webhook_events needs webhook_url")
        return self

    def events(self) -> list[str]:
        return list(self.webhook_events or DEFAULT_JOB_EVENTS)


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    events: list[str] | None = Field(None, description="default: every final event")
    description: str = Field("", max_length=200)
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        return _check_webhook_url(value, info)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalize_events(value, ALL_EVENTS)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=1, max_length=MAX_URL_LENGTH)
    events: list[str] | None = None
    description: str | None = Field(None, max_length=200)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _check_webhook_url(value, info)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalize_events(value, ALL_EVENTS)


# --------------------------------------------------------------------------- signing
def generate_secret(nbytes: int = 32) -> str:
    """``whsec_`` + base64 of ``nbytes`` (≥ 24) random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(max(24, nbytes))).decode()


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """One Standard Webhooks v1 signature: ``v1,<base64 HMAC-SHA256>``."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
        "user-agent": "visiongate-webhooks/1",
    }


def _insert_ignore(session: Session, table: Any, values: dict[str, Any]) -> None:
    dialect = session.bind.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    session.execute(dialect_insert(table).values(**values).on_conflict_do_nothing())


def tenant_secret(session: Session, tenant_id: str) -> WebhookSecret:
    """The tenant's signing secret, made on first use. The row's ``secret`` and
    ``previous_secret`` are plaintext; the database holds them encrypted (core/secretbox.py)."""
    row = session.get(WebhookSecret, tenant_id)
    if row is None:
        _insert_ignore(session, WebhookSecret, {"tenant_id": tenant_id, "secret": generate_secret(),
                                                "created_at": utcnow()})
        row = session.get(WebhookSecret, tenant_id)
    return row


def rotate_secret(session: Session, tenant_id: str, grace_seconds: float) -> WebhookSecret:
    """A new secret; the old one keeps signing (second signature) for ``grace_seconds``."""
    row = tenant_secret(session, tenant_id)
    now = utcnow()
    row.previous_secret = row.secret if grace_seconds > 0 else None
    row.previous_until = now + dt.timedelta(seconds=grace_seconds) if grace_seconds > 0 else None
    row.secret = generate_secret()
    row.rotated_at = now
    session.flush()
    return row


def active_secrets(row: WebhookSecret, now: dt.datetime | None = None) -> list[str]:
    out = [row.secret]
    if row.previous_secret and row.previous_until and row.previous_until > (now or utcnow()):
        out.append(row.previous_secret)
    return out


def secret_document(row: WebhookSecret) -> dict[str, Any]:
    now = utcnow()
    in_grace = bool(row.previous_secret and row.previous_until and row.previous_until > now)
    return {"secret": row.secret, "created_at": iso(row.created_at), "rotated_at": iso(row.rotated_at),
            "previous_secret_valid_until": iso(row.previous_until) if in_grace else None}


# --------------------------------------------------------------------------- schedule
def schedule(settings: Settings) -> list[float]:
    return [max(0.0, float(d)) for d in settings.webhook_retry_schedule] or [0.0]


def next_delay(plan: Sequence[float], attempts_done: int, *, retry_after: float | None = None,
               max_retry_after: float = 36000.0, jitter: float = 0.1,
               rng: random.Random | None = None) -> float | None:
    """Seconds from now to the next attempt after ``attempts_done`` attempts of this round, or
    None when the schedule is spent. ``plan[i]`` is the delay before attempt ``i + 1``; each
    gets up to ``jitter`` (10 %) extra. A receiver's Retry-After can only postpone (capped)."""
    if attempts_done >= len(plan):
        return None
    delay = plan[attempts_done] * (1 + (rng or random).uniform(0, jitter))
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return delay


_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Retry-After as seconds (``"120"`` or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    # Only ASCII numbers count: str.isdigit() and float() also accept "²", "٣" or "nan".
    if _SECONDS.fullmatch(value):
        return max(0.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or utcnow())).total_seconds())


@dataclass(frozen=True)
class Outcome:
    kind: str  # "success" | "retry" | "gone"
    retry_after: float | None = None


def classify(status_code: int | None, headers: Mapping[str, str] | None = None) -> Outcome:
    """What an attempt's answer means. 2xx: delivered. 410: the endpoint is gone (disable it).
    429/503 (and 502/504): throttled, honour Retry-After. Anything else, including 3xx and no
    answer at all: retry on the schedule."""
    if status_code is not None and 200 <= status_code < 300:
        return Outcome("success")
    if status_code == 410:
        return Outcome("gone")
    if status_code in (429, 502, 503, 504):
        return Outcome("retry", parse_retry_after((headers or {}).get("retry-after")))
    return Outcome("retry")


# --------------------------------------------------------------------------- creating events
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


# --------------------------------------------------------------------------- dispatching
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


def batch_payload_data(session: Session, batch: Batch) -> dict[str, Any]:
    from core.batches import batch_document

    return batch_document(session, batch)


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
        if job is None or job.status == JobStatus.EXPIRED.value:
            return "the job has expired; its results are gone"
        payload["data"] = status_document(job, settings, base)
        if job.batch_id is not None:
            payload["batch_id"] = job.batch_id
            payload["custom_id"] = job.custom_id
    else:
        batch = session.get(Batch, event.batch_id)
        if batch is None:
            return "the batch no longer exists"
        payload["data"] = batch_payload_data(session, batch)
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


# --------------------------------------------------------------------------- endpoints
def endpoint_document(ep: WebhookEndpoint) -> dict[str, Any]:
    return {"id": ep.id, "url": ep.url, "events": list(ep.events or []), "description": ep.description,
            "enabled": ep.enabled, "disabled_reason": ep.disabled_reason,
            "created_at": iso(ep.created_at), "updated_at": iso(ep.updated_at)}


def create_endpoint(session: Session, tenant_id: str, data: EndpointIn, base_url: str) -> WebhookEndpoint:
    now = utcnow()
    ep = WebhookEndpoint(id=new_id(), tenant_id=tenant_id, url=data.url,
                         events=list(data.events or DEFAULT_ENDPOINT_EVENTS), description=data.description,
                         enabled=data.enabled, base_url=base_url, created_at=now, updated_at=now)
    session.add(ep)
    session.flush()
    tenant_secret(session, tenant_id)
    return ep


def list_endpoints(session: Session, tenant_id: str) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
                                .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)))


def get_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    ep = session.get(WebhookEndpoint, endpoint_id) if len(endpoint_id) <= 32 else None
    return ep if ep is not None and ep.tenant_id == tenant_id else None


def update_endpoint(session: Session, ep: WebhookEndpoint, patch: EndpointPatch, base_url: str) -> WebhookEndpoint:
    values = patch.model_dump(exclude_unset=True)
    for name in ("url", "events", "description", "enabled"):
        if values.get(name) is not None:
            setattr(ep, name, values[name])
    if values.get("enabled"):
        ep.disabled_reason = None
    if "url" in values:
        ep.base_url = base_url
    ep.updated_at = utcnow()
    session.flush()
    return ep


def delete_endpoint(session: Session, ep: WebhookEndpoint) -> None:
    now = utcnow()
    session.execute(update(WebhookDelivery).where(WebhookDelivery.endpoint_id == ep.id,
                                                  WebhookDelivery.status == PENDING)
                    .values(status=FAILED, next_attempt_at=None, finished_at=now, updated_at=now,
                            last_error="the endpoint was deleted")
                    .execution_options(synchronize_session=False))
    session.delete(ep)


def subscribe_job(session: Session, job_id: str, options: JobOptions, base_url: str) -> None:
    """Keep a job's own webhook_url (same transaction as the job)."""
    if options.webhook_url:
        session.add(JobWebhook(job_id=job_id, url=options.webhook_url, events=options.events(),
                               base_url=base_url))
