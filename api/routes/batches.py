"""Batches: bulk uploads of job requests (core/batches.py holds the rules)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from api import idempotency
from api.deps import BaseUrlDep, EndpointLimited, ReadLimited, SessionDep, SettingsDep
from api.envelope import success_response
from api.errors import ApiError
from core import batches
from core.credits import InsufficientCredits
from core.idempotency import fingerprint, link
from core.models import Batch
from core.notify import ALL
from core.tenants import Principal
from core.retention import MIN_SECONDS
from providers.base import InvalidRequest
from providers.registry import OPERATIONS
from api.strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["Batches"])

JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines", "application/jsonlines")
_LINE = {"type": "object", "required": ["custom_id", "endpoint", "body"], "properties": {
    "custom_id": {"type": "string", "maxLength": batches.MAX_CUSTOM_ID, "description": "unique within the batch"},
    "endpoint": {"type": "string", "example": "/api/v1/bria/image/generation/generate-image"},
    "method": {"type": "string", "enum": ["POST"]},
    "body": {"type": "object", "description": "the endpoint's request body, validated as the endpoint does"}}}
_OPTIONS = {
    "on_invalid": {"type": "string", "enum": ["reject", "skip"], "default": "reject"},
    "webhook_url": {"type": "string", "description": "receives batch.completed / batch.cancelled"},
    "webhook_events": {"type": "array", "items": {"type": "string"},
                       "description": "per-job events to send too: job.started, job.completed, job.failed"},
    "retention_seconds": {"type": "integer", "minimum": MIN_SECONDS, "example": 86400,
                          "description": "how long each job's outputs are kept after it finishes (60 up to "
                                         "VISIONGATE_MAX_RETENTION_SECONDS); default: the server's retention"}}
OPTION_NAMES = tuple(_OPTIONS)
CREATE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "JSONL, one request per line"},
        **{k: {**v, "type": "string"} for k, v in _OPTIONS.items()}}},
        "example": {"retention_seconds": "3600", "on_invalid": "skip"}},
    "application/json": {"schema": {"type": "object", "required": ["requests"], "properties": {
        "requests": {"type": "array", "items": _LINE}, **_OPTIONS}}, "example": {
        "requests": [{"custom_id": "a", "endpoint": "/api/v1/bria/image/generation/generate-image",
                      "body": {"prompt": "a red bicycle"}}], "retention_seconds": 3600}},
    "application/jsonl": {"schema": {"type": "string", "description": "JSONL, one request per line"}},
}}}


def _options(values: dict[str, Any], body_fields: set[str]) -> batches.BatchOptions:
    """Validate the batch options; an error's loc says where the field came from."""
    try:
        return batches.BatchOptions.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError([
            {**e, "loc": ("body" if e["loc"] and e["loc"][0] in body_fields else "query", *e["loc"])}
            for e in exc.errors(include_url=False)]) from None


def _body_error(loc: tuple[str, ...], msg: str, type_: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"type": type_, "loc": loc, "msg": msg, "input": None}])


@dataclass
class _Upload:
    """A batch upload read and its options validated, its lines not parsed yet."""
    options: batches.BatchOptions
    parse: Callable[[], batches.Parsed]
    where: str  # the body field the lines came in: "file" or "requests"
    content: Any  # what the idempotency fingerprint hashes: the file, the raw JSONL, the JSON body


BATCH_LOCK_SECONDS = 600.0  # an unfinished batch create holds its Idempotency-Key this long at most


@router.post("/api/v1/batches", status_code=202, summary="Create Batch",
             openapi_extra={**CREATE_BODY, "parameters": [idempotency.PARAMETER]},
             responses=idempotency.document({
                 202: {"description": "Accepted: the batch document"},
                 406: {"description": "Not enough credits for the whole batch (nothing is created)"},
                 413: {"description": "Over the batch size or line limit"}}, success=(202,),
                 invalid="Invalid lines (each listed with line number, custom_id and errors) or invalid options"))
