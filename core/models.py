"""Tables. The job row is the truth about a job; the broker is only a doorbell.

A provider plug-in that keeps records of its own declares its tables on its own metadata
(``Plugin.metadata``: Bria's tailored generation, providers/bria/tailored/tables.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    UniqueConstraint,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from providers.plugin import UTCDateTime

from core.jobs.states import JobStatus
from core.secretbox import SealedText
from providers.plugin import NAMING_CONVENTION

def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return uuid.uuid4().hex



JSONType = JSON().with_variant(JSONB(), "postgresql")

# Conditions of the jobs table's partial indexes (migrations 0005 and 0007).
_HELD = text("status = 'QUEUED' AND held_at IS NOT NULL")
_UNRELEASED = text("status = 'QUEUED' AND held_at IS NOT NULL AND published_at IS NULL")
_DUE = text("status = 'QUEUED' AND held_at IS NULL")
_ACTIVE_SINGLE = text("status IN ('QUEUED', 'RUNNING', 'SUBMITTED') AND batch_id IS NULL")
_ACTIVE_BATCH_STARTED = text("status IN ('QUEUED', 'RUNNING', 'SUBMITTED') AND batch_id IS NOT NULL "
                             "AND started_at IS NOT NULL")


def _partial(name: str, *columns: str, where: Any) -> Index:
    return Index(name, *columns, postgresql_where=where, sqlite_where=where)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    plan: Mapped[str] = mapped_column(String(32), default="free")
    # Credits available now (grants - reservations + releases); kept in the same transaction as
    # every credit_ledger row, so the ledger always explains it.
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
    # Per-tenant overrides of the plan grid: {"rpm", "status_rpm", "concurrency", "unmetered"}.
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # The first characters of the key, to recognise it in listings; never enough to use it.
    prefix: Mapped[str] = mapped_column(String(16))
    # HMAC-SHA256(secret_key, key), hex. The key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # The sweeper's two questions: which active jobs are due, whose lease ran out.
        Index("ix_jobs_status_run_at", "status", "run_at"),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        Index("ix_jobs_expires_at", "expires_at"),
        # Concurrency: a tenant's / a provider's running jobs, a tenant's waiting line.
        Index("ix_jobs_tenant_status", "tenant_id", "status", "created_at"),
        Index("ix_jobs_provider_status", "provider", "status"),
        # Batches: a batch's jobs by state (progress, completion, cancel, results).
        Index("ix_jobs_batch_status", "batch_id", "status"),
        # The waiting line (released but unclaimed, the line, the never released) and the
        # sweeper's scans (due starts, overdue single and started batch jobs): each reads only
        # the rows it can act on, however many jobs a big batch leaves waiting.
        _partial("ix_jobs_held_published", "tenant_id", "published_at", where=_HELD),
        _partial("ix_jobs_held_line", "tenant_id", "created_at", where=_HELD),
        _partial("ix_jobs_held_unreleased", "tenant_id", "created_at", where=_UNRELEASED),
        _partial("ix_jobs_due_starts", "run_at", where=_DUE),
        _partial("ix_jobs_active_single_created", "created_at", where=_ACTIVE_SINGLE),
        _partial("ix_jobs_active_batch_started", "started_at", where=_ACTIVE_BATCH_STARTED),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    operation: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    # Credits reserved at submit (0 for unmetered tenants); captured or released at the end.
    credit_cost: Mapped[int] = mapped_column(Integer, default=0)
    # Set while the job waits for a free concurrency slot of its tenant (FIFO by created_at).
    held_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    sync: Mapped[bool] = mapped_column(Boolean, default=False)

    # Scheduling: QUEUED → may start from run_at; SUBMITTED → next poll at run_at.
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    poll_failures: Mapped[int] = mapped_column(Integer, default=0)
    # Start attempts that may have reached the upstream without our learning a task id (the
    # worker died between claiming and recording it, or the submit timed out): each one that
    # was followed by another submit is a possible duplicate upstream generation.
    uncertain_submits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress: Mapped[float | None] = mapped_column(nullable=True)

    # Upstream handles: [{"id", "status_url", "done", "outputs": [...], "meta": {...}}]
    upstream_tasks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    # Stored results: [{"key", "content_type", "size", "width", "height"}]
    outputs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    result_meta: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When the results (and the job's visibility) end; set when the job finishes, to its finish
    # time plus retention_seconds: the request's own (core/retention.py), null for the server's.
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retention_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set for jobs created by a batch (core/batches.py): the batch and the line's custom_id.
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    custom_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class CreditEntry(Base):
    """One movement of credits. ``grant`` adds, ``reserve`` takes (at submit), ``release`` gives a
    reservation back (ERROR, cancel), ``capture`` makes it final (COMPLETED; no balance change).
    A job has at most one row of each kind, so a retried step cannot count twice."""

    __tablename__ = "credit_ledger"
    __table_args__ = (UniqueConstraint("job_id", "kind"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# --------------------------------------------------------------------------- batches, webhooks
class Batch(Base):
    """A bulk upload: one job per valid line (jobs.batch_id). Lines refused by validation are
    kept in ``errors`` (``on_invalid=skip``)."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_tenant_created", "tenant_id", "created_at"),
                      Index("ix_batches_status", "status"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # validating | in_progress | cancelling | completed | cancelled | failed
    status: Mapped[str] = mapped_column(String(16))
    on_invalid: Mapped[str] = mapped_column(String(8), default="reject")
    total: Mapped[int] = mapped_column(Integer, default=0)  # lines that became jobs
    invalid: Mapped[int] = mapped_column(Integer, default=0)  # lines refused (skip mode)
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    credit_cost: Mapped[int] = mapped_column(BigInteger, default=0)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_events: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    base_url: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookSecret(Base):
    """A tenant's signing secret (``whsec_…``); the previous one stays valid until
    ``previous_until`` after a rotation, and both signatures are sent meanwhile. Both are stored
    encrypted (core/secretbox.py); the attributes hold the plaintext."""

    __tablename__ = "webhook_secrets"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(SealedText)
    previous_secret: Mapped[str | None] = mapped_column(SealedText, nullable=True)
    previous_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookEndpoint(Base):
    """A tenant's default endpoint: receives the events it subscribes to for all its jobs."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSONType)
    description: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    base_url: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobWebhook(Base):
    """A job's own ``webhook_url`` (given with the request, or by its batch)."""

    __tablename__ = "job_webhooks"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # no FK: jobs are never deleted
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSONType)
    base_url: Mapped[str] = mapped_column(Text, default="")


