"""Tenants and API keys.

A key looks like ``vg_<43 url-safe characters>`` (256 random bits). Only
``HMAC-SHA256(secret_key, key)`` is stored, so a leaked database does not leak keys, and
lookup is one indexed equality on the hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core import credits
from core.models import ApiKey, Tenant, utcnow
from core.plans import DEFAULT_PLANS, PlanLimits, limits_for, validate_overrides

KEY_PREFIX = "vg_"
PLANS = tuple(DEFAULT_PLANS)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant behind a valid key, with its effective limits."""

    tenant_id: str
    tenant_name: str
    plan: str
    key_id: str
    limits: PlanLimits


def hash_key(secret_key: str, key: str) -> str:
    return hmac.new(secret_key.encode(), key.encode(), hashlib.sha256).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def get_or_create_tenant(session: Session, name: str, plan: str = "free",
                         grid: dict[str, PlanLimits] | None = None) -> Tenant:
    """The tenant called ``name``; a new one gets its plan's initial credits (a ledger grant)."""
    grid = grid or DEFAULT_PLANS
    if plan not in grid:
        raise ValueError(f"unknown plan {plan!r}; choose one of {', '.join(grid)}")
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name, plan=plan, credits=0)
        session.add(tenant)
        session.flush()
        if grid[plan].initial_credits:
            credits.grant(session, tenant.id, grid[plan].initial_credits, f"initial credits of plan {plan}")
            session.refresh(tenant)
    return tenant


def set_plan(session: Session, name: str, plan: str, grid: dict[str, PlanLimits]) -> Tenant:
    if plan not in grid:
        raise ValueError(f"unknown plan {plan!r}; choose one of {', '.join(grid)}")
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise LookupError(f"no tenant called {name!r}")
    tenant.plan = plan
    return tenant


def set_limits(session: Session, name: str, overrides: dict[str, Any]) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise LookupError(f"no tenant called {name!r}")
    tenant.limits = {**(tenant.limits or {}), **validate_overrides(overrides)} or None
    return tenant


def create_key(session: Session, secret_key: str, tenant: Tenant, *, name: str = "",
               key: str | None = None) -> tuple[ApiKey, str]:
    """Create a key for ``tenant``; returns the row and the plaintext key (shown once).

    ``key`` fixes the plaintext (the development key from ``VISIONGATE_DEV_API_KEY``); an
    existing row with the same hash is reused, so doing this at every start is idempotent.
    """
    plaintext = key or generate_key()
    digest = hash_key(secret_key, plaintext)
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if row is not None:
        if row.tenant_id != tenant.id:
            raise ValueError("that key already belongs to another tenant")
        row.revoked_at = None
        return row, plaintext
    row = ApiKey(tenant_id=tenant.id, prefix=plaintext[:10], key_hash=digest, name=name)
    session.add(row)
    session.flush()
    return row, plaintext


def revoke_key(session: Session, prefix_or_id: str) -> int:
    rows = session.scalars(
        select(ApiKey).where((ApiKey.id == prefix_or_id) | (ApiKey.prefix == prefix_or_id))
    ).all()
    for row in rows:
        row.revoked_at = utcnow()
    return len(rows)


async def authenticate(session: AsyncSession, digest: str,
                       grid: dict[str, PlanLimits] | None = None) -> Principal | None:
    """The tenant behind the key whose ``hash_key`` is ``digest``, unless revoked."""
    row = (
        await session.execute(
            select(ApiKey.id, Tenant.id, Tenant.name, Tenant.plan, Tenant.limits)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    key_id, tenant_id, tenant_name, plan, overrides = row
    return Principal(tenant_id=tenant_id, tenant_name=tenant_name, plan=plan, key_id=key_id,
                     limits=limits_for(grid or DEFAULT_PLANS, plan, overrides))
