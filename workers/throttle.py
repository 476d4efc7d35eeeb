"""Upstream throttling: never exceed a provider's limits across all worker processes.

Two limits per provider key (``VISIONGATE_UPSTREAM_LIMITS``): requests per minute (a sliding
window in Redis shared by every worker; in memory in the embedded mode) and tasks running
upstream at once (counted from the jobs table: SUBMITTED and RUNNING jobs of that provider).
A job that does not fit waits (stays QUEUED, ``IN_PROGRESS`` to the client) and is retried when a
slot should be free; it spends no attempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.jobs import moves
from core.jobs.claims import Claimed
from core.jobs.states import RUNNING_UPSTREAM, values
from core.models import Job
from core.ratelimit import Decision
from providers.base import Operation

log = logging.getLogger("workers.pipeline")

ACTIVE_UPSTREAM = values(RUNNING_UPSTREAM)


class Window(Protocol):
    def hit(self, key: str, quota: int, window: int, weight: int = 1) -> Decision: ...


class Throttle:
    def __init__(self, limits: dict[str, dict[str, Any]], window: Window, busy_delay: float = 1.0):
        self.limits = limits
        self.window = window
        self.busy_delay = busy_delay

    def applies(self, provider: str) -> bool:
        """Whether ``provider`` has a limit of ours at all (no limit: no check, no transaction)."""
        return any(value is not None for value in (self.limits.get(provider) or {}).values())

    def counts_running(self, provider: str) -> bool:
        """Whether ``provider`` has a cap on tasks upstream at once: its check must run in the
        transaction that claims the job (so a job it turns back was never counted as running)."""
        return (self.limits.get(provider) or {}).get("concurrency") is not None

    def wait_time(self, session: Session, provider: str, job_id: str, requests: int) -> float | None:
        """None if the job may go upstream now, else how long to wait before trying again."""
        conf = self.limits.get(provider) or {}
        cap = conf.get("concurrency")
        if cap is not None:
            if session.bind.dialect.name == "postgresql":
                # Serialise the count-then-start of this provider's jobs across workers until
                # the claiming transaction commits (then the new RUNNING row is counted).
                session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                                {"k": f"visiongate:upstream:{provider}"})
            running = session.scalar(select(func.count()).select_from(Job).where(
                Job.provider == provider, Job.status.in_(ACTIVE_UPSTREAM), Job.id != job_id))
            if running >= cap:
                return self.busy_delay
        rpm = conf.get("rpm")
        if rpm is not None:
            decision = self.window.hit(f"upstream:{provider}", int(rpm), 60, weight=min(requests, int(rpm)))
            if not decision.allowed:
                return max(decision.reset_after, 0.05)
        return None


@dataclass
class ClaimThrottle:
    """Our limits per provider (``VISIONGATE_UPSTREAM_LIMITS``) as a claim guard."""

    throttle: Throttle
    operations: dict[str, Operation]

    def needed(self, provider: str) -> bool:
        return self.throttle.applies(provider)

    def with_claim(self, provider: str) -> bool:
        # A cap on tasks upstream counts RUNNING jobs: checked in the claiming transaction, so
        # a job it turns back was never visible as running.
        return self.throttle.counts_running(provider)

    def turn_back(self, session: Any, job: Claimed) -> bool:
        wait = self.throttle.wait_time(session, job.provider, job.id,
                                       self.operations[job.operation].upstream_requests(job.params))
        if wait is None:
            return False
        log.info("start %s: %s upstream limit reached; retry in %.2fs", job.id, job.provider, wait)
        moves.requeue(session, job.id, wait, refund_attempt=True)  # the attempt was not spent
        return True
