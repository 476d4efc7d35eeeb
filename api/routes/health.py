"""Liveness (``GET /health``, as the reference documents it) and readiness (DB + broker)."""

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.envelope import success, success_response
from api.errors import error_response
from api.strict import StrictRoute

router = APIRouter(route_class=StrictRoute)


@router.get("/health", tags=["Health"], summary="Health Check")
async def health() -> dict:
    """Health check endpoint."""
    return success({"service": "visiongate", "healthy": True})


@router.get("/ready", tags=["Health"], summary="Readiness Check")
async def ready(request: Request) -> JSONResponse:
    """Reports whether the database and the broker answer."""
    checks: dict[str, str] = {}
    try:
        async with request.app.state.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await run_in_threadpool(request.app.state.check_broker)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return success_response(checks)
    return error_response(503, "not_ready", "a dependency is unavailable", checks=checks)
