"""Request dependencies: settings, database session, the calling tenant, the public base URL.

``Annotated`` aliases (``SessionDep``, ``PrincipalDep``) keep route signatures readable.
"""

from __future__ import annotations

import time
from typing import Annotated, AsyncIterator

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import ApiError
from core.plans import WINDOW_SECONDS
from core.settings import Settings
from core.tenants import Principal, authenticate, hash_key

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


# Dependencies are ``async def`` even when they do not await: FastAPI runs a plain ``def``
# dependency in a worker thread, a thread hand-off per request for a one-line lookup.
async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


class AuthCache:
    """Recently verified keys, so a burst of requests costs one lookup (revocation takes
    effect within ``ttl`` seconds)."""

    def __init__(self, ttl: float, size: int = 10_000):
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[digest] = (time.monotonic() + self.ttl, principal)


async def get_principal(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> Principal:
    return await principal_of(request, key)


async def principal_of(request: Request, key: str | None) -> Principal:
    if not key:
        raise ApiError(401, "missing API key: send it in the X-API-Key header",
                       headers={"WWW-Authenticate": "APIKey"})
    settings: Settings = request.app.state.settings
    cache: AuthCache = request.app.state.auth_cache
    digest = hash_key(settings.secret_key, key)
    principal = cache.get(digest)
    if principal is None:
        async with request.app.state.sessions() as session:
            principal = await authenticate(session, digest, request.app.state.plan_grid)
        if principal is None:
            raise ApiError(401, "invalid API key", headers={"WWW-Authenticate": "APIKey"})
        cache.put(digest, principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def base_url_of(request: Request) -> str:
    configured = request.app.state.settings.public_base_url
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/")


async def base_url(request: Request) -> str:
    return base_url_of(request)


BaseUrlDep = Annotated[str, Depends(base_url)]


def reads_bucket(principal: Principal) -> str:
    """The limiter key of the tenant's status and account reads (one budget for all of them)."""
    return f"{principal.tenant_id}:reads"


def rate_limited(policy: str):
    """A dependency that counts the request against the tenant's ``policy`` budget:
    ``"endpoint"`` (per endpoint, the plan's rpm) or ``"reads"`` (status/account reads)."""

    # The key is read here rather than through ``PrincipalDep``: one dependency level less
    # for FastAPI to solve on every request (the security scheme is the same).
    async def check(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> Principal:
        principal = await principal_of(request, key)
        limits = principal.limits
        if policy == "endpoint":
            quota, bucket = limits.rpm, f"{principal.tenant_id}:endpoint:{request.scope['route'].path}"
        else:
            quota, bucket = limits.status_rpm, reads_bucket(principal)
        decision = await request.app.state.limiter.hit(bucket, quota, WINDOW_SECONDS)
        request.state.ratelimit_headers = decision.headers(policy)
        if not decision.allowed:
            what = "this endpoint" if policy == "endpoint" else "status and account reads"
            raise ApiError(
                429, f"rate limit of {quota} requests per {WINDOW_SECONDS} s for {what} reached "
                     f"(plan {principal.plan}); a request slot frees in {decision.retry_after} s",
                code="rate_limited", limit=quota, window_seconds=WINDOW_SECONDS,
                policy=policy, retry_after=decision.retry_after)
        return principal

    return check


EndpointLimited = Annotated[Principal, Depends(rate_limited("endpoint"))]
ReadLimited = Annotated[Principal, Depends(rate_limited("reads"))]
