"""Cancelling one job (``DELETE /api/v1/jobs/{id}``; Runway's and Firefly's cancel routes will
call the same): in one transaction, locked in the order a worker's claim takes the rows
(tenant, then job), so cancel and claim never deadlock and one of them wins cleanly.

* QUEUED (waiting, or held for a slot): cancelled at once, credits released.
* RUNNING (a worker is submitting) or SUBMITTED (running upstream): cancelled here; the upstream
  task is cancelled by a worker where the provider can (``Plugin.upstream_cancel``), credits
  released; where it cannot, the upstream finishes and bills the task, so the credits are
  captured, and the job is simply no longer polled. A task id that arrives after the cancel (the
  worker was submitting) finds the job finished: it is an orphan, cancelled where possible.
* Finished: nothing changes; the caller answers 409 with the state.

``cancel_unstarted`` is the same move in bulk, for the jobs of a batch that have not started.

Every later move of the job (complete, fail, record its task ids) requires an unfinished state,
so whatever the worker was doing ends as a no-op: one consistent final state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from core.jobs import moves
from core.jobs.states import ACTIVE, JobStatus, values
from core.models import Job, Tenant

S = JobStatus


@dataclass(frozen=True)
class Outcome:
    job_id: str
    provider: str
    previous: str  # the state it was cancelled from, or (not cancelled) the final state it is in
    cancelled: bool
    captured: bool = False  # credits kept: the upstream bills the task regardless
    tasks: list[dict[str, Any]] | None = None  # upstream tasks to cancel (where the provider can)


def lock_tenant(session: Session, tenant_id: str) -> None:
    """Every cancel takes the tenant's row before its jobs', the order a claim takes them
    (visiongate_claim locks the tenant, then the job): the other order deadlocks with a worker
    claiming one of the jobs (seen with batch cancel before it came here)."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True))


def cancel_job(session: Session, tenant_id: str, job_id: str, retention_seconds: float,
               can_cancel: Callable[[str], bool]) -> Outcome | None:
    """None: no such job of this tenant. ``can_cancel(provider)``: its adapter can stop a task."""
    lock_tenant(session, tenant_id)
    row = session.execute(select(Job.status, Job.provider, Job.upstream_tasks)
                          .where(Job.id == job_id, Job.tenant_id == tenant_id)
                          .with_for_update()).first()
    if row is None:
        return None
    status, provider, tasks = row
    if status not in values(ACTIVE):
        return Outcome(job_id, provider, status, cancelled=False)
    upstream = status in (S.RUNNING.value, S.SUBMITTED.value)
    stoppable = can_cancel(provider)
    captured = upstream and not stoppable
    done = moves.cancel(session, job_id, retention_seconds, captured=captured,
                        reason=f"cancelled by the client ({status.lower()})")
    return Outcome(job_id, provider, status, cancelled=done, captured=captured,
                   tasks=list(tasks) if upstream and stoppable and tasks else None)


def cancel_unstarted(session: Session, tenant_id: str, where: ColumnElement[bool],
                     retention_seconds: float, reason: str) -> list[str]:
    """Cancel, in bulk, the tenant's jobs matching ``where`` that have not started (a batch's
    waiting lines): credits released, ``job.cancelled`` recorded. Jobs already running are left
    to finish. Returns the ids cancelled."""
    lock_tenant(session, tenant_id)
    return moves.cancel_waiting(session, tenant_id, where, retention_seconds, reason)