class WebhookEvent(Base):
    """Something that happened, once; its id is the ``webhook-id`` of every delivery of it."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event to one URL. ``next_attempt_at`` is the schedule (the sweeper dispatches due
    rows); ``round_attempts`` counts attempts since the last (re)delivery request."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    endpoint_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    url: Mapped[str] = mapped_column(Text)
    base_url: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    round_attempts: Mapped[int] = mapped_column(Integer, default=0)
    trigger: Mapped[str] = mapped_column(String(16), default="event")  # event | manual (redelivery)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: the audit log."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    trigger: Mapped[str] = mapped_column(String(16), default="initial")  # initial | retry | manual
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)  # first 1 KiB
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    signatures: Mapped[int] = mapped_column(Integer, default=1)


# --------------------------------------------------------------------------- idempotency keys
class IdempotencyKey(Base):
    """An ``Idempotency-Key`` a tenant sent with a create (core/idempotency.py): claimed
    (``in_progress``, held by ``token`` until ``locked_until``) before the job or batch is made,
    then ``done`` with the answer to replay. Deleted by the sweeper after ``expires_at``."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 (hex) of the endpoint and the canonical request body
    fingerprint: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(200))  # "POST /api/v1/…", for the reuse message
    state: Mapped[str] = mapped_column(String(16))  # in_progress | done
    token: Mapped[str] = mapped_column(String(32))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)  # the JSON answer, as sent
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONType, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the job's or batch's id
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
