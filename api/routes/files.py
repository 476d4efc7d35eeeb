"""Result downloads through signed, expiring URLs (no API key needed: the URL is the grant)."""

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from api.deps import SettingsDep
from api.errors import ApiError
from core.signing import Verdict, verify
from api.strict import StrictRoute

router = APIRouter(route_class=StrictRoute)


@router.api_route("/files/{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def download(key: str, request: Request, settings: SettingsDep) -> FileResponse:
    verdict = verify(settings.secret_key, request.method, request.url.path,
                     request.query_params.get("expires"), request.query_params.get("signature"))
    if verdict is Verdict.INVALID:
        raise ApiError(403, "invalid signature", code="invalid_signature")
    if verdict is Verdict.EXPIRED:
        raise ApiError(410, "this link has expired; read the job's status again for a fresh one",
                       code="link_expired")
    storage = request.app.state.storage
    try:
        path = storage.path(key)
    except ValueError:
        raise ApiError(404, "file not found") from None
    if not path.is_file():
        raise ApiError(404, "file not found or past retention")
    return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})
