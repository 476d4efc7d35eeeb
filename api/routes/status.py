"""Status reads: each provider's status route where its reference has one (Bria's
``GET /api/v1/bria/status/{task_id}``, from the plugin's dialect) and the generic job view.

The status read is what polling clients call over and over, so it has a fast path
(``StatusFastPath``): a plain ASGI layer that answers a read when everything is already known
(the key is in the auth cache, the job in the status cache or one database read away, the rate
limiter admits it) without FastAPI's routing and dependency solving, and hands every other
request (unknown key, unknown or foreign job, a 429, any error) to the route below, which
answers it with the full checks and the usual error shapes. Both produce the same document
with the same headers.
"""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.requests import Request

from api.deps import BaseUrlDep, ReadLimited, SessionDep, SettingsDep, base_url_of, reads_bucket
from api.envelope import success_response
from api.errors import ApiError, expired
from core.jobs import queries
from core.jobs.states import is_expired
from core.models import Job
from core.plans import WINDOW_SECONDS
from core.results import iso, job_document, status_document
from core.statuscache import StatusCache, StatusEntry
from core.tenants import hash_key
from api.strict import StrictRoute
from providers.registry import PLUGINS

router = APIRouter(route_class=StrictRoute)
# The reference's status routes, one per provider whose dialect has one: path prefix → provider.
STATUS_PREFIXES: dict[str, str] = {p.dialect.status_prefix: p.name for p in PLUGINS if p.dialect.status_route}


# The status routes' 404s: an id the tenant never had (unknown, another tenant's, another
# provider's at a provider's route) is `not_found`; the tenant's own job past retention is `expired`.
_EXPIRED_EXAMPLE = {"status": "error", "error": {
    "code": "expired", "request_id": "568acbc8271246b8b460a9db4d23bbaa", "expired_at": "2026-12-06T08:05:26Z",
    "message": "request 568acbc8271246b8b460a9db4d23bbaa expired at 2026-12-06T08:05:26Z: its retention "
               "ended and its results were deleted"}}
_NOT_FOUND_EXAMPLE = {"status": "error", "error": {"code": "not_found", "message": "request 0123 not found"}}
_STATUS_EXAMPLE = {"status": "COMPLETED", "request_id": "568acbc8271246b8b460a9db4d23bbaa", "result": {
    "image_url": "https://gateway.example/files/…/0.png?expires=1796461526&signature=…", "urls": ["…"],
    "seed": 42, "expires_at": "2026-12-03T09:05:26Z"}, "error": None, "expires_at": "2026-12-06T08:05:26Z"}
_RUNNING_EXAMPLE = {"status": "IN_PROGRESS", "request_id": "568acbc8271246b8b460a9db4d23bbaa", "result": None,
                    "error": None, "progress": 0.4}
_HELD_EXAMPLE = {"status": "IN_PROGRESS", "request_id": "568acbc8271246b8b460a9db4d23bbaa", "result": None,
                 "error": None, "queue_position": 3}
NOT_FOUND_RESPONSES: dict[int | str, dict[str, Any]] = {404: {
    "description": "`not_found`: no such request for this API key's tenant. `expired`: the request's retention "
                   "ended (`expired_at` says when) and its results were deleted",
    "content": {"application/json": {"examples": {"expired": {"value": _EXPIRED_EXAMPLE},
                                                  "not_found": {"value": _NOT_FOUND_EXAMPLE}}}}}}


async def _visible_job(session: SessionDep, job_id: str, tenant_id: str,
                       provider: str | None = None) -> Job:
    job = await queries.find_job(session, job_id, tenant_id)
    if job is None or (provider is not None and job.provider != provider):
        raise ApiError(404, f"request {job_id} not found", code="not_found")
    if is_expired(job):
        raise expired(job.id, iso(job.expires_at))
    return job


