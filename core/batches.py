"""Batches: many job requests in one upload, each line a job of its own.

A line is ``{"custom_id": "...", "endpoint": "/api/v1/bria/image/generation/generate-image",
"body": {...}}`` (``"method": "POST"`` optional). Every line is validated up front with the
endpoint's own request model, exactly as the single endpoint would. By default one bad line
refuses the whole batch (the API answers 422 listing every bad line); with ``on_invalid=skip``
the good lines run and the bad ones are kept in the batch record.

Creating a batch is one transaction: the credits of all its jobs are reserved in one step
(``credits.reserve_many``), the jobs are inserted in bulk, already *held* (QUEUED with
``held_at`` set and unpublished), so the sweeper's ``core.jobs.claims.release_held`` starts them oldest
first as the tenant's concurrency allows: nothing is published at intake, however large the
batch. The sweeper also notices when a batch has no unfinished job left (``close_finished``)
and sends its final webhook event.

Cancelling moves the jobs that have not started (QUEUED) to CANCELLED and releases their
credits in the same transaction; jobs already upstream run to completion, and every finished
job's result stays available in ``GET /api/v1/batches/{id}/results``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterable, Iterator, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy import and_, exists, func, insert, or_, select
from sqlalchemy.orm import Session

from core import credits
from core.jobs.cancel import cancel_unstarted
from core.retention import RetentionField
from core.webhooks import outbox, schemas
from core.jobs.states import ACTIVE, FINISHED_OR_EXPIRED, JobStatus, values
from core.models import Batch, Job, JobWebhook, new_id, utcnow
from core.results import error_body, iso, result_body
from core.media_inputs import prepare_request
from core.settings import Settings
from providers.base import Kind, Operation

S = JobStatus
VALIDATING, IN_PROGRESS, CANCELLING = "validating", "in_progress", "cancelling"
COMPLETED, CANCELLED, FAILED = "completed", "cancelled", "failed"
STATUSES = (VALIDATING, IN_PROGRESS, CANCELLING, COMPLETED, CANCELLED, FAILED)
OPEN = (IN_PROGRESS, CANCELLING)
MAX_CUSTOM_ID = 200
ERRORS_SHOWN = 100  # invalid lines shown in the batch document (all: GET …/errors)



def job_endpoints(operations: Mapping[str, Operation]) -> dict[str, Operation]:
    """The endpoints a line may name: every JOB operation (POST) of ``operations`` (the
    providers' operation table, by name), by its public path."""
    return {op.path: op for op in operations.values() if op.kind is Kind.JOB and op.method.upper() == "POST"}


class TooManyLines(ValueError):
    pass


class BatchOptions(BaseModel):
    """Batch-level options (JSON body fields, form fields or query parameters)."""

    model_config = ConfigDict(extra="ignore")

    on_invalid: Literal["reject", "skip"] = "reject"
    webhook_url: str | None = Field(None, min_length=1, max_length=schemas.MAX_URL_LENGTH)
    # Per-job events to send to webhook_url besides the batch's final event.
    webhook_events: list[str] | None = None
    retention_seconds: RetentionField = None  # every job's (core/retention.py)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else schemas.check_webhook_url(value, info)

    @field_validator("webhook_events", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("webhook_events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [e for e in schemas.normalize_events(value, schemas.ALL_EVENTS) if e in schemas.JOB_EVENTS]


# --------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class Line:
    line: int
    custom_id: str
    op: Operation
    params: dict[str, Any]


@dataclass
class Parsed:
    lines: list[Line] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _err(loc: list[Any], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


def _invalid(line: int, custom_id: Any, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"line": line, "custom_id": custom_id if isinstance(custom_id, str) else None, "errors": errors}


def validate_item(line: int, item: Any, seen: set[str], operations: Mapping[str, Operation],
                  endpoints: Mapping[str, Operation] | None = None) -> Line | dict[str, Any]:
    """One request line → a ``Line`` or an error report ``{"line", "custom_id", "errors"}``.
    ``operations``: the operation table by name; ``endpoints``: ``job_endpoints(operations)``
    (computed here when not given)."""
    if endpoints is None:
        endpoints = job_endpoints(operations)
    if not isinstance(item, dict):
        return _invalid(line, None, [_err([], "each line must be a JSON object", "object_type")])
    errors: list[dict[str, Any]] = []
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id.strip():
        errors.append(_err(["custom_id"], "custom_id is required (a non-empty string)", "missing"
                           if custom_id is None else "string_type"))
    elif len(custom_id) > MAX_CUSTOM_ID:
        errors.append(_err(["custom_id"], f"custom_id is longer than {MAX_CUSTOM_ID} characters",
                           "string_too_long"))
    elif custom_id in seen:
        errors.append(_err(["custom_id"], f"custom_id {custom_id!r} is used by an earlier line; "
                                          "custom_id must be unique within a batch", "duplicate"))
    method = item.get("method", "POST")
    if not isinstance(method, str) or method.upper() != "POST":
        errors.append(_err(["method"], "only POST is supported", "literal_error"))
    endpoint = item.get("endpoint", item.get("url"))
    op = endpoints.get(endpoint) if isinstance(endpoint, str) else None
    if op is None:
        errors.append(_err(["endpoint"], "endpoint is required (the path of a job endpoint, e.g. "
                           f"{next(iter(endpoints), '')})" if endpoint is None else
                           f"unknown endpoint {str(endpoint)[:200]!r}: not a POST job endpoint of this gateway",
                           "missing" if endpoint is None else "enum"))
    body = item.get("body")
    params: dict[str, Any] | None = None
    if not isinstance(body, dict):
        errors.append(_err(["body"], "body must be a JSON object (the endpoint's request)",
                           "missing" if body is None else "dict_type"))
    elif op is not None:
        try:
            params = op.request_model.model_validate(body).model_dump(mode="json")
        except ValidationError as exc:
            errors += [_err(["body", *e["loc"]], e["msg"], e["type"]) for e in exc.errors(include_url=False)]
        else:
            if op.alias_of is not None or op.inputs:
                # The same step as the single endpoints: an alias becomes its canonical
                # operation, base64 media are decoded and checked (core.media_inputs).
                op, params, problems = prepare_request(op, params, operations)
                errors += [_err(list(e["loc"]), e["msg"], e["type"]) for e in problems]
    if errors:
        return _invalid(line, custom_id, errors)
    seen.add(custom_id)
    return Line(line, custom_id, op, params or {})


_NOT_JSON = object()


def _collect(items: Iterable[tuple[int, Any]], max_lines: int, operations: Mapping[str, Operation]) -> Parsed:
    parsed, seen, count = Parsed(), set(), 0
    endpoints = job_endpoints(operations)
    for line, item in items:
        count += 1
        if count > max_lines:
            raise TooManyLines(f"a batch holds at most {max_lines} lines")
        if isinstance(item, tuple) and len(item) == 2 and item[0] is _NOT_JSON:
            parsed.errors.append(_invalid(line, None, [_err([], f"not valid JSON: {item[1]}", "json_invalid")]))
            continue
        result = validate_item(line, item, seen, operations, endpoints)
        if isinstance(result, Line):
            parsed.lines.append(result)
        else:
            parsed.errors.append(result)
    return parsed


def _jsonl_items(lines: Iterable[bytes | str]) -> Iterator[tuple[int, Any]]:
    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue  # blank lines (a trailing newline) are not requests
        try:
            yield number, json.loads(text)
        except ValueError as exc:
            yield number, (_NOT_JSON, str(exc))


def parse_jsonl(lines: Iterable[bytes | str] | BinaryIO, max_lines: int,
                operations: Mapping[str, Operation]) -> Parsed:
    """Validate a JSONL upload line by line (a file object is read as it goes) against
    ``operations`` (the operation table by name); line numbers are the file's, 1-based."""
    return _collect(_jsonl_items(lines), max_lines, operations)


def parse_requests(requests: Any, max_lines: int, operations: Mapping[str, Operation]) -> Parsed:
    """Validate ``{"requests": [...]}`` against ``operations`` (line numbers are 1-based
    positions in the list)."""
    if not isinstance(requests, list):
        raise ValueError("requests must be a list of request lines")
    return _collect(enumerate(requests, start=1), max_lines, operations)


# --------------------------------------------------------------------------- creating
def create(session: Session, *, tenant_id: str, metered: bool, parsed: Parsed, options: BatchOptions,
           base_url: str, chunk: int = 1000) -> Batch:
    """Insert the batch, its jobs (held, so the sweeper starts them within the tenant's
    concurrency) and their credit reservations, in the caller's transaction. Raises
    ``credits.InsufficientCredits`` when the whole batch cannot be paid for (nothing is
    written then, once the caller rolls back)."""
    now = utcnow()
    batch = Batch(id=new_id(), tenant_id=tenant_id, status=IN_PROGRESS if parsed.lines else FAILED,
                  on_invalid=options.on_invalid, total=len(parsed.lines), invalid=len(parsed.errors),
                  errors=parsed.errors or None, credit_cost=0, webhook_url=options.webhook_url,
                  webhook_events=options.webhook_events, base_url=base_url, created_at=now,
                  updated_at=now, finished_at=None if parsed.lines else now)
    rows: list[dict[str, Any]] = []
    costs: list[tuple[str, int]] = []
    for i, line in enumerate(parsed.lines):
        job_id = new_id()
        cost = line.op.cost(line.params) if metered else 0
        costs.append((job_id, cost))
        rows.append({"id": job_id, "tenant_id": tenant_id, "provider": line.op.provider,
                     "operation": line.op.name, "status": S.QUEUED.value, "credit_cost": cost,
                     # held: released oldest first by the sweeper as concurrency allows
                     "held_at": now, "published_at": None, "params": line.params, "sync": False,
                     "run_at": now, "attempts": 0, "polls": 0, "poll_failures": 0,
                     # line order is start order (release_held goes by created_at)
                     "created_at": now + dt.timedelta(microseconds=i), "updated_at": now,
                     "batch_id": batch.id, "custom_id": line.custom_id, "retention_seconds": options.retention_seconds})
    batch.credit_cost = sum(c for _j, c in costs)
    if metered and batch.credit_cost:
        credits.reserve_many(session, tenant_id, costs, note=f"batch {batch.id}")
    session.add(batch)
    session.flush()
    for i in range(0, len(rows), chunk):
        session.execute(insert(Job), rows[i:i + chunk])
    if options.webhook_url and options.webhook_events:
        subs = [{"job_id": r["id"], "url": options.webhook_url, "events": options.webhook_events,
                 "base_url": base_url} for r in rows]
        for i in range(0, len(subs), chunk):
            session.execute(insert(JobWebhook), subs[i:i + chunk])
    return batch


# --------------------------------------------------------------------------- reading
def get(session: Session, tenant_id: str, batch_id: str) -> Batch | None:
    batch = session.get(Batch, batch_id) if len(batch_id) <= 32 else None
    return batch if batch is not None and batch.tenant_id == tenant_id else None


def counts(session: Session, batch_id: str) -> dict[str, int]:
    out = {"queued": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "expired": 0}
    names = {S.QUEUED.value: "queued", S.RUNNING.value: "running", S.SUBMITTED.value: "running",
             S.COMPLETED.value: "completed", S.ERROR.value: "failed", S.CANCELLED.value: "cancelled",
             S.EXPIRED.value: "expired"}
    for status, n in session.execute(select(Job.status, func.count()).where(Job.batch_id == batch_id)
                                     .group_by(Job.status)):
        out[names[status]] += n
    return out


def batch_document(session: Session, batch: Batch, base_url: str | None = None) -> dict[str, Any]:
    c = counts(session, batch.id)
    finished = c["completed"] + c["failed"] + c["cancelled"] + c["expired"]
    started_at = session.scalar(select(func.min(Job.started_at)).where(Job.batch_id == batch.id))
    errors = batch.errors or []
    doc: dict[str, Any] = {
        "id": batch.id,
        "object": "batch",
        "status": batch.status,
        "on_invalid": batch.on_invalid,
        "counts": {"total": batch.total, **c, "finished": finished, "invalid": batch.invalid},
        "progress": round(finished / batch.total, 4) if batch.total else 1.0,
        "credit_cost": batch.credit_cost,
        "created_at": iso(batch.created_at),
        "started_at": iso(started_at),
        "cancelled_at": iso(batch.cancelled_at),
        "finished_at": iso(batch.finished_at),
        "webhook_url": batch.webhook_url,
        "webhook_events": batch.webhook_events,
        "errors": errors[:ERRORS_SHOWN],
        "errors_truncated": len(errors) > ERRORS_SHOWN,
    }
    base = base_url if base_url is not None else batch.base_url
    if base:
        root = f"{base.rstrip('/')}/api/v1/batches/{batch.id}"
        doc["urls"] = {"self": root, "results": f"{root}/results", "errors": f"{root}/errors",
                       "cancel": f"{root}/cancel"}
    return doc


def list_batches(session: Session, tenant_id: str, *, status: str | None, limit: int,
                 after: str | None) -> tuple[list[Batch], bool]:
    """Newest first; ``after`` is the id of the last batch of the previous page."""
    query = select(Batch).where(Batch.tenant_id == tenant_id)
    if status:
        query = query.where(Batch.status == status)
    if after:
        anchor = get(session, tenant_id, after)
        if anchor is not None:
            query = query.where(or_(Batch.created_at < anchor.created_at,
                                    and_(Batch.created_at == anchor.created_at, Batch.id < anchor.id)))
    rows = list(session.scalars(query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def result_line(job: Job, settings: Settings, base_url: str) -> dict[str, Any]:
    status = "COMPLETED" if job.status == S.COMPLETED.value else (
        "EXPIRED" if job.status == S.EXPIRED.value else "ERROR")
    line: dict[str, Any] = {"custom_id": job.custom_id, "request_id": job.id, "status": status,
                            "state": job.status, "result": None, "error": None,
                            "finished_at": iso(job.finished_at), "expires_at": iso(job.expires_at)}
    if job.status == S.COMPLETED.value:
        line["result"] = result_body(job, settings, base_url)
    elif job.status == S.EXPIRED.value:
        line["error"] = {"code": "expired", "message": f"the result expired at {iso(job.expires_at)} and was deleted"}
    else:
        line["error"] = error_body(job)
    return line


def result_page(session: Session, batch_id: str, after: tuple[dt.datetime, str] | None,
                limit: int) -> list[Job]:
    """Finished jobs of a batch in line order, after the (created_at, id) cursor."""
    query = select(Job).where(Job.batch_id == batch_id, Job.status.in_(values(FINISHED_OR_EXPIRED)))
    if after is not None:
        query = query.where(or_(Job.created_at > after[0], and_(Job.created_at == after[0], Job.id > after[1])))
    return list(session.scalars(query.order_by(Job.created_at, Job.id).limit(limit)))


# --------------------------------------------------------------------------- cancel, close
def cancel(session: Session, batch: Batch, retention_seconds: float) -> int:
    """Cancel the jobs that have not started and mark the batch ``cancelling`` (``cancelled``
    at once when nothing is left running); they are kept for the batch's retention, else
    ``retention_seconds``. Returns the number of jobs cancelled."""
    session.refresh(batch, with_for_update=True)  # one cancel at a time; the sweeper skips it
    if batch.status != IN_PROGRESS:
        return 0
    now = utcnow()
    cancelled = cancel_unstarted(session, batch.tenant_id, Job.batch_id == batch.id, retention_seconds,
                                 reason=f"cancelled with its batch {batch.id} before it started")
    batch.status = CANCELLING
    batch.cancelled_at = now
    batch.updated_at = now
    session.flush()
    close_finished(session, 1, batch_id=batch.id)
    return len(cancelled)


def close_finished(session: Session, limit: int, batch_id: str | None = None) -> list[tuple[str, str]]:
    """Open batches with no unfinished job left become completed / cancelled, and their final
    webhook event is recorded in the same transaction. Run by the sweeper."""
    unfinished = exists().where(Job.batch_id == Batch.id, Job.status.in_(values(ACTIVE)))
    query = select(Batch).where(Batch.status.in_(OPEN), ~unfinished)
    if batch_id is not None:
        query = query.where(Batch.id == batch_id)
    query = query.limit(limit)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Batch)
    closed = []
    for batch in session.scalars(query).all():
        now = utcnow()
        batch.status = CANCELLED if batch.status == CANCELLING else COMPLETED
        batch.finished_at = now
        batch.updated_at = now
        outbox.batch_event(session, batch, schemas.BATCH_CANCELLED if batch.status == CANCELLED
                             else schemas.BATCH_COMPLETED)
        closed.append((batch.id, batch.status))
    session.flush()
    return closed
