"""Every SQL statement that moves a job from one state to another.

All moves are conditional updates (``… WHERE id = :id AND status IN (:allowed)``): whoever
changes a row first wins, a duplicated message or a late worker finds nothing to do. A move that
ends a job settles its credits and records its webhook event in the same transaction, and sets
its ``expires_at`` to the finish time plus the job's own retention (``jobs.retention_seconds``,
or the server's default the caller passes): ``expiry``, computed by the UPDATE itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import Integer, bindparam, exists, func, literal, or_, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.functions import FunctionElement

from core import credits
from core.jobs.states import ACTIVE, FINISHED, JobStatus, check_transition
from core.models import Job, JobWebhook, WebhookEndpoint, utcnow
from providers.plugin import UTCDateTime
from core.webhooks import outbox

S = JobStatus

_T = Job.__table__  # the hot statements below are Core statements on the table, built once
_MOVES: dict[tuple[Any, ...], Any] = {}
_JW, _WE = JobWebhook.__table__, WebhookEndpoint.__table__
# Whether anyone could want the job's webhook events (its own webhook, or an enabled endpoint of
# its tenant): asked in the move's RETURNING, so a job nobody subscribes to skips the lookup.
_HOOKED = or_(exists().where(_JW.c.job_id == _T.c.id).correlate(_T),
              exists().where(_WE.c.tenant_id == _T.c.tenant_id, _WE.c.enabled.is_(True)).correlate(_T))


class Moved(NamedTuple):
    tenant_id: str
    credit_cost: int
    hooked: bool  # someone may subscribe to its webhook events


class add_seconds(FunctionElement):  # an SQL function, named like one
    """``timestamp + seconds`` (an integer expression) on PostgreSQL and SQLite alike."""

    type = UTCDateTime()
    name = "add_seconds"
    inherit_cache = True


@compiles(add_seconds)
def _add_seconds(element: add_seconds, compiler: Any, **kw: Any) -> str:
    at, seconds = (compiler.process(c, **kw) for c in element.clauses)
    return f"({at} + ({seconds}) * INTERVAL '1 second')"


@compiles(add_seconds, "sqlite")
def _add_seconds_sqlite(element: add_seconds, compiler: Any, **kw: Any) -> str:
    # SQLite keeps the column as text, 'YYYY-MM-DD HH:MM:SS.ffffff': shift the whole seconds
    # and keep the fraction (whole seconds are added, so it does not change).
    at, seconds = (compiler.process(c, **kw) for c in element.clauses)
    return f"(strftime('%Y-%m-%d %H:%M:%S', {at}, ({seconds}) || ' seconds') || substr({at}, 20))"


def expiry(at: Any, default_retention: Any) -> ClauseElement:
    """``expires_at`` of a job finishing at ``at``: ``at`` plus the job's own retention, or
    ``default_retention`` (seconds) when it asked for none. Each is an SQL expression (a bind
    parameter) or a value."""
    if not isinstance(at, ClauseElement):
        at = literal(at, UTCDateTime())
    if not isinstance(default_retention, ClauseElement):
        default_retention = literal(int(default_retention), Integer())
    return add_seconds(at, func.coalesce(_T.c.retention_seconds, default_retention))


class Computed(NamedTuple):
    """A column value computed by the UPDATE from an expression built once (``sql``, whose bind
    parameters take ``params``): unlike a one-off expression, it keeps the move's statement cached."""

    sql: ClauseElement
    params: dict[str, Any]


# A finishing job's expires_at: the move's finish time plus its retention (see ``expiry``).
_EXPIRES = expiry(bindparam("e_at", type_=UTCDateTime()), bindparam("e_default", type_=Integer()))


def _expires(now: dt.datetime, default_retention: float) -> Computed:
    return Computed(_EXPIRES, {"e_at": now, "e_default": int(default_retention)})


def _move(session: Session, job_id: str, sources: tuple[JobStatus, ...], target: JobStatus,
          **values: Any) -> Moved | None:
    """Move ``job_id`` from one of ``sources`` to ``target``. Returns the job's tenant, credit
    cost and whether it has webhook subscribers when this call made the move, None when the job
    was elsewhere (someone else won).

    The UPDATE for each (sources, target, set of columns) is built once and reused with bound
    values: building and cache-keying a statement costs more CPU than running it. Values that
    are SQL expressions (``attempts - 1``) make a one-off statement; a ``Computed`` value (an
    expression built once, with bound parameters) keeps it cached."""
    values = {"updated_at": utcnow(), **values}
    computed = {k: v for k, v in values.items() if isinstance(v, Computed)}
    bound = {k: v for k, v in values.items() if not isinstance(v, (ClauseElement, Computed))}
    cached = len(bound) + len(computed) == len(values)
    key = (sources, target, tuple(sorted(bound)), tuple(sorted((k, id(v.sql)) for k, v in computed.items())))
    stmt = _MOVES.get(key) if cached else None
    if stmt is None:
        check_transition(sources, target)
        stmt = (update(_T).where(_T.c.id == bindparam("m_id"), _T.c.status.in_([s.value for s in sources]))
                .values({"status": target.value,
                         **{k: bindparam(f"m_{k}", type_=_T.c[k].type) if k in bound else
                            v.sql if k in computed else v for k, v in values.items()}})
                .returning(_T.c.tenant_id, _T.c.credit_cost, _HOOKED))
        if cached:
            _MOVES[key] = stmt
    params = {"m_id": job_id, **{f"m_{k}": v for k, v in bound.items()}}
    for value in computed.values():
        params.update(value.params)
    row = session.execute(stmt, params).first()
    return Moved(row[0], row[1], bool(row[2])) if row is not None else None


