"""The ``Idempotency-Key`` header of the routes that create jobs and batches (the rules and the
table: core/idempotency.py; the client's view: docs/api/jobs-and-status.md, *Idempotent
requests*).

A request without the header costs nothing here: no query, no hashing. With it, ``guarded`` runs
the route's work under the key:

* the key is claimed first; a replay answers the stored status and body with
  ``Idempotent-Replayed: true``, a key used for another request answers 422
  ``idempotency_key_reused``, a key whose first request is still running answers 409
  ``idempotency_in_progress`` with ``Retry-After: 1``;
* the work links its job or batch to the key in the transaction that creates it (so a retry
  after a crash answers from that job instead of creating another: ``recover``), and reports
  when it has created it (``Created``). Every answer from then on
  is stored, errors included (a sync request whose job failed: its 422 or 502), so a retry never
  creates or charges twice; an exception after that point stores the work's fallback answer (the
  job's 202) and is raised on;
* an answer given before anything was created (invalid body, not enough credits, a 503) releases
  the key: it is not stored, and the retry runs afresh.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.errors import ApiError, error_response
from core import faultpoints, idempotency
from core.idempotency import HEADER, MAX_KEY_LENGTH, REPLAYED_HEADER
from core.intake import KeyClaim

log = logging.getLogger(__name__)

_EXAMPLE_KEY = "5f0c7a4e-1b7d-4c51-9a43-2f8e1d0b6a19"

PARAMETER: dict[str, Any] = {
    "name": HEADER, "in": "header", "required": False,
    "description": (
        f"Makes the request safe to retry (visiongate extension, Stripe's semantics): 1 to {MAX_KEY_LENGTH} visible "
        "ASCII characters, unique per request, e.g. a UUID. Within 24 h the same key with the same body answers the "
        f"first answer again (status, body, `request_id`) with `{REPLAYED_HEADER}: true`, creating and charging "
        "nothing; with another body it answers 422 `idempotency_key_reused`; while the first request is still "
        "running it answers 409 `idempotency_in_progress` (retry after `Retry-After`). Keys are per tenant. "
        "Answers given before anything was created (validation errors, 406, 429, 503) are not stored."),
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[!-~]+$"},
    "example": _EXAMPLE_KEY,
}
_REPLAYED = {REPLAYED_HEADER: {"description": "`true` when this answer is the stored answer of an earlier "
                                              f"request with the same `{HEADER}`",
                               "schema": {"type": "string", "enum": ["true"]}}}


def _error_example(code: str, message: str) -> dict[str, Any]:
    return {"application/json": {"example": {"status": "error", "error": {"code": code, "message": message}}}}


_ERROR_SCHEMA = {"type": "object", "required": ["status", "error"], "properties": {
    "status": {"type": "string", "enum": ["error"]},
    "error": {"type": "object", "required": ["code", "message"],
              "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
_CONFLICT = {
    "description": f"The first request with this `{HEADER}` is still running (`idempotency_in_progress`); "
                   "retry after `Retry-After` seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    "content": {"application/json": {"schema": _ERROR_SCHEMA, "example": {"status": "error", "error": {
        "code": "idempotency_in_progress", "retry_after": 1,
        "message": f"a request with this {HEADER} is still being processed; retry in a moment"}}}}}
_INVALID_EXAMPLES = {
    "idempotency_key_reused": {"summary": f"{HEADER} already used with a different request", "value": {
        "status": "error", "error": {"code": "idempotency_key_reused", "message": (
            f"this {HEADER} was already used for a different request (first used with POST /api/v1/…); "
            "send a new key with a new request")}}},
    "idempotency_key_invalid": {"summary": f"{HEADER} that is not 1 to {MAX_KEY_LENGTH} visible ASCII characters",
                                "value": {"detail": [{"type": "string_too_long", "loc": ["header", HEADER],
                                                      "msg": f"the {HEADER} header may have at most "
                                                             f"{MAX_KEY_LENGTH} characters, not 300",
                                                      "input": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa… (300 characters)"}]}},
}


def document(responses: dict[int | str, dict[str, Any]], success: tuple[int, ...],
             invalid: str = "Validation Error") -> dict[int | str, dict[str, Any]]:
    """``responses`` of a creating route with the header's answers added: 409, the 422 of a key
    reused for another request (``invalid`` describes the route's own 422s), and the
    ``Idempotent-Replayed`` header on the ``success`` statuses."""
    out = {**responses, 409: _CONFLICT}
    out[422] = {"description": f"{invalid}; a bad `{HEADER}` header (`detail`, `loc: [\"header\", \"{HEADER}\"]`); "
                               f"or `idempotency_key_reused` (error envelope): the key was already used with a "
                               "different request",
                "content": {"application/json": {
                    "schema": {"anyOf": [{"$ref": "#/components/schemas/HTTPValidationError"}, _ERROR_SCHEMA]},
                    "examples": _INVALID_EXAMPLES}}}
    for status in success:
        entry = dict(out.get(status, {"description": "Successful Response"}))
        entry["headers"] = {**entry.get("headers", {}), **_REPLAYED}
        out[status] = entry
    return out


def key_of(request: Request) -> str | None:
    """The request's idempotency key, None without the header; a 422 naming the header when
    it is not 1 to 255 visible ASCII characters."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    problem = idempotency.key_problem(key)
    if problem is not None:
        raise RequestValidationError([{"type": problem[0], "loc": ("header", HEADER), "msg": problem[1],
                                       "input": key}])
    return key


class Created:
    """Handed to the guarded work: ``claim`` is to be linked to the job or batch in the
    transaction that creates it (``core.idempotency.link``); call it once the job or batch
    exists, with its id and the answer to store should the rest of the request fail (None:
    keep the key unfinished)."""

    def __init__(self, claim: KeyClaim) -> None:
        self.claim = claim
        self.request_id: str | None = None
        self.fallback: Response | None = None
        self.done = False

    def __call__(self, request_id: str, fallback: Response | None = None) -> None:
        self.request_id, self.fallback, self.done = request_id, fallback, True


Work = Callable[[Created], Awaitable[Any]]
Refresh = Callable[[idempotency.Replay], Awaitable[str]]
Recover = Callable[[str], Awaitable[Response]]


async def guarded(request: Request, tenant_id: str, key: str, print_: str, work: Work, *,
                  lock_seconds: float, recover: Recover, refresh: Refresh | None = None) -> Response:
    """Run ``work`` under ``key`` (see the module docstring); ``refresh`` may rewrite a replayed
    body (fresh result URLs); ``recover(request_id)`` answers for a job or batch an earlier
    holder of the key created but died before answering."""
    sessions = request.app.state.sessions
    endpoint = f"{request.method} {getattr(request.scope.get('route'), 'path', request.url.path)}"
    async with sessions.begin() as session:
        outcome = await session.run_sync(lambda s: idempotency.claim(
            s, tenant_id, key, print_, endpoint, ttl=request.app.state.settings.idempotency_ttl_seconds,
            lock_seconds=lock_seconds))
    if isinstance(outcome, idempotency.Replay):
        body = await refresh(outcome) if refresh is not None else outcome.body
        return Response(body, outcome.status_code, media_type="application/json",
                        headers={**outcome.headers, REPLAYED_HEADER: "true"})
    if isinstance(outcome, idempotency.Reused):
        raise ApiError(422, f"this {HEADER} was already used for a different request (first used with "
                            f"{outcome.endpoint}); send a new key with a new request", code="idempotency_key_reused")
    if isinstance(outcome, idempotency.Busy):
        raise ApiError(409, f"a request with this {HEADER} is still being processed; retry in a moment",
                       code="idempotency_in_progress", headers={"Retry-After": "1"}, retry_after=1)

    token = outcome.token
    if outcome.request_id is not None:  # created by a holder that died before answering
        answer = await recover(outcome.request_id)
        await _finish(sessions, tenant_id, key, token, answer, outcome.request_id)
        answer.headers[REPLAYED_HEADER] = "true"
        return answer
    created = Created(KeyClaim(tenant_id, key, token))
    try:
        answer = await work(created)
    except ApiError as exc:
        if not created.done:
            await _release(sessions, tenant_id, key, token)
            raise
        answer = error_response(exc.status_code, exc.code, exc.message, exc.headers, **exc.extra)
    except BaseException:
        if created.done and created.fallback is not None:
            await _finish(sessions, tenant_id, key, token, created.fallback, created.request_id)
        elif not created.done:
            await _release(sessions, tenant_id, key, token)
        raise
    if not isinstance(answer, Response):
        answer = JSONResponse(jsonable_encoder(answer))
    if created.done:
        faultpoints.reached("idempotent_created")
        await _finish(sessions, tenant_id, key, token, answer, created.request_id)
    else:
        await _release(sessions, tenant_id, key, token)
    return answer


_NOT_STORED = {"content-length", "content-type"}


async def _finish(sessions: Any, tenant_id: str, key: str, token: str, answer: Response,
                  request_id: str | None) -> None:
    body = bytes(answer.body).decode("utf-8")
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_STORED}
    try:
        async with sessions.begin() as session:
            stored = await session.run_sync(lambda s: idempotency.finish(
                s, tenant_id, key, token, status_code=answer.status_code, body=body, headers=headers,
                request_id=request_id))
        if not stored:
            log.warning("idempotency key of tenant %s: the claim was taken over before %s was stored", tenant_id,
                        request_id)
    except Exception:  # the answer still goes out; a retry meets the unfinished claim (409), then takes it over
        log.warning("idempotency key of tenant %s: storing the answer for %s failed", tenant_id, request_id,
                    exc_info=True)


async def _release(sessions: Any, tenant_id: str, key: str, token: str) -> None:
    try:
        async with sessions.begin() as session:
            await session.run_sync(lambda s: idempotency.release(s, tenant_id, key, token))
    except Exception:  # the claim then lapses by itself (locked_until)
        log.warning("idempotency key of tenant %s: releasing a claim failed", tenant_id, exc_info=True)


def replay_json(replay: idempotency.Replay) -> Any:
    """The replayed body, parsed (None when it is not JSON)."""
    try:
        return json.loads(replay.body)
    except ValueError:
        return None
