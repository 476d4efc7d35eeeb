"""A tenant's default webhook endpoints: each receives the events it subscribes to for all the
tenant's jobs and batches."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.models import WebhookDelivery, WebhookEndpoint, new_id, utcnow
from core.results import iso
from core.webhooks.outbox import FAILED, PENDING
from core.webhooks.schemas import DEFAULT_ENDPOINT_EVENTS, EndpointIn, EndpointPatch
from core.webhooks.tenant_secrets import tenant_secret


def endpoint_document(ep: WebhookEndpoint) -> dict[str, Any]:
    return {"id": ep.id, "url": ep.url, "events": list(ep.events or []), "description": ep.description,
            "enabled": ep.enabled, "disabled_reason": ep.disabled_reason,
            "created_at": iso(ep.created_at), "updated_at": iso(ep.updated_at)}


def create_endpoint(session: Session, tenant_id: str, data: EndpointIn, base_url: str) -> WebhookEndpoint:
    now = utcnow()
    ep = WebhookEndpoint(id=new_id(), tenant_id=tenant_id, url=data.url,
                         events=list(data.events or DEFAULT_ENDPOINT_EVENTS), description=data.description,
                         enabled=data.enabled, base_url=base_url, created_at=now, updated_at=now)
    session.add(ep)
    session.flush()
    tenant_secret(session, tenant_id)
    return ep


def list_endpoints(session: Session, tenant_id: str) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
                                .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)))


def get_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    ep = session.get(WebhookEndpoint, endpoint_id) if len(endpoint_id) <= 32 else None
    return ep if ep is not None and ep.tenant_id == tenant_id else None


def update_endpoint(session: Session, ep: WebhookEndpoint, patch: EndpointPatch, base_url: str) -> WebhookEndpoint:
    values = patch.model_dump(exclude_unset=True)
    for name in ("url", "events", "description", "enabled"):
        if values.get(name) is not None:
            setattr(ep, name, values[name])
    if values.get("enabled"):
        ep.disabled_reason = None
    if "url" in values:
        ep.base_url = base_url
    ep.updated_at = utcnow()
    session.flush()
    return ep


def delete_endpoint(session: Session, ep: WebhookEndpoint) -> None:
    now = utcnow()
    session.execute(update(WebhookDelivery).where(WebhookDelivery.endpoint_id == ep.id,
                                                  WebhookDelivery.status == PENDING)
                    .values(status=FAILED, next_attempt_at=None, finished_at=now, updated_at=now,
                            last_error="the endpoint was deleted")
                    .execution_options(synchronize_session=False))
    session.delete(ep)
