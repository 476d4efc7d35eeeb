"""Bria's error answers, as the simulator gives them: the error body, and the answer to an
HTTP-level fault (429 with Retry-After, 500, 503) of a fault rule."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from providers.simulator.faults import FaultRule


def bria_error(
    http_status: int, message: str, details: str = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    """Bria's error body: ``{"error": {"code", "message", "details"}}``."""
    body = {"error": {"code": http_status, "message": message, "details": details}}
    return JSONResponse(body, status_code=http_status, headers=headers)


def http_fault(rule: FaultRule) -> JSONResponse | None:
    """The response for an HTTP-level fault (429/500/503); ``None`` for the other kinds."""
    if rule.kind == "429":
        headers = {"Retry-After": _format_seconds(rule.retry_after)} if rule.retry_after is not None else None
        return bria_error(429, rule.message or "Too Many Requests", "rate limit exceeded (simulated)", headers)
    if rule.kind in ("500", "503"):
        status = int(rule.kind)
        reason = "Internal Server Error" if status == 500 else "Service Unavailable"
        return bria_error(status, rule.message or reason, "simulated failure")
    return None


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
