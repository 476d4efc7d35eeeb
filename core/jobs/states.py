"""A job's states: the status values, the groups the rest of the code asks about, the moves
the state machine allows, and what a client sees of each state.

    QUEUED ──claim──► RUNNING ──submit ok──► SUBMITTED ──poll: done──► COMPLETED ──retention──► EXPIRED
       ▲                │  │                    │
       └─429/5xx/lost───┘  └──outputs inline──► COMPLETED
                        └─4xx/attempts spent──► ERROR ◄──upstream ERROR/poll failures──┘

(CANCELLED: a batch's job that had not started when its batch was cancelled.) This module
imports nothing of ours, so the tables (core/models.py) can name the states too.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Iterable


class JobStatus(str, enum.Enum):
    QUEUED = "QUEUED"  # persisted; waiting for a worker (run_at says from when)
    RUNNING = "RUNNING"  # claimed by a worker that is submitting upstream (lease_until)
    SUBMITTED = "SUBMITTED"  # upstream task(s) running; polled when run_at is due
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"  # retention passed: files deleted, reads as 404 ``expired``


S = JobStatus

# --------------------------------------------------------------------------- groups
# Not finished: waiting to start, starting, or running upstream.
ACTIVE = (S.QUEUED, S.RUNNING, S.SUBMITTED)
# Holding one of the tenant's concurrency slots: claimed by a worker, or running upstream.
RUNNING_UPSTREAM = (S.RUNNING, S.SUBMITTED)
# Ended (with a result, an error, or cancelled); the result stays readable until it expires.
FINISHED = (S.COMPLETED, S.ERROR, S.CANCELLED)
# Nothing left to do for anyone: finished, and possibly already expired.
FINISHED_OR_EXPIRED = FINISHED + (S.EXPIRED,)


def values(states: Iterable[JobStatus]) -> tuple[str, ...]:
    """The column values of ``states`` (what SQL compares ``jobs.status`` with)."""
    return tuple(s.value for s in states)


# --------------------------------------------------------------------------- transitions
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
    """Bria's dialect; ``None`` means the job reads as 404 ``expired``."""
    return PUBLIC_STATUS.get(JobStatus(status))


def is_expired(job: Any, now: dt.datetime | None = None) -> bool:
    """Whether ``job`` (a ``Job`` row, or anything with its ``status`` and ``expires_at``) is
    past its retention: marked EXPIRED, or its ``expires_at`` passed (the sweeper may not have
    deleted its files yet). Its reads then answer 404 ``expired``."""
    if job.status == S.EXPIRED.value:
        return True
    return job.expires_at is not None and job.expires_at <= (now or dt.datetime.now(dt.UTC))


def is_visible(job: Any, tenant_id: str, now: dt.datetime | None = None) -> bool:
    """Whether ``job`` (a ``Job`` row, or anything with its ``tenant_id``, ``status`` and
    ``expires_at``) is there for ``tenant_id``: its own, not expired, retention not passed."""
    return job is not None and job.tenant_id == tenant_id and not is_expired(job, now)