async def create_batch(request: Request, principal: EndpointLimited, session: SessionDep,
                       settings: SettingsDep, base: BaseUrlDep,
                       on_invalid: Literal["reject", "skip"] | None = Query(None),
                       webhook_url: str | None = Query(None),
                       webhook_events: str | None = Query(None, description="comma-separated"),
                       retention_seconds: str | None = Query(None, description="an integer, seconds")) -> Response:
    """Upload many job requests at once: a **JSONL file** (multipart field `file`, or the raw
    body with `Content-Type: application/jsonl`) or `{"requests": [...]}`. Each line is
    `{"custom_id", "endpoint", "body"}`. Every line is validated like its endpoint; one invalid
    line refuses the batch (422 listing each bad line) unless `on_invalid=skip`. Limits:
    `VISIONGATE_BATCH_MAX_LINES` (50,000) lines, `VISIONGATE_BATCH_MAX_BYTES` (200 MB). The
    credits of all jobs are reserved at once; the jobs start as the tenant's concurrency allows
    (they do not count against the per-minute request limit). `retention_seconds` (60 up to
    `VISIONGATE_MAX_RETENTION_SECONDS`; form, query or JSON field) sets how long every job's
    outputs are kept after it finishes; each result line has its job's `expires_at`.

    With an `Idempotency-Key` header the whole upload is one request: a retry with the same key
    and the same upload (file contents, options) answers the first batch document again with
    `Idempotent-Replayed: true` and creates nothing."""
    fields: dict[str, Any] = {k: v for k, v in (("on_invalid", on_invalid), ("webhook_url", webhook_url),
                                                 ("webhook_events", webhook_events),
                                                 ("retention_seconds", retention_seconds)) if v is not None}
    upload = await _read_upload(request, fields, settings.batch_max_lines)
    key = idempotency.key_of(request)
    if key is None:
        return await _create(request, upload, principal, session, base, settings.batch_max_lines, None)
    print_ = await run_in_threadpool(fingerprint, "POST /api/v1/batches", fields, upload.content)
    return await idempotency.guarded(
        request, principal.tenant_id, key, print_, lock_seconds=BATCH_LOCK_SECONDS,
        work=lambda created: _create(request, upload, principal, session, base, settings.batch_max_lines,
                                     created),
        recover=lambda batch_id: _recovered(session, principal, batch_id, base))


async def _recovered(session: Any, principal: Principal, batch_id: str, base: str) -> JSONResponse:
    """The answer for a batch created under an idempotency key whose first request died before
    answering: the batch document as it stands now."""
    batch = await session.get(Batch, batch_id)
    if batch is None or batch.tenant_id != principal.tenant_id:
        raise ApiError(404, f"batch {batch_id}, created with this {idempotency.HEADER}, no longer exists",
                       code="expired", batch_id=batch_id)
    return success_response(await session.run_sync(lambda s: batches.batch_document(s, batch, base)), 202)


