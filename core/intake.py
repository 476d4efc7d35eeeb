"""Accepting a job: the one path every submission takes (single endpoints, aliases, batches).

Validation has already happened (the operation's request model). Here the job row is added to
the caller's transaction and, for metered tenants, its credits are reserved in the same
transaction, so either both exist after the commit or neither does. Publishing to the broker
happens after the commit (the caller's job), never before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import credits, jobs
from core.models import Job
from core.tenants import Principal
from core.webhooks import JobOptions, subscribe_job
from providers.base import Operation


@dataclass(frozen=True)
class Accepted:
    job: Job
    credit_cost: int
    credits_remaining: int | None  # None: unmetered tenant

    def receipt(self) -> dict[str, Any]:
        return {"credit_cost": self.credit_cost, "credits_remaining": self.credits_remaining}


async def submit(session: AsyncSession, principal: Principal, op: Operation,
                 params: dict[str, Any], *, sync: bool, options: JobOptions | None = None,
                 base_url: str = "") -> Accepted:
    """Add the job (and its credit reservation) to ``session``; raises
    ``credits.InsufficientCredits`` when the tenant cannot pay for it. ``options`` carries the
    job's own ``webhook_url``/``webhook_events`` (kept in the same transaction); ``base_url`` is
    the API base the client used, for the result URLs in its webhook payloads."""
    metered = not principal.limits.unmetered
    cost = op.cost(params) if metered else 0
    job = await jobs.create_job(session, tenant_id=principal.tenant_id, provider=op.provider,
                                operation=op.name, params=params, sync=sync, credit_cost=cost)
    remaining = None
    if metered:
        remaining = await credits.reserve(session, principal.tenant_id, job.id, cost)
    if options is not None and options.webhook_url:
        subscribe_job(session, job.id, options, base_url)
    return Accepted(job, cost, remaining)
