"""Webhook management: the tenant's signing secret, default endpoints, and each job's (or
batch's) delivery log with redelivery. Sending happens in the worker (workers/webhooks.py)."""

from typing import Any

from fastapi import APIRouter, Body, Response

from api.deps import BaseUrlDep, EndpointLimited, ReadLimited, SessionDep, SettingsDep
from api.envelope import success
from api.errors import ApiError
from core import batches
from core.webhooks import delivery, endpoints, schemas, tenant_secrets
from core.jobs import queries
from api.strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["Webhooks"])


# --------------------------------------------------------------------------- secret
@router.get("/api/v1/webhooks/secret", summary="Get Webhook Secret")
async def get_secret(principal: ReadLimited, session: SessionDep) -> dict[str, Any]:
    """The tenant's signing secret (`whsec_…`, Standard Webhooks). Made on first use."""
    row = await session.run_sync(tenant_secrets.tenant_secret, principal.tenant_id)
    doc = tenant_secrets.secret_document(row)
    await session.commit()
    return success(doc)


@router.post("/api/v1/webhooks/secret/rotate", summary="Rotate Webhook Secret")
async def rotate_secret(principal: EndpointLimited, session: SessionDep, settings: SettingsDep,
                        grace_seconds: float | None = Body(None, embed=True, ge=0, le=7 * 86400)) -> dict[str, Any]:
    """A new secret. The previous one keeps signing for `grace_seconds` (default
    `VISIONGATE_WEBHOOK_SECRET_GRACE_SECONDS`, 24 h): meanwhile `webhook-signature` carries both
    signatures, space-separated, so receivers can switch without missing an event."""
    grace = settings.webhook_secret_grace_seconds if grace_seconds is None else grace_seconds
    row = await session.run_sync(tenant_secrets.rotate_secret, principal.tenant_id, grace)
    doc = tenant_secrets.secret_document(row)
    await session.commit()
    return success(doc)


# --------------------------------------------------------------------------- endpoints
async def _endpoint(session: SessionDep, tenant_id: str, endpoint_id: str):
    ep = await session.run_sync(endpoints.get_endpoint, tenant_id, endpoint_id)
    if ep is None:
        raise ApiError(404, f"webhook endpoint {endpoint_id} not found", code="not_found")
    return ep


@router.post("/api/v1/webhooks/endpoints", status_code=201, summary="Create Webhook Endpoint", description=(
    "A default endpoint: it receives the chosen `events` of all the tenant's jobs and batches, besides any "
    f"`webhook_url` given with a request. Events: {', '.join(f'`{e}`' for e in schemas.ALL_EVENTS)}; default "
    f"every final event ({', '.join(f'`{e}`' for e in schemas.DEFAULT_ENDPOINT_EVENTS)})."))
async def create_endpoint(data: schemas.EndpointIn, principal: EndpointLimited, session: SessionDep,
                          base: BaseUrlDep) -> dict[str, Any]:
    ep = await session.run_sync(endpoints.create_endpoint, principal.tenant_id, data, base)
    doc = endpoints.endpoint_document(ep)
    await session.commit()
    return success(doc)


@router.get("/api/v1/webhooks/endpoints", summary="List Webhook Endpoints")
async def list_endpoints(principal: ReadLimited, session: SessionDep) -> dict[str, Any]:
    rows = await session.run_sync(endpoints.list_endpoints, principal.tenant_id)
    return success([endpoints.endpoint_document(ep) for ep in rows])


@router.get("/api/v1/webhooks/endpoints/{endpoint_id}", summary="Get Webhook Endpoint")
async def get_endpoint(endpoint_id: str, principal: ReadLimited, session: SessionDep) -> dict[str, Any]:
    return success(endpoints.endpoint_document(await _endpoint(session, principal.tenant_id, endpoint_id)))


