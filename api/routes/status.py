"""Status reads: Bria's ``GET /api/v1/bria/status/{task_id}`` and the generic job view."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import BaseUrlDep, ReadLimited, SessionDep, SettingsDep
from api.errors import ApiError
from core import jobs
from core.models import Job
from core.results import job_document, status_document

router = APIRouter()


async def _visible_job(session: SessionDep, job_id: str, tenant_id: str,
                       provider: str | None = None) -> Job:
    job = await jobs.get_job(session, job_id, tenant_id)
    if job is None or (provider is not None and job.provider != provider):
        raise ApiError(404, f"request {job_id} not found or expired", code="not_found")
    return job


@router.get(
    "/api/v1/bria/status/{task_id}",
    tags=["Status"],
    summary="Bria Get Status",
    responses={404: {"description": "Request ID not found or expired"}},
)
async def bria_status(task_id: str, principal: ReadLimited, session: SessionDep,
                      settings: SettingsDep, base: BaseUrlDep) -> dict[str, Any]:
    """Status of an asynchronous Bria request: IN_PROGRESS, COMPLETED (with ``result``) or
    ERROR (with ``error``). Result URLs are signed and expire (``result.expires_at``)."""
    job = await _visible_job(session, task_id, principal.tenant_id, provider="bria")
    return JSONResponse(status_document(job, settings, base))  # plain JSON types: no re-encoding


@router.get("/api/v1/jobs/{job_id}", tags=["Jobs"], summary="Get Job")
async def get_job(job_id: str, principal: ReadLimited, session: SessionDep,
                  settings: SettingsDep, base: BaseUrlDep) -> dict[str, Any]:
    """Any provider's job: the status document plus state, progress, attempts and times."""
    job = await _visible_job(session, job_id, principal.tenant_id)
    doc = job_document(job, settings, base)
    doc["queue_position"] = await jobs.queue_position(session, job)
    return JSONResponse({"status": "success", "result": doc})
