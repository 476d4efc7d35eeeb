"""What the API reads about jobs: one job, a held job's place in line, a tenant's counts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from core.jobs.states import ACTIVE, RUNNING_UPSTREAM, JobStatus, is_visible, values
from core.models import Job

S = JobStatus
_UPSTREAM = values(RUNNING_UPSTREAM)


async def get_job(session: AsyncSession, job_id: str, tenant_id: str) -> Job | None:
    """The tenant's job, or None (unknown, another tenant's, expired). The request's params
    (which can hold base64 inputs of several MB) and the upstream task list are not loaded:
    reads never need them, and touching them on this object raises instead of lazy-loading."""
    job = await find_job(session, job_id, tenant_id)
    return job if job is not None and is_visible(job, tenant_id) else None


async def find_job(session: AsyncSession, job_id: str, tenant_id: str) -> Job | None:
    """The tenant's job, expired or not (``states.is_expired`` tells), or None (unknown, another
    tenant's); loaded as ``get_job`` loads it."""
    if len(job_id) > 64:
        return None
    job = await session.get(Job, job_id, options=[defer(Job.params, raiseload=True),
                                                  defer(Job.upstream_tasks, raiseload=True)])
    return job if job is not None and job.tenant_id == tenant_id else None


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
            Job.tenant_id == tenant_id, Job.status.in_(values(ACTIVE)))
        .group_by(Job.status, Job.held_at.is_not(None)))).all()
    counts = {"running": 0, "waiting": 0, "queued": 0}
    for status, held, n in rows:
        if status in _UPSTREAM:
            counts["running"] += n
        elif held:
            counts["waiting"] += n
        else:
            counts["queued"] += n
    return counts