@router.patch("/api/v1/webhooks/endpoints/{endpoint_id}", summary="Update Webhook Endpoint")
async def update_endpoint(endpoint_id: str, patch: schemas.EndpointPatch, principal: EndpointLimited,
                          session: SessionDep, base: BaseUrlDep) -> dict[str, Any]:
    """Change url, events, description; `enabled: true` re-enables an endpoint disabled by a
    410 answer."""
    ep = await _endpoint(session, principal.tenant_id, endpoint_id)
    ep = await session.run_sync(lambda s: endpoints.update_endpoint(s, ep, patch, base))
    doc = endpoints.endpoint_document(ep)
    await session.commit()
    return success(doc)


@router.delete("/api/v1/webhooks/endpoints/{endpoint_id}", status_code=204, summary="Delete Webhook Endpoint")
async def delete_endpoint(endpoint_id: str, principal: EndpointLimited, session: SessionDep) -> Response:
    """Deletes the endpoint; its pending deliveries stop (they stay in the log as failed)."""
    ep = await _endpoint(session, principal.tenant_id, endpoint_id)
    await session.run_sync(lambda s: endpoints.delete_endpoint(s, ep))
    await session.commit()
    return Response(status_code=204)


# --------------------------------------------------------------------------- deliveries
async def _job(session: SessionDep, tenant_id: str, job_id: str) -> None:
    if await queries.get_job(session, job_id, tenant_id) is None:
        raise ApiError(404, f"request {job_id} not found or expired", code="not_found")


@router.get("/api/v1/jobs/{job_id}/deliveries", summary="List Job Webhook Deliveries")
async def job_deliveries(job_id: str, principal: ReadLimited, session: SessionDep) -> dict[str, Any]:
    """Every webhook delivery of the job (one per event and URL) with every attempt: time,
    trigger, HTTP status, latency, the first 1 KiB of the answer, the error."""
    await _job(session, principal.tenant_id, job_id)
    return success(await session.run_sync(
        lambda s: delivery.list_deliveries(s, principal.tenant_id, job_id=job_id)))


async def _redeliver(session: SessionDep, tenant_id: str, **where: Any) -> dict[str, Any]:
    ids = await session.run_sync(lambda s: delivery.redeliver(s, tenant_id, **where))
    await session.commit()
    if where.get("delivery_id") and not ids:
        raise ApiError(404, f"delivery {where['delivery_id']} not found", code="not_found")
    return success({"redelivered": ids})


@router.post("/api/v1/jobs/{job_id}/deliveries/redeliver", summary="Redeliver Job Webhooks")
async def redeliver_job(job_id: str, principal: EndpointLimited, session: SessionDep) -> dict[str, Any]:
    """Send all the job's deliveries again (same `webhook-id`), starting a new round of the
    retry schedule now."""
    await _job(session, principal.tenant_id, job_id)
    return await _redeliver(session, principal.tenant_id, job_id=job_id)


@router.post("/api/v1/jobs/{job_id}/deliveries/{delivery_id}/redeliver", summary="Redeliver One Job Webhook")
async def redeliver_one(job_id: str, delivery_id: str, principal: EndpointLimited,
                        session: SessionDep) -> dict[str, Any]:
    await _job(session, principal.tenant_id, job_id)
    return await _redeliver(session, principal.tenant_id, job_id=job_id, delivery_id=delivery_id)


async def _batch(session: SessionDep, tenant_id: str, batch_id: str) -> None:
    if await session.run_sync(batches.get, tenant_id, batch_id) is None:
        raise ApiError(404, f"batch {batch_id} not found", code="not_found")


@router.get("/api/v1/batches/{batch_id}/deliveries", summary="List Batch Webhook Deliveries")
async def batch_deliveries(batch_id: str, principal: ReadLimited, session: SessionDep) -> dict[str, Any]:
    """The batch's own event deliveries (`batch.completed` / `batch.cancelled`)."""
    await _batch(session, principal.tenant_id, batch_id)
    return success(await session.run_sync(
        lambda s: delivery.list_deliveries(s, principal.tenant_id, batch_id=batch_id)))


@router.post("/api/v1/batches/{batch_id}/deliveries/redeliver", summary="Redeliver Batch Webhooks")
async def redeliver_batch(batch_id: str, principal: EndpointLimited, session: SessionDep) -> dict[str, Any]:
    await _batch(session, principal.tenant_id, batch_id)
    return await _redeliver(session, principal.tenant_id, batch_id=batch_id)
