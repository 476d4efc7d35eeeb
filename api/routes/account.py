"""``GET /api/v1/account``: the calling tenant's plan, limits, usage, credits and jobs."""

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from api.deps import ReadLimited, SessionDep, reads_bucket
from api.envelope import success
from core import credits
from core.jobs import queries
from core.models import Tenant
from core.plans import WINDOW_SECONDS
from providers.base import Kind
from providers.registry import TABLES
from api.strict import StrictRoute

router = APIRouter(route_class=StrictRoute)


@router.get("/api/v1/account", tags=["Account"], summary="Get Account")
async def account(request: Request, principal: ReadLimited, session: SessionDep) -> dict[str, Any]:
    """Plan and effective limits, requests used in the current window per endpoint, credits
    (available and held by unfinished jobs) and jobs running / waiting for a slot / queued."""
    limiter = request.app.state.limiter
    limits = principal.limits
    endpoints = {}
    for ops in TABLES.values():
        for op in ops:
            if op.kind is Kind.JOB:
                used = await limiter.used(f"{principal.tenant_id}:endpoint:{op.path}", WINDOW_SECONDS)
                endpoints[op.path] = {"used": used, "limit": limits.rpm,
                                      "remaining": max(0, limits.rpm - used)}
    reads = await limiter.used(reads_bucket(principal), WINDOW_SECONDS)
    available = await session.scalar(select(Tenant.credits).where(Tenant.id == principal.tenant_id))
    return success({
        "tenant": principal.tenant_name,
        "plan": principal.plan,
        "limits": {"requests_per_minute_per_endpoint": limits.rpm,
                   "status_requests_per_minute": limits.status_rpm,
                   "concurrent_jobs": limits.concurrency,
                   "unmetered": limits.unmetered},
        "usage": {"window_seconds": WINDOW_SECONDS, "endpoints": endpoints,
                  "status_reads": {"used": reads, "limit": limits.status_rpm}},
        "credits": {"available": None if limits.unmetered else int(available or 0),
                    "reserved": await credits.reserved(session, principal.tenant_id),
                    "unmetered": limits.unmetered},
        "jobs": await queries.tenant_job_counts(session, principal.tenant_id),
    })
