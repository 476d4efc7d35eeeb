"""Result downloads through signed, expiring URLs (no API key needed: the URL is the grant).

A file's key is ``<tenant>/<job>/<n>.<ext>``. When a genuine link finds no file, or is itself
past its time, the job it belongs to says why: a job past its retention answers 404
``expired`` (the link's signature already proves the caller was handed it, so this tells them
nothing new); otherwise an old link is 410 ``link_expired`` (read the status again for a fresh
one) and a missing file 404 ``not_found``.
"""

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from api.deps import SettingsDep
from api.errors import ApiError, expired
from core.jobs import queries
from core.jobs.states import is_expired
from core.results import iso
from core.signing import Verdict, verify
from api.strict import StrictRoute

router = APIRouter(route_class=StrictRoute)


async def _expired_job(request: Request, key: str) -> ApiError | None:
    """404 ``expired`` when ``key`` is a file of a job past its retention, else None."""
    tenant_id, _, rest = key.partition("/")
    job_id = rest.partition("/")[0]
    if not tenant_id or not job_id:
        return None
    async with request.app.state.sessions() as session:
        job = await queries.find_job(session, job_id, tenant_id)
        if job is None or not is_expired(job):
            return None
        return expired(job.id, iso(job.expires_at))


@router.api_route("/files/{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def download(key: str, request: Request, settings: SettingsDep) -> FileResponse:
    verdict = verify(settings.secret_key, request.method, request.url.path,
                     request.query_params.get("expires"), request.query_params.get("signature"))
    if verdict is Verdict.INVALID:
        raise ApiError(403, "invalid signature", code="invalid_signature")
    if verdict is Verdict.EXPIRED:
        raise await _expired_job(request, key) or ApiError(
            410, "this link has expired; read the job's status again for a fresh one", code="link_expired")
    storage = request.app.state.storage
    try:
        path = storage.path(key)
    except ValueError:
        raise ApiError(404, "file not found") from None
    if not path.is_file():
        raise await _expired_job(request, key) or ApiError(404, "file not found")
    return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})
