"""A job's state machine and every SQL statement that moves it.

All moves are conditional updates (``… WHERE id = :id AND status IN (:allowed)``): whoever
changes a row first wins, a duplicated message or a late worker finds nothing to do. The worker
and the sweeper use the sync functions, the API the async ones; both share the same rules.

    QUEUED ──claim──► RUNNING ──submit ok──► SUBMITTED ──poll: done──► COMPLETED ──retention──► EXPIRED
       ▲                │  │                    │
       └─429/5xx/lost───┘  └──outputs inline──► COMPLETED
                        └─4xx/attempts spent──► ERROR ◄──upstream ERROR/poll failures──┘
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple, Protocol

from sqlalchemy import and_, bindparam, exists, func, literal_column, or_, select, text, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, aliased, defer, sessionmaker
from sqlalchemy.sql.elements import ClauseElement

from core import credits
from core.models import ACTIVE, Job, JobStatus, JobWebhook, Tenant, WebhookEndpoint, utcnow

S = JobStatus

# Which states a job may move to from each state.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.QUEUED: frozenset({S.RUNNING, S.ERROR, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUBMITTED, S.COMPLETED, S.QUEUED, S.ERROR, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.COMPLETED, S.ERROR, S.CANCELLED}),
    S.COMPLETED: frozenset({S.EXPIRED}),
    S.ERROR: frozenset({S.EXPIRED}),
    S.CANCELLED: frozenset({S.EXPIRED}),
    S.EXPIRED: frozenset(),
}


class IllegalTransition(ValueError):
    pass


def check_transition(sources: Iterable[JobStatus], target: JobStatus) -> None:
    for src in sources:
        if target not in TRANSITIONS[src]:
            raise IllegalTransition(f"{src.value} → {target.value} is not a job transition")


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


def _move(session: Session, job_id: str, sources: tuple[JobStatus, ...], target: JobStatus,
          **values: Any) -> Moved | None:
    """Move ``job_id`` from one of ``sources`` to ``target``. Returns the job's tenant, credit
    cost and whether it has webhook subscribers when this call made the move, None when the job
    was elsewhere (someone else won).

    The UPDATE for each (sources, target, set of columns) is built once and reused with bound
    values: building and cache-keying a statement costs more CPU than running it. Values that
    are SQL expressions (``attempts - 1``) make a one-off statement."""
    values = {"updated_at": utcnow(), **values}
    bound = {k: v for k, v in values.items() if not isinstance(v, ClauseElement)}
    key = (sources, target, tuple(sorted(bound)))
    stmt = _MOVES.get(key) if len(bound) == len(values) else None
    if stmt is None:
        check_transition(sources, target)
        stmt = (update(_T).where(_T.c.id == bindparam("m_id"), _T.c.status.in_([s.value for s in sources]))
                .values({"status": target.value,
                         **{k: bindparam(f"m_{k}", type_=_T.c[k].type) if k in bound else v
                            for k, v in values.items()}})
                .returning(_T.c.tenant_id, _T.c.credit_cost, _HOOKED))
        if len(bound) == len(values):
            _MOVES[key] = stmt
    row = session.execute(stmt, {"m_id": job_id, **{f"m_{k}": v for k, v in bound.items()}}).first()
    return Moved(row[0], row[1], bool(row[2])) if row is not None else None


# --------------------------------------------------------------------------- public view
PUBLIC_STATUS = {
    S.QUEUED: "IN_PROGRESS",
    S.RUNNING: "IN_PROGRESS",
    S.SUBMITTED: "IN_PROGRESS",
    S.COMPLETED: "COMPLETED",
    S.ERROR: "ERROR",
    S.CANCELLED: "ERROR",
}


def public_status(status: str) -> str | None:
    """Bria's dialect; ``None`` means the job reads as 404 (expired)."""
    return PUBLIC_STATUS.get(JobStatus(status))


def is_visible(job: Job | None, tenant_id: str, now: dt.datetime | None = None) -> bool:
    if job is None or job.tenant_id != tenant_id or job.status == S.EXPIRED.value:
        return False
    return job.expires_at is None or job.expires_at > (now or utcnow())