def mark_submitted(session: Session, job_id: str, tasks: list[dict[str, Any]],
                   first_poll_in: float) -> dt.datetime | None:
    """RUNNING → SUBMITTED; returns the submit time (also its updated_at), None if it moved
    elsewhere meanwhile."""
    now = utcnow()
    moved = _move(session, job_id, (S.RUNNING,), S.SUBMITTED, upstream_tasks=tasks,
                  submitted_at=now, run_at=now + dt.timedelta(seconds=first_poll_in),
                  lease_until=None, updated_at=now)
    if moved is None:
        return None
    _event(session, job_id, "job.started", moved)
    return now


def resume(session: Session, job_id: str) -> bool:
    """RUNNING → SUBMITTED for a job whose worker died after recording its task ids: polled at
    once, never submitted again."""
    now = utcnow()
    moved = _move(session, job_id, (S.RUNNING,), S.SUBMITTED, submitted_at=now, run_at=now,
                  lease_until=None, updated_at=now)
    if moved is not None:
        _event(session, job_id, "job.started", moved)
    return moved is not None


def record_tasks(session: Session, job_id: str, tasks: list[dict[str, Any]]) -> bool:
    """Keep the upstream's task ids on the job, alone in its transaction, the moment the
    upstream has answered: once they are there no recovery submits the job again (a claim or a
    lost-start recovery of a job with task ids resumes polling them). False: the job had
    moved on (finished, or started again elsewhere and recorded its own), so these tasks are
    orphans."""
    result = session.execute(_RECORD_TASKS, {"r_id": job_id, "r_tasks": tasks})
    if result.rowcount == 1:
        return True
    # Written before (a journal entry replayed twice): the same tasks are no orphans.
    held = session.scalar(select(_T.c.upstream_tasks).where(_T.c.id == job_id))
    return bool(held) and [t.get("id") for t in held] == [t.get("id") for t in tasks]


_RECORD_TASKS = (update(_T).where(_T.c.id == bindparam("r_id"), _T.c.upstream_tasks.is_(None),
                                  _T.c.status.in_([S.RUNNING.value, S.QUEUED.value]))
                 .values(upstream_tasks=bindparam("r_tasks", type_=_T.c.upstream_tasks.type)))


def requeue(session: Session, job_id: str, delay: float, *, refund_attempt: bool = False,
            uncertain: bool = False, sources: tuple[JobStatus, ...] = (S.RUNNING,)) -> bool:
    """Back to QUEUED, startable after ``delay`` s; the sweeper publishes it when due.
    ``uncertain``: the attempt may have reached the upstream (counted on the job)."""
    values: dict[str, Any] = dict(run_at=utcnow() + dt.timedelta(seconds=delay),
                                  published_at=None, lease_until=None)
    if refund_attempt:
        values["attempts"] = Job.attempts - 1
    if uncertain:
        values["uncertain_submits"] = Job.uncertain_submits + 1
    return _move(session, job_id, sources, S.QUEUED, **values) is not None


def complete(session: Session, job_id: str, outputs: list[dict[str, Any]], meta: dict[str, Any],
             retention_seconds: float, upstream_tasks: list[dict[str, Any]] | None = None) -> bool:
    """→ COMPLETED. ``retention_seconds``: the server's default, for a job that asked for none."""
    now = utcnow()
    values: dict[str, Any] = dict(outputs=outputs, result_meta=meta, finished_at=now,
                                  expires_at=_expires(now, retention_seconds), lease_until=None, progress=1.0)
    if upstream_tasks is not None:
        values["upstream_tasks"] = upstream_tasks
    moved = _move(session, job_id, (S.RUNNING, S.SUBMITTED), S.COMPLETED, **values)
    if moved is not None:
        credits.settle(session, moved[0], job_id, moved[1], captured=True)
        _event(session, job_id, "job.completed", moved)
    return moved is not None


def fail(session: Session, job_id: str, code: str, message: str, retention_seconds: float) -> bool:
    """→ ERROR. ``retention_seconds``: the server's default, for a job that asked for none."""
    now = utcnow()
    moved = _move(session, job_id, ACTIVE, S.ERROR, error_code=code[:100], error_message=message,
                  finished_at=now, expires_at=_expires(now, retention_seconds), lease_until=None, held_at=None)
    if moved is not None:
        credits.settle(session, moved[0], job_id, moved[1], captured=False)
        _event(session, job_id, "job.failed", moved)
    return moved is not None