async def _read_upload(request: Request, fields: dict[str, Any], max_lines: int) -> _Upload:
    """Read the upload in whichever of the three forms it came; ``fields`` gains the options
    sent in the body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=20)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise _body_error(("body", "file"), "a JSONL file is required in the form field `file`", "missing")
        from_body = {k for k in OPTION_NAMES if k in form}
        fields.update({k: form[k] for k in from_body})
        return _Upload(_options(fields, from_body), lambda: batches.parse_jsonl(upload.file, max_lines, OPERATIONS),
                       "file", upload.file)
    if ctype in JSONL_TYPES:
        raw = await request.body()
        return _Upload(_options(fields, set()), lambda: batches.parse_jsonl(io.BytesIO(raw), max_lines, OPERATIONS),
                       "file", raw)
    raw = await request.body()
    try:
        data = await run_in_threadpool(json.loads, raw)
    except ValueError as exc:
        raise _body_error(("body",), f"the body is not valid JSON: {exc}", "json_invalid") from None
    if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
        raise _body_error(("body", "requests"), "send a JSONL file (multipart field `file`) or "
                          "a JSON object with a `requests` list", "missing")
    from_body = {k for k in OPTION_NAMES if k in data}
    fields.update({k: data[k] for k in from_body})
    return _Upload(_options(fields, from_body),
                   lambda: batches.parse_requests(data["requests"], max_lines, OPERATIONS), "requests", data)


async def _create(request: Request, upload: _Upload, principal: Principal, session: Any, base: str,
                  max_lines: int, created: idempotency.Created | None) -> JSONResponse:
    """Parse and check the lines, then create the batch (one transaction) and answer 202."""
    try:
        parsed = await run_in_threadpool(upload.parse)
    except batches.TooManyLines as exc:
        raise ApiError(413, str(exc), code="payload_too_large", max_lines=max_lines) from None
    if not parsed.lines and not parsed.errors:
        raise _body_error(("body", upload.where), "the batch has no request lines", "missing")
    await _resolve_lines(parsed, principal.tenant_id, session, request.app.state.upstream_defaults)
    if parsed.errors and upload.options.on_invalid == "reject":
        raise RequestValidationError([
            {"type": "invalid_line", "loc": ("body", upload.where, e["line"]),
             "msg": f"line {e['line']} is invalid: " + "; ".join(
                 f"{'.'.join(map(str, x['loc'])) or 'line'}: {x['msg']}" for x in e["errors"]),
             "input": None, "line": e["line"], "custom_id": e["custom_id"], "errors": e["errors"]}
            for e in parsed.errors])
    metered = not principal.limits.unmetered
    options = upload.options
    try:
        batch = await session.run_sync(lambda s: batches.create(
            s, tenant_id=principal.tenant_id, metered=metered, parsed=parsed, options=options, base_url=base))
        doc = await session.run_sync(lambda s: batches.batch_document(s, batch, base))
        if created is not None:  # the key knows its batch as soon as the batch exists
            claim = created.claim
            await session.execute(link(claim.tenant_id, claim.key, claim.token, batch.id))
        await session.commit()
    except InsufficientCredits as exc:
        await session.rollback()
        raise ApiError(406, f"this batch costs {exc.cost} credit(s); {exc.available} available",
                       code="insufficient_credits", credit_cost=exc.cost,
                       credits_remaining=exc.available) from None
    if created is not None:
        created(batch.id)
    return success_response(doc, 202)


async def _resolve_lines(parsed: batches.Parsed, tenant_id: str, session: Any, defaults: Any) -> None:
    """Lines whose operation has an intake hook (``Operation.resolve``: a tailored model id)
    are resolved like the single endpoint's request; a refusal makes the line invalid (its
    errors listed like schema errors). Identical requests are resolved once."""
    if not any(line.op.resolve is not None for line in parsed.lines):
        return
    kept: list[batches.Line] = []
    memo: dict[str, dict[str, Any] | InvalidRequest] = {}
    for line in parsed.lines:
        if line.op.resolve is None:
            kept.append(line)
            continue
        key = line.op.name + json.dumps(line.params, sort_keys=True)
        if key not in memo:
            try:
                memo[key] = await line.op.resolve(line.params, tenant_id, session, defaults)
            except InvalidRequest as exc:
                memo[key] = exc
        outcome = memo[key]
        if isinstance(outcome, InvalidRequest):
            parsed.errors.append({"line": line.line, "custom_id": line.custom_id, "errors": [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in outcome.errors]})
        else:
            kept.append(batches.Line(line.line, line.custom_id, line.op, outcome))
    parsed.lines = kept
    parsed.errors.sort(key=lambda e: e["line"])


async def _get(session: SessionDep, tenant_id: str, batch_id: str):
    batch = await session.run_sync(batches.get, tenant_id, batch_id)
    if batch is None:
        raise ApiError(404, f"batch {batch_id} not found", code="not_found")
    return batch


@router.get("/api/v1/batches", summary="List Batches")
async def list_batches(principal: ReadLimited, session: SessionDep, base: BaseUrlDep,
                       status: Literal["validating", "in_progress", "cancelling", "completed",
                                       "cancelled", "failed"] | None = Query(None),
                       limit: int = Query(20, ge=1, le=100),
                       after: str | None = Query(None, description="next_cursor of the previous page")) -> JSONResponse:
    """The tenant's batches, newest first, optionally by status; cursor pagination."""
    def page(s):  # noqa: ANN001, ANN202
        rows, more = batches.list_batches(s, principal.tenant_id, status=status, limit=limit, after=after)
        return [batches.batch_document(s, b, base) for b in rows], more
    docs, more = await session.run_sync(page)
    return success_response({"data": docs, "has_more": more, "next_cursor": docs[-1]["id"] if more and docs else None})