# --------------------------------------------------------------------------- timing rules
def backoff(attempt: int, base: float, cap: float, jitter: float = 0.2) -> float:
    """Exponential backoff for the ``attempt``-th retry (1-based), ±``jitter`` spread."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * (1 + random.uniform(-jitter, jitter))


def next_poll_delay(elapsed: float, base: float, cap: float) -> float:
    """Poll often at first, then about a tenth of the time already waited (never above cap).

    A job noticed late by at most ~10% of its own duration keeps upstream status traffic low
    for long video jobs without slowing short image jobs.
    """
    return min(cap, max(base, elapsed * 0.1))


# --------------------------------------------------------------------------- API side (async)
async def get_job(session: AsyncSession, job_id: str, tenant_id: str) -> Job | None:
    """The tenant's job, or None (unknown, another tenant's, expired). The request's params
    (which can hold base64 inputs of several MB) and the upstream task list are not loaded:
    reads never need them, and touching them on this object raises instead of lazy-loading."""
    if len(job_id) > 64:
        return None
    job = await session.get(Job, job_id, options=[defer(Job.params, raiseload=True),
                                                  defer(Job.upstream_tasks, raiseload=True)])
    return job if is_visible(job, tenant_id) else None


# --------------------------------------------------------------------------- worker side (sync)
RUNNING_UPSTREAM = (S.RUNNING.value, S.SUBMITTED.value)
# The order rule of a claim (older startable jobs of the tenant have the first claim on free
# slots) is checked when at most this many slots are free, so a claim reads at most this many
# older jobs. Every plan's default cap is below it, so for them the order is exact; a tenant
# with more free slots than this starts jobs without looking at older ones (at worst an older
# job then finds the slots taken and waits in line for the next free one).
FIFO_WINDOW = 500


@dataclass(frozen=True)
class Claimed:
    """What the worker needs of a job it just moved to RUNNING."""

    id: str
    tenant_id: str
    provider: str
    operation: str
    params: dict[str, Any]
    attempts: int
    status: str = S.RUNNING.value


class ClaimGuard(Protocol):
    """A check between claiming a job and sending it upstream (the worker's upstream limits)."""

    def needed(self, provider: str) -> bool: ...  # does this provider have one at all

    def with_claim(self, provider: str) -> bool: ...  # must it run in the claim's transaction

    def turn_back(self, session: Session, job: Claimed) -> bool: ...  # True: requeued, do not go


class TenantLimits(NamedTuple):
    """What a concurrency callable reads of a tenant (a ``Tenant`` row also has these)."""

    id: str
    plan: str
    limits: dict[str, Any] | None


_TT = Tenant.__table__
_CLAIM_READ = (select(_TT.c.id, _TT.c.plan, _TT.c.limits, _T.c.provider, _T.c.operation, _T.c.params)
               .join_from(_T, _TT, _TT.c.id == _T.c.tenant_id)
               .where(_T.c.id == bindparam("c_id"), _T.c.status == S.QUEUED.value))
_CLAIM_CALL = text("SELECT visiongate_claim(:job, :cap, :lease, :now, :window)")


def claim(sessions: sessionmaker, job_id: str, lease_seconds: float,
          concurrency: Callable[[Any], int], guard: ClaimGuard | None = None) -> Claimed | None:
    """``claim_start`` in its own transaction, then ``guard``. On PostgreSQL the locked part runs
    server-side (``visiongate_claim``, migration 0006) in autocommit mode, so the tenant's row
    lock lasts only the database's own work, not this process's time between statements."""
    with sessions() as session:
        server_side = session.get_bind().dialect.name == "postgresql"
        if server_side:
            conn = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            found = conn.execute(_CLAIM_READ, {"c_id": job_id}).first()
            if found is None:
                return None
            tenant, provider, operation, params = TenantLimits(*found[:3]), *found[3:]
            # A guard that counts running jobs belongs in the claim's transaction.
            server_side = guard is None or not (guard.needed(provider) and guard.with_claim(provider))
        if server_side:
            attempts = conn.scalar(_CLAIM_CALL, {"job": job_id, "lease": lease_seconds, "now": utcnow(),
                                                 "cap": max(0, min(concurrency(tenant), 2**31 - 1)),
                                                 "window": FIFO_WINDOW})
    if not server_side:  # SQLite, or a guard that must run in the claim's transaction
        with sessions.begin() as session:
            job = claim_start(session, job_id, lease_seconds, concurrency)
            if job is None or guard is None or not guard.needed(job.provider):
                return job
            return None if guard.turn_back(session, job) else job
    if attempts is None or attempts < 0:
        return None
    job = Claimed(job_id, tenant.id, provider, operation, params, attempts)
    if guard is None or not guard.needed(provider):
        return job
    with sessions.begin() as session:  # a guard that needs no lock (requests per minute)
        return None if guard.turn_back(session, job) else job


def claim_start(session: Session, job_id: str, lease_seconds: float,
                concurrency: Callable[[Tenant], int] | None = None) -> Claimed | None:
    """QUEUED → RUNNING if due and the tenant has a free concurrency slot.

    Returns the claimed job, or None when there is nothing to do now: someone else has it (a
    duplicate message), it is not due, or it must wait for a slot, in which case it is *held*
    (stays QUEUED, ``held_at`` set) and ``release_held`` publishes it again, oldest first, when
    a slot frees. A job never overtakes an older held job of the same tenant.

    With a cap: lock the tenant, read the job with its running count, count the older startable
    jobs (only when at most ``FIFO_WINDOW`` slots are free), move; without: the move alone. The
    request's params (possibly MB of base64) are read once, by the move.
    """
    now = utcnow()
    if concurrency is not None:
        # Serialise claims per tenant (Postgres row lock) so the count below stays true. FOR NO
        # KEY UPDATE: it does not block the tenant's job inserts (their foreign key takes FOR KEY
        # SHARE on this row, which FOR UPDATE would block). The count is read by a later
        # statement, so it sees every claim committed while this one waited for the lock.
        found = session.execute(
            select(Tenant, Job.created_at).join(Job, Job.tenant_id == Tenant.id).where(Job.id == job_id)
            .with_for_update(of=Tenant, key_share=True)).first()
        if found is None:
            return None
        tenant, created_at = found
        cap = concurrency(tenant)
        other = aliased(Job)
        # Counted up to the cap only: a tenant with thousands running costs no more than one
        # with ``cap`` running.
        running = select(func.count()).select_from(
            select(other.id).where(other.tenant_id == tenant.id, other.status.in_(RUNNING_UPSTREAM))
            .limit(max(0, cap)).subquery()).scalar_subquery()
        row = session.execute(select(Job.status, Job.run_at, running).where(Job.id == job_id)).first()
        if row is None or row[0] != S.QUEUED.value or row[1] > now:
            return None
        free = cap - row[2]
        # FIFO: the older jobs of the tenant that could start now (waiting for a slot, or due
        # and not yet claimed) have the first claim on the free slots; this one starts only if
        # a slot is left after them, else it waits behind them. (With slots to spare nobody
        # waits: jobs claimed side by side must not hold each other back.) Held jobs already
        # released (published by release_held) are on their way and block nobody: otherwise the
        # jobs released together would re-hold each other one by one (a batch would crawl).
        older_waiting = 0
        if 0 < free <= FIFO_WINDOW:
            older = aliased(Job)
            older_waiting = session.scalar(select(func.count()).select_from(
                select(older.id).where(
                    older.tenant_id == tenant.id, older.status == S.QUEUED.value,
                    older.created_at < created_at, older.id != job_id,
                    or_(and_(older.held_at.is_not(None), older.published_at.is_(None)),
                        and_(older.held_at.is_(None), older.run_at <= now)))
                .limit(free).subquery()))
        if free <= 0 or older_waiting >= free:
            session.execute(update(Job).where(Job.id == job_id, Job.status == S.QUEUED.value)
                            .values(held_at=func.coalesce(Job.held_at, now), published_at=None)
                            .execution_options(synchronize_session=False))
            return None
    check_transition((S.QUEUED,), S.RUNNING)
    row = session.execute(
        update(Job).where(Job.id == job_id, Job.status == S.QUEUED.value, Job.run_at <= now)
        .values(status=S.RUNNING.value, updated_at=now, held_at=None,
                lease_until=now + dt.timedelta(seconds=lease_seconds),
                attempts=Job.attempts + 1, started_at=func.coalesce(Job.started_at, now))
        .returning(Job.tenant_id, Job.provider, Job.operation, Job.params, Job.attempts)
        .execution_options(synchronize_session=False)).first()
    if row is None:
        return None
    return Claimed(job_id, row[0], row[1], row[2], row[3], row[4])


def release_held(session: Session, concurrency: Callable[[Tenant], int], limit: int,
                 tenant_id: str | None = None, stale_after: float = 600.0) -> list[Due]:
    """Publishable held jobs: per tenant (or just ``tenant_id``), the oldest that fit the free
    slots. Run by the sweeper, and right after a job of the tenant starts or ends.

    A held job is publishable when it was never released, or released longer than
    ``stale_after`` ago and still not claimed (its message was lost). Most calls find none (no
    waiting line, or a line whose jobs are all released and on their way: a big batch with
    slots to spare), which costs two index probes and nothing else."""
    stale = utcnow() - dt.timedelta(seconds=stale_after)
    if tenant_id is not None:
        tenants = [tenant_id]
    else:  # one index probe per tenant, not a scan of every waiting job
        tenants = session.scalars(select(Tenant.id).where(
            select(Job.id).where(Job.tenant_id == Tenant.id, Job.status == S.QUEUED.value,
                                 Job.held_at.is_not(None)).exists()).limit(limit)).all()
    released: list[Due] = []
    for tenant_id in tenants:
        if not _publishable(session, tenant_id, stale, 1):
            continue
        tenant = session.get(Tenant, tenant_id)
        cap = concurrency(tenant)
        running = session.scalar(select(func.count()).select_from(
            select(Job.id).where(Job.tenant_id == tenant_id, Job.status.in_(RUNNING_UPSTREAM))
            .limit(max(0, cap)).subquery()))
        # Released earlier but not claimed yet: their slots are spoken for (without this every
        # sweep would publish another `free` messages, flooding the queue with a big backlog).
        released_before = session.scalar(select(func.count()).select_from(
            select(Job.id).where(Job.tenant_id == tenant_id, Job.status == S.QUEUED.value,
                                 Job.held_at.is_not(None), Job.published_at >= stale)
            .limit(max(0, cap)).subquery()))
        free = cap - running - released_before
        if free <= 0:
            continue
        ids = _publishable(session, tenant_id, stale, min(free, limit))
        # The UPDATE states again what made them publishable: a concurrent caller (another
        # worker's start, the sweeper) may have read the same ids; after waiting for its row
        # locks this one re-checks the condition on the committed rows and skips what the
        # other released, so each job is published once.
        rows = session.execute(update(Job).where(
            Job.id.in_(ids), Job.status == S.QUEUED.value, Job.held_at.is_not(None),
            or_(Job.published_at.is_(None), Job.published_at < stale))
            .values(published_at=utcnow()).returning(Job.id, Job.provider)
            .execution_options(synchronize_session=False)).all()
        released += [Due(r[0], r[1]) for r in rows]
    return released


def _held_line(unreleased: bool) -> Any:
    # The status is written into the SQL, not bound: a prepared statement's generic plan can
    # use a partial index (``WHERE status = 'QUEUED' …``) only if the query states it literally.
    held = select(_T.c.id, _T.c.created_at).where(
        _T.c.tenant_id == bindparam("p_tenant"), _T.c.status == literal_column(f"'{S.QUEUED.value}'"),
        _T.c.held_at.is_not(None),
        _T.c.published_at.is_(None) if unreleased else _T.c.published_at < bindparam("p_stale"))
    return select(held.order_by(_T.c.created_at).limit(bindparam("p_n")).subquery())


# The tenant's oldest held jobs never released, and those whose release went stale: two range
# scans of the waiting line's partial indexes (which ones is the planner's choice) in one round trip.
_PUBLISHABLE = union_all(_held_line(True), _held_line(False))


def _publishable(session: Session, tenant_id: str, stale: dt.datetime, n: int) -> list[str]:
    """The tenant's ``n`` oldest held jobs that were never released or whose release went stale."""
    found = session.execute(_PUBLISHABLE, {"p_tenant": tenant_id, "p_stale": stale, "p_n": n}).all()
    return [row[0] for row in sorted(found, key=lambda row: row[1])[:n]]


async def queue_position(session: AsyncSession, job: Job) -> int | None:
    """1-based place of a held job in its tenant's waiting line; None if it is not waiting."""
    if job.status != S.QUEUED.value or job.held_at is None:
        return None
    ahead = await session.scalar(select(func.count()).select_from(Job).where(
        Job.tenant_id == job.tenant_id, Job.status == S.QUEUED.value, Job.held_at.is_not(None),
        Job.created_at < job.created_at))
    return int(ahead or 0) + 1


async def tenant_job_counts(session: AsyncSession, tenant_id: str) -> dict[str, int]:
    rows = (await session.execute(
        select(Job.status, Job.held_at.is_not(None), func.count()).where(
            Job.tenant_id == tenant_id, Job.status.in_([s.value for s in ACTIVE]))
        .group_by(Job.status, Job.held_at.is_not(None)))).all()
    counts = {"running": 0, "waiting": 0, "queued": 0}
    for status, held, n in rows:
        if status in RUNNING_UPSTREAM:
            counts["running"] += n
        elif held:
            counts["waiting"] += n
        else:
            counts["queued"] += n
    return counts


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


def requeue(session: Session, job_id: str, delay: float, *, refund_attempt: bool = False,
            sources: tuple[JobStatus, ...] = (S.RUNNING,)) -> bool:
    """Back to QUEUED, startable after ``delay`` s; the sweeper publishes it when due."""
    values: dict[str, Any] = dict(run_at=utcnow() + dt.timedelta(seconds=delay),
                                  published_at=None, lease_until=None)
    if refund_attempt:
        values["attempts"] = Job.attempts - 1
    return _move(session, job_id, sources, S.QUEUED, **values) is not None


def complete(session: Session, job_id: str, outputs: list[dict[str, Any]], meta: dict[str, Any],
             retention_seconds: float, upstream_tasks: list[dict[str, Any]] | None = None) -> bool:
    now = utcnow()
    values: dict[str, Any] = dict(outputs=outputs, result_meta=meta, finished_at=now,
                                  expires_at=now + dt.timedelta(seconds=retention_seconds),
                                  lease_until=None, progress=1.0)
    if upstream_tasks is not None:
        values["upstream_tasks"] = upstream_tasks
    moved = _move(session, job_id, (S.RUNNING, S.SUBMITTED), S.COMPLETED, **values)
    if moved is not None:
        credits.settle(session, moved[0], job_id, moved[1], captured=True)
        _event(session, job_id, "job.completed", moved)
    return moved is not None


def fail(session: Session, job_id: str, code: str, message: str, retention_seconds: float) -> bool:
    now = utcnow()
    moved = _move(session, job_id, ACTIVE, S.ERROR, error_code=code[:100], error_message=message,
                  finished_at=now, expires_at=now + dt.timedelta(seconds=retention_seconds),
                  lease_until=None, held_at=None)
    if moved is not None:
        credits.settle(session, moved[0], job_id, moved[1], captured=False)
        _event(session, job_id, "job.failed", moved)
    return moved is not None


def _event(session: Session, job_id: str, event_type: str, moved: Moved) -> None:
    """Record the job's webhook event in the transaction that made the move (like the credit
    settlement), so a finished job never loses its event; the sweeper sends it. Nothing to do
    when the move saw no subscriber (most jobs: then no query at all)."""
    if not moved.hooked:
        return
    from core import webhooks  # late import: webhooks reads job documents (core.results)

    webhooks.job_event(session, job_id, event_type, moved.tenant_id)


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


# --------------------------------------------------------------------------- sweeper (sync)
@dataclass(frozen=True)
class Due:
    id: str
    provider: str


def _claim_due(session: Session, condition: Any, values: dict[str, Any], limit: int) -> list[Due]:
    """Select due rows (skipping rows another sweeper holds) and stamp them in one go."""
    ids = select(Job.id).where(condition).order_by(Job.run_at).limit(limit)
    if session.bind.dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    rows = session.execute(
        update(Job).where(Job.id.in_(ids.scalar_subquery()), condition).values(**values)
        .returning(Job.id, Job.provider).execution_options(synchronize_session=False)
    ).all()
    return [Due(r[0], r[1]) for r in rows]


def due_polls(session: Session, lease_seconds: float, limit: int) -> list[Due]:
    """SUBMITTED jobs whose next poll is due; their run_at moves past the poll's lease."""
    now = utcnow()
    return _claim_due(session, and_(Job.status == S.SUBMITTED.value, Job.run_at <= now),
                      {"run_at": now + dt.timedelta(seconds=lease_seconds)}, limit)


def due_starts(session: Session, requeue_after: float, limit: int) -> list[Due]:
    """QUEUED jobs that are due and unpublished, or published long ago and never claimed."""
    now = utcnow()
    stale = now - dt.timedelta(seconds=requeue_after)
    cond = and_(Job.status == S.QUEUED.value, Job.run_at <= now, Job.held_at.is_(None),
                or_(Job.published_at.is_(None), Job.published_at < stale))
    return _claim_due(session, cond, {"published_at": now}, limit)


def extend_leases(session: Session, job_ids: list[str], lease_seconds: float) -> int:
    """Push the start lease of RUNNING jobs whose upstream call is still in flight (a worker's
    heartbeat): only a worker that stopped extending them lets them be taken for lost."""
    if not job_ids:
        return 0
    result = session.execute(update(Job).where(Job.id.in_(job_ids), Job.status == S.RUNNING.value)
                             .values(lease_until=utcnow() + dt.timedelta(seconds=lease_seconds)))
    return result.rowcount or 0


def lost_starts(session: Session, limit: int) -> list[tuple[str, int]]:
    """RUNNING jobs whose worker's lease ran out (the worker died or hung)."""
    rows = session.execute(
        select(Job.id, Job.attempts)
        .where(Job.status == S.RUNNING.value, Job.lease_until < utcnow()).limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows]


def overdue(session: Session, timeout_seconds: float, limit: int) -> list[str]:
    """Unfinished jobs past the deadline. A batch's job is timed from its start, not from the
    upload: a big batch may wait in line for its tenant's concurrency much longer than that."""
    cutoff = utcnow() - dt.timedelta(seconds=timeout_seconds)
    # Two index-friendly queries rather than one OR (migration 0005's partial indexes): a
    # batch's jobs that never started (possibly tens of thousands) are not read at all.
    single = list(session.scalars(select(Job.id).where(
        Job.status.in_([s.value for s in ACTIVE]), Job.batch_id.is_(None), Job.created_at < cutoff)
        .limit(limit)))
    batch = list(session.scalars(select(Job.id).where(
        Job.status.in_([s.value for s in ACTIVE]), Job.batch_id.is_not(None),
        Job.started_at.is_not(None), Job.started_at < cutoff)
        .limit(max(0, limit - len(single)))))
    return single + batch


def expired(session: Session, limit: int) -> list[tuple[str, str]]:
    """(job id, tenant id) of finished jobs whose retention has passed."""
    rows = session.execute(
        select(Job.id, Job.tenant_id).where(
            Job.expires_at < utcnow(),
            Job.status.in_([S.COMPLETED.value, S.ERROR.value, S.CANCELLED.value]))
        .limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows]


def mark_expired(session: Session, job_id: str) -> bool:
    return _move(session, job_id, (S.COMPLETED, S.ERROR, S.CANCELLED), S.EXPIRED, outputs=None) is not None
