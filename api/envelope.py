"""The envelope of every answer that is not a validation error (those keep FastAPI's
``{"detail": [...]}``, as the reference documents): ``{"status": "success", "result": …}`` or
``{"status": "error", "error": {"code", "message", …}}`` (rendered by api/errors.py)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


def success(result: Any) -> dict[str, Any]:
    """A success answer for a route to return (FastAPI encodes it)."""
    return {"status": "success", "result": result}


def success_response(result: Any, status_code: int = 200) -> JSONResponse:
    """The same as a response object: another status code, or a result of plain JSON types
    sent without FastAPI's re-encoding."""
    return JSONResponse(success(result), status_code=status_code)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "message": message, **extra}}