def cancel(session: Session, job_id: str, retention_seconds: float, *, captured: bool,
           reason: str = "cancelled by the client") -> bool:
    """→ CANCELLED from any unfinished state; the credits are released, or captured when the
    upstream bills the task regardless (``captured``). Callers lock the tenant's row first
    (core/jobs/cancel.py), in the order a claim takes them."""
    now = utcnow()
    moved = _move(session, job_id, ACTIVE, S.CANCELLED, error_code="cancelled", error_message=reason,
                  finished_at=now, expires_at=_expires(now, retention_seconds), lease_until=None, held_at=None)
    if moved is not None:
        credits.settle(session, moved[0], job_id, moved[1], captured=captured)
        _event(session, job_id, "job.cancelled", moved)
    return moved is not None


def cancel_waiting(session: Session, tenant_id: str, where: ClauseElement, retention_seconds: float,
                   reason: str) -> list[str]:
    """``cancel`` in bulk for the tenant's jobs matching ``where`` that have not started (QUEUED,
    waiting or held): one UPDATE, their credits released and their ``job.cancelled`` events
    recorded in bulk. Returns the ids cancelled. Same locking rule as ``cancel``."""
    check_transition([S.QUEUED], S.CANCELLED)
    now = utcnow()
    rows = session.execute(
        update(Job).where(Job.tenant_id == tenant_id, Job.status == S.QUEUED.value, where)
        .values(status=S.CANCELLED.value, error_code="cancelled", error_message=reason, finished_at=now,
                expires_at=expiry(now, retention_seconds), held_at=None, lease_until=None, updated_at=now)
        .returning(Job.id, Job.credit_cost).execution_options(synchronize_session=False)).all()
    credits.release_many(session, tenant_id, [(r[0], r[1]) for r in rows], note=reason)
    outbox.jobs_event(session, tenant_id, [r[0] for r in rows], "job.cancelled")
    return [r[0] for r in rows]


def _event(session: Session, job_id: str, event_type: str, moved: Moved) -> None:
    """Record the job's webhook event in the transaction that made the move (like the credit
    settlement), so a finished job never loses its event; the sweeper sends it. Nothing to do
    when the move saw no subscriber (most jobs: then no query at all)."""
    if moved.hooked:
        outbox.job_event(session, job_id, event_type, moved.tenant_id)


def record_poll(session: Session, job_id: str, *, tasks: list[dict[str, Any]], delay: float,
                progress: float | None = None, failed: bool = False) -> bool:
    """Still SUBMITTED: keep what the poll learned and schedule the next one."""
    values: dict[str, Any] = dict(upstream_tasks=tasks, polls=Job.polls + 1,
                                  run_at=utcnow() + dt.timedelta(seconds=delay),
                                  updated_at=utcnow())
    if progress is not None:
        values["progress"] = progress
    if failed:
        values["poll_failures"] = Job.poll_failures + 1
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status == S.SUBMITTED.value).values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def record_polls(session: Session,
                 checks: list[tuple[str, list[dict[str, Any]], float, float | None, bool]]) -> None:
    """``record_poll`` for many jobs in one statement sent as a batch (executemany: one round
    trip on PostgreSQL): ``(job id, tasks, delay, progress or None, failed)`` each."""
    if not checks:
        return
    now = utcnow()
    session.execute(_RECORD_POLL, [{"b_id": job_id, "b_tasks": tasks, "b_run_at": now + dt.timedelta(seconds=delay),
                                    "b_now": now, "b_progress": progress, "b_failed": 1 if failed else 0}
                                   for job_id, tasks, delay, progress, failed in checks])


_RECORD_POLL = (
    update(_T).where(_T.c.id == bindparam("b_id"), _T.c.status == S.SUBMITTED.value)
    .values(upstream_tasks=bindparam("b_tasks", type_=_T.c.upstream_tasks.type),
            polls=_T.c.polls + 1, run_at=bindparam("b_run_at", type_=_T.c.run_at.type),
            updated_at=bindparam("b_now", type_=_T.c.updated_at.type),
            progress=func.coalesce(bindparam("b_progress", type_=_T.c.progress.type), _T.c.progress),
            poll_failures=_T.c.poll_failures + bindparam("b_failed", type_=_T.c.poll_failures.type)))


def progress_events(session: Session, progressed: list[tuple[str, str]]) -> int:
    """``job.progress`` for jobs (id, tenant) whose upstream reported progress: one query finds
    those anyone could subscribe to (most jobs: none), then each is offered the event."""
    if not progressed:
        return 0
    tenants = dict(progressed)
    hooked = session.scalars(select(_T.c.id).where(_T.c.id.in_(list(tenants)), _HOOKED)).all()
    return sum(outbox.progress_event(session, job_id, tenants[job_id]) for job_id in hooked)


def mark_expired(session: Session, job_id: str) -> bool:
    return _move(session, job_id, FINISHED, S.EXPIRED, outputs=None) is not None
