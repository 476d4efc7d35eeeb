"""Job control that works for every provider: ``DELETE /api/v1/jobs/{id}`` (core/jobs/cancel.py)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import BaseUrlDep, EndpointLimited, SessionDep, SettingsDep
from api.envelope import success_response
from api.errors import ApiError, expired
from api.strict import StrictRoute
from core.jobs.cancel import cancel_job
from core.jobs.states import JobStatus
from core.models import Job
from core.results import job_document
from providers.registry import BY_NAME
from workers.app import CANCEL_TASK, poll_queue, publish

router = APIRouter(route_class=StrictRoute)

_CANCEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Cancelled: the job document (`state` CANCELLED, status ERROR with code `cancelled`), "
                         "`cancelled_from` (the state it was in) and `credits_captured` (true: the upstream "
                         "bills the task regardless, so its credits are kept)",
          "content": {"application/json": {"example": {"status": "success", "result": {
              "status": "ERROR", "request_id": "568acbc8271246b8b460a9db4d23bbaa", "result": None,
              "error": {"code": "cancelled", "message": "cancelled by the client (queued)"},
              "id": "568acbc8271246b8b460a9db4d23bbaa", "provider": "bria", "operation": "bria.generate_image",
              "state": "CANCELLED", "progress": None, "attempts": 0, "created_at": "2026-12-06T08:00:00Z",
              "started_at": None, "finished_at": "2026-12-06T08:00:05Z", "expires_at": "2026-12-09T08:00:05Z",
              "retained_until": "2026-12-09T08:00:05Z", "retention_seconds": 259200,
              "cancelled_from": "QUEUED", "credits_captured": False}}}}},
    404: {"description": "`not_found`: no such job of this tenant; `expired`: past its retention"},
    409: {"description": "The job had already finished; `state` says how",
          "content": {"application/json": {"example": {"status": "error", "error": {
              "code": "job_finished", "state": "COMPLETED",
              "message": "job 568acbc8271246b8b460a9db4d23bbaa already finished (COMPLETED)"}}}}},
}


@router.delete("/api/v1/jobs/{job_id}", tags=["Jobs"], summary="Cancel Job", responses=_CANCEL_RESPONSES)
async def cancel(job_id: str, request: Request, principal: EndpointLimited, session: SessionDep,
                 settings: SettingsDep, base: BaseUrlDep) -> Any:
    """Cancel any job of yours. A queued or held job is cancelled at once and its credits are
    released. A running job is cancelled here and stopped upstream where its provider can (its
    credits released); where the provider cannot stop it (Bria, OpenAI), the upstream finishes
    and bills the task, so its credits are kept (`credits_captured: true`), and it is no longer
    polled. A synchronous request waiting on the job answers at once; the `job.cancelled`
    webhook event is sent. The job then reads `ERROR` with code `cancelled` in Bria's status
    document and `state: CANCELLED` here. A finished job answers 409 with its state."""
    outcome = await session.run_sync(lambda s: cancel_job(
        s, principal.tenant_id, job_id, settings.retention_seconds,
        lambda provider: provider in BY_NAME and BY_NAME[provider].upstream_cancel))
    if outcome is None:
        raise ApiError(404, f"job {job_id} not found", code="not_found")
    if not outcome.cancelled:
        await session.rollback()
        if outcome.previous == JobStatus.EXPIRED.value:
            raise expired(job_id, None)
        raise ApiError(409, f"job {job_id} already finished ({outcome.previous})", code="job_finished",
                       state=outcome.previous)
    await session.commit()
    await request.app.state.waiters.announce(job_id)  # sync waiters answer, caches forget it
    if outcome.tasks:
        try:
            await run_in_threadpool(publish, CANCEL_TASK, job_id, poll_queue(outcome.provider))
        except Exception:  # noqa: BLE001 - the job stays cancelled; the task runs to its end
            request.app.state.log.warning("upstream cancel of job %s not published", job_id, exc_info=True)
    doc = job_document(await session.get(Job, job_id), settings, base)
    return success_response({**doc, "cancelled_from": outcome.previous,
                             "credits_captured": outcome.captured})
