"""Claiming a job for a worker, and each tenant's waiting line.

A worker claims a QUEUED job (QUEUED → RUNNING, with a lease) only when its tenant has a free
concurrency slot and no older job of the tenant waits for one; otherwise the job is *held* and
``release_held`` publishes it again, oldest first, when a slot frees.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol

from sqlalchemy import and_, bindparam, func, literal_column, or_, select, text, union_all, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from core.jobs.states import RUNNING_UPSTREAM, JobStatus, check_transition, values
from core.jobs.sweeps import Due
from core.models import Job, Tenant, utcnow

S = JobStatus
_T = Job.__table__
_UPSTREAM = values(RUNNING_UPSTREAM)
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
    # Task ids an earlier attempt recorded (it reached the upstream, then its worker died or
    # the database was away): the job resumes polling them instead of submitting again.
    upstream_tasks: list[dict[str, Any]] | None = None


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
_CLAIM_READ = (select(_TT.c.id, _TT.c.plan, _TT.c.limits, _T.c.provider, _T.c.operation, _T.c.params,
                      _T.c.upstream_tasks)
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
            tenant, provider, operation, params, tasks = TenantLimits(*found[:3]), *found[3:]
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
    job = Claimed(job_id, tenant.id, provider, operation, params, attempts, upstream_tasks=tasks)
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
            select(other.id).where(other.tenant_id == tenant.id, other.status.in_(_UPSTREAM))
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
        .returning(Job.tenant_id, Job.provider, Job.operation, Job.params, Job.attempts,
                   Job.upstream_tasks)
        .execution_options(synchronize_session=False)).first()
    if row is None:
        return None
    return Claimed(job_id, row[0], row[1], row[2], row[3], row[4], upstream_tasks=row[5])


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
            select(Job.id).where(Job.tenant_id == tenant_id, Job.status.in_(_UPSTREAM))
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


def extend_leases(session: Session, job_ids: list[str], lease_seconds: float) -> int:
    """Push the start lease of RUNNING jobs whose upstream call is still in flight (a worker's
    heartbeat): only a worker that stopped extending them lets them be taken for lost."""
    if not job_ids:
        return 0
    result = session.execute(update(Job).where(Job.id.in_(job_ids), Job.status == S.RUNNING.value)
                             .values(lease_until=utcnow() + dt.timedelta(seconds=lease_seconds)))
    return result.rowcount or 0