def make_status_endpoint(provider: str):
    async def provider_status(task_id: str, principal: ReadLimited, session: SessionDep,
                              settings: SettingsDep, base: BaseUrlDep, request: Request) -> dict[str, Any]:
        """Status of an asynchronous request: IN_PROGRESS, COMPLETED (with ``result``) or
        ERROR (with ``error``). Result URLs are signed and expire (``result.expires_at``); read
        the status again for fresh ones. ``expires_at`` (visiongate's, once the request has
        finished): when its retention ends; after it, 404 with code ``expired``."""
        cache: StatusCache = request.app.state.status_cache
        started = cache.begin()
        job = await _visible_job(session, task_id, principal.tenant_id, provider=provider)
        entry = StatusEntry.of(job, await queries.queue_position(session, job))
        cache.put(entry, started)
        return JSONResponse(status_document(entry, settings, base, entry.queue_position))  # plain JSON types: no re-encoding

    provider_status.__name__ = f"{provider}_status"
    return provider_status


for _plugin in PLUGINS:
    if _plugin.dialect.status_route:
        router.add_api_route(_plugin.dialect.status_route, make_status_endpoint(_plugin.name), methods=["GET"],
                             tags=["Status"], summary=_plugin.dialect.status_summary or f"{_plugin.name} status",
                             responses={**NOT_FOUND_RESPONSES, 200: {
                                 "description": "The status document. `result.expires_at`: when this read's URLs "
                                                "stop working; `expires_at` (once the request has finished): "
                                                "when its retention ends. While it runs: `progress` (0-1) once "
                                                "the upstream reports one, `queue_position` while it waits for "
                                                "one of the plan's concurrent slots (each absent when unknown)",
                                 "content": {"application/json": {"examples": {
                                     "completed": {"value": _STATUS_EXAMPLE},
                                     "running": {"value": _RUNNING_EXAMPLE},
                                     "waiting": {"value": _HELD_EXAMPLE}}}}}})


class StatusFastPath:
    """ASGI layer in front of the router: serves the providers' status routes when it can
    without FastAPI (see the module doc); otherwise passes the request on untouched. The rate
    limiter is asked last, so a request handed on was not counted here (a refused check counts
    nothing), and the route counts it once."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            for prefix, provider in STATUS_PREFIXES.items():
                if scope["path"].startswith(prefix):
                    if await self._serve(scope, receive, send, prefix, provider):
                        return
                    break
        await self.app(scope, receive, send)

    async def _serve(self, scope: dict, receive: Any, send: Any, prefix: str, provider: str) -> bool:
        job_id = scope["path"][len(prefix):]
        if not job_id or len(job_id) > 64 or "/" in job_id:
            return False
        key = next((v for n, v in scope["headers"] if n == b"x-api-key"), None)
        if not key:
            return False
        state = scope["app"].state
        settings = state.settings
        principal = state.auth_cache.get(hash_key(settings.secret_key, key.decode("latin-1")))
        if principal is None:
            return False
        cache: StatusCache = state.status_cache
        entry = cache.get(job_id)
        if entry is None:
            started = cache.begin()
            async with state.sessions() as session:
                job = await queries.get_job(session, job_id, principal.tenant_id)
                if job is None:
                    return False
                entry = StatusEntry.of(job, await queries.queue_position(session, job))
            cache.put(entry, started)
        if not entry.visible_to(principal.tenant_id, provider):
            return False
        quota = principal.limits.status_rpm
        decision = await state.limiter.hit(reads_bucket(principal), quota, WINDOW_SECONDS)
        if not decision.allowed:
            return False
        scope.setdefault("state", {})["ratelimit_headers"] = decision.headers("reads")
        doc = status_document(entry, settings, base_url_of(Request(scope)), entry.queue_position)
        await JSONResponse(doc)(scope, receive, send)  # the route's response class, so the same bytes
        return True


@router.get("/api/v1/jobs/{job_id}", tags=["Jobs"], summary="Get Job", responses=NOT_FOUND_RESPONSES)
async def get_job(job_id: str, principal: ReadLimited, session: SessionDep,
                  settings: SettingsDep, base: BaseUrlDep) -> dict[str, Any]:
    """Any provider's job: the status document plus state, progress, attempts, times and
    ``retention_seconds`` (the job's own, else the server's). ``expires_at``: when its retention
    ends (null until it finishes); after it, 404 with code ``expired``."""
    job = await _visible_job(session, job_id, principal.tenant_id)
    doc = job_document(job, settings, base)
    doc["queue_position"] = await queries.queue_position(session, job)
    return success_response(doc)