@router.get("/api/v1/batches/{batch_id}", summary="Get Batch")
async def get_batch(batch_id: str, principal: ReadLimited, session: SessionDep, base: BaseUrlDep) -> JSONResponse:
    """Status (`validating`, `in_progress`, `cancelling`, `completed`, `cancelled`, `failed`),
    job counts per state, progress, times, and the invalid lines (first 100)."""
    batch = await _get(session, principal.tenant_id, batch_id)
    return success_response(await session.run_sync(lambda s: batches.batch_document(s, batch, base)))


@router.get("/api/v1/batches/{batch_id}/results", summary="Get Batch Results",
            responses={200: {"content": {"application/jsonl": {}},
                             "description": "One JSON line per finished job, in line order"}})
async def batch_results(batch_id: str, request: Request, principal: ReadLimited, session: SessionDep,
                        settings: SettingsDep, base: BaseUrlDep) -> StreamingResponse:
    """JSONL, streamed: one line per finished job so far (`custom_id`, `request_id`, `status`
    COMPLETED/ERROR/EXPIRED, `result` with freshly signed URLs, `error` (code `expired` past
    retention), `finished_at`, `expires_at`: when the job's retention ends). Available at any
    time; lines of jobs still running appear once they finish."""
    batch = await _get(session, principal.tenant_id, batch_id)
    sessions = request.app.state.sessions

    async def lines() -> AsyncIterator[bytes]:
        cursor = None
        async with sessions() as s:
            while True:
                page = await s.run_sync(lambda ss: batches.result_page(ss, batch.id, cursor, 1000))
                if not page:
                    return
                yield "".join(json.dumps(batches.result_line(job, settings, base), separators=(",", ":"))
                              + "\n" for job in page).encode()
                cursor = (page[-1].created_at, page[-1].id)
                s.expunge_all()

    return StreamingResponse(lines(), media_type="application/jsonl",
                             headers={"Content-Disposition": f'inline; filename="{batch.id}-results.jsonl"'})


@router.get("/api/v1/batches/{batch_id}/errors", summary="Get Batch Invalid Lines",
            responses={200: {"content": {"application/jsonl": {}}}})
async def batch_errors(batch_id: str, principal: ReadLimited, session: SessionDep) -> StreamingResponse:
    """JSONL: every line refused at upload (`on_invalid=skip`): line number, custom_id, errors."""
    batch = await _get(session, principal.tenant_id, batch_id)
    errors = batch.errors or []

    async def lines() -> AsyncIterator[bytes]:
        for i in range(0, len(errors), 1000):
            yield "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in errors[i:i + 1000]).encode()

    return StreamingResponse(lines(), media_type="application/jsonl")


@router.post("/api/v1/batches/{batch_id}/cancel", summary="Cancel Batch")
async def cancel_batch(batch_id: str, principal: EndpointLimited, session: SessionDep, settings: SettingsDep,
                       base: BaseUrlDep, request: Request) -> JSONResponse:
    """Cancel the jobs that have not started (their credits are released); jobs already running
    upstream finish, and every finished job's result stays in `results`. The batch is
    `cancelling` until its last running job ends, then `cancelled`. Idempotent."""
    batch = await _get(session, principal.tenant_id, batch_id)

    def run(s):  # noqa: ANN001, ANN202
        cancelled = batches.cancel(s, batch, settings.retention_seconds)
        return cancelled, batches.batch_document(s, batch, base)

    cancelled, doc = await session.run_sync(run)
    await session.commit()
    if cancelled:  # status reads of the cancelled jobs must not answer from memory
        await request.app.state.waiters.announce(ALL)
    return success_response({**doc, "jobs_cancelled": cancelled})
