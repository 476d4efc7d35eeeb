"""What the sweeper looks for: due polls and starts, lost starts, overdue and expired jobs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Collection, NamedTuple

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from core.jobs.states import ACTIVE, FINISHED, JobStatus, values
from core.models import Job, utcnow

S = JobStatus
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


def due_starts(session: Session, requeue_after: float, limit: int,
               providers: Collection[str] | None = None) -> list[Due]:
    """QUEUED jobs that are due and unpublished, or published more than ``requeue_after`` s ago
    and never claimed (of ``providers`` only, when given: those whose queue lost messages)."""
    now = utcnow()
    stale = now - dt.timedelta(seconds=requeue_after)
    republish = Job.published_at < stale
    if providers is not None:
        republish = and_(republish, Job.provider.in_(list(providers)))
    cond = and_(Job.status == S.QUEUED.value, Job.run_at <= now, Job.held_at.is_(None),
                or_(Job.published_at.is_(None), republish))
    return _claim_due(session, cond, {"published_at": now}, limit)


class Lost(NamedTuple):
    id: str
    attempts: int
    recorded: bool  # its upstream task ids are recorded: resume polling, never resubmit


def lost_starts(session: Session, limit: int) -> list[Lost]:
    """RUNNING jobs whose worker's lease ran out (the worker died or hung)."""
    rows = session.execute(
        select(Job.id, Job.attempts, Job.upstream_tasks.is_not(None))
        .where(Job.status == S.RUNNING.value, Job.lease_until < utcnow()).limit(limit)
    ).all()
    return [Lost(r[0], r[1], bool(r[2])) for r in rows]


def overdue(session: Session, timeout_seconds: float, limit: int) -> list[str]:
    """Unfinished jobs past the deadline. A batch's job is timed from its start, not from the
    upload: a big batch may wait in line for its tenant's concurrency much longer than that."""
    cutoff = utcnow() - dt.timedelta(seconds=timeout_seconds)
    # Two index-friendly queries rather than one OR (migration 0005's partial indexes): a
    # batch's jobs that never started (possibly tens of thousands) are not read at all.
    single = list(session.scalars(select(Job.id).where(
        Job.status.in_(values(ACTIVE)), Job.batch_id.is_(None), Job.created_at < cutoff)
        .limit(limit)))
    batch = list(session.scalars(select(Job.id).where(
        Job.status.in_(values(ACTIVE)), Job.batch_id.is_not(None),
        Job.started_at.is_not(None), Job.started_at < cutoff)
        .limit(max(0, limit - len(single)))))
    return single + batch


def expired(session: Session, limit: int) -> list[tuple[str, str]]:
    """(job id, tenant id) of finished jobs whose retention has passed."""
    rows = session.execute(
        select(Job.id, Job.tenant_id).where(
            Job.expires_at < utcnow(),
            Job.status.in_(values(FINISHED)))
        .limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows]


