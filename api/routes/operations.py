"""Routes derived from the providers' operation tables: one generic handler per kind.

A JOB operation's route validates the body with the operation's request model, persists the
job, publishes it on the provider's queue and answers 202 with the status URL, or, with
``sync: true``, waits (up to the server's sync deadline) and answers 200 with the result.
"""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from api import idempotency
from api.deps import EndpointLimited, base_url_of
from api.envelope import success, success_response
from api.errors import ApiError, call_upstream
from core import intake
from core.idempotency import CLAIM_GRACE_SECONDS, Replay, fingerprint
from core.credits import InsufficientCredits
from core.jobs.states import FINISHED_OR_EXPIRED, JobStatus, public_status, values
from core.models import Job, Tenant
from core.results import error_body, input_fault, result_body
from core.settings import Settings
from core.tenants import Principal
from core.webhooks.schemas import (DEFAULT_JOB_EVENTS, JOB_EVENTS, JOB_PROGRESS, PROGRESS_GAP_SECONDS,
                                   SHORT_NAMES, JobOptions)
from core import media_inputs
from providers.base import InvalidRequest, Kind, Operation
from providers.plugin import UpstreamDefaults
from providers.registry import BY_NAME, OPERATIONS, TABLES, build_adapters
from api.strict import StrictRoute

FINAL_VALUES = frozenset(values(FINISHED_OR_EXPIRED))  # a sync wait ends on any of them

WEBHOOK_OPTIONS_DOC = f"""

**Webhooks** (visiongate extension; the fields are read from the same JSON body): `webhook_url`
(http/https, public address) receives the job's events signed per Standard Webhooks;
`webhook_events` picks them: {", ".join(f"`{e}`" for e in JOB_EVENTS)} (or
{", ".join(f"`{short}`" for short in SHORT_NAMES)}; `{JOB_PROGRESS}` at most once per job every
{PROGRESS_GAP_SECONDS:.0f} s), default the final events ({", ".join(f"`{e}`" for e in DEFAULT_JOB_EVENTS)}).
A bad value answers 422 with `loc: ["body", "webhook_url"]` (or `webhook_events`) and creates no
job.

**Retention** (visiongate extension, same JSON body): `retention_seconds`, an integer from 60 to
the server's maximum (`VISIONGATE_MAX_RETENTION_SECONDS`, default 604800 = 7 days), sets how long
the job's outputs are kept after it finishes; default the server's retention
(`VISIONGATE_RETENTION_SECONDS`, 72 h). Example: `{{"prompt": "a red bicycle",
"retention_seconds": 3600}}`. The status document's `expires_at` says when the job expires (null
until it finishes); result URLs can be re-minted by reading the status again until then, and
afterwards every read of the job answers 404 with code `expired`. A value that is not an integer
or is out of range answers 422 with `loc: ["body", "retention_seconds"]` and creates no job."""

JOB_OPTIONS = ("webhook_url", "webhook_events", "retention_seconds")

IDEMPOTENCY_DOC = """

**Retries** (visiongate extension): send an `Idempotency-Key` header and a retry of the same
request within 24 h answers the first answer again (`Idempotent-Replayed: true`) instead of
creating and charging a second job. The same key with another body answers 422
`idempotency_key_reused`; while the first request still runs (a synchronous wait included), 409
`idempotency_in_progress` with `Retry-After: 1`."""


def status_url(base: str, provider: str, job_id: str) -> str:
    """Where a client reads the job: its provider's status route, or the job view."""
    return base + BY_NAME[provider].dialect.status_path(job_id)


def _accepted(base: str, accepted: intake.Accepted) -> JSONResponse:
    return success_response({"request_id": accepted.job_id, "status": "IN_PROGRESS",
                             "status_url": status_url(base, accepted.provider, accepted.job_id),
                             **accepted.receipt()}, status_code=202)


async def job_options(request: Request, settings: Any) -> JobOptions | None:
    """``webhook_url`` / ``webhook_events`` / ``retention_seconds`` from the job's JSON body.
    They are not fields of the operation's request model (that stays exactly the reference's),
    so they are read from the same body here; a bad value is a 422 like any other field, and no
    job is created."""
    raw = await request.json()  # already parsed for the model: Starlette caches it
    if not isinstance(raw, dict) or not any(name in raw for name in JOB_OPTIONS):
        return None
    try:
        return JobOptions.model_validate(raw, context={"allow_hosts": settings.outbound_allow_hosts,
                                                       "max_retention": settings.retention_limit})
    except ValidationError as exc:
        raise RequestValidationError([
            {**e, "loc": ("body", *(e["loc"] or ("webhook_events",)))}  # ctx kept: {"le": the limit}
            for e in exc.errors(include_url=False)]) from None


def make_job_endpoint(op: Operation):
    model: type[BaseModel] = op.request_model
    body_type = Annotated[model, Form()] if op.body == "form" else model
    always_sync = BY_NAME[op.provider].dialect.always_sync

    # Only what every request needs is a dependency (each costs FastAPI's dependency solving
    # per request): settings and base URL are read from the app, a session is opened only by
    # the operations that read the database at intake, and by sync waits. The Idempotency-Key
    # header is read by hand (api/idempotency.py): without it a request costs nothing more.
    async def endpoint(body: body_type, principal: EndpointLimited,  # type: ignore[valid-type]
                       request: Request) -> Any:
        key = idempotency.key_of(request)
        if key is None:
            return await run(body, principal, request, None)
        print_ = await _fingerprint(op, body, request)
        lock = request.app.state.settings.sync_deadline_seconds + CLAIM_GRACE_SECONDS
        return await idempotency.guarded(request, principal.tenant_id, key, print_,
                                         lambda created: run(body, principal, request, created),
                                         lock_seconds=lock, refresh=lambda replay: fresh_urls(request, replay),
                                         recover=lambda job_id: recovered(request, principal, job_id))

    async def run(body: Any, principal: Principal, request: Request, created: idempotency.Created | None) -> Any:
        settings: Settings = request.app.state.settings
        base = base_url_of(request)
        run_op, params = await prepare(op, body.model_dump(mode="json"))
        if run_op.resolve is not None:
            async with request.app.state.sessions() as session:
                params = await resolve(run_op, params, principal.tenant_id, session,
                                       request.app.state.upstream_defaults)
        sync = always_sync or bool(params.get("sync", False))
        options = await job_options(request, settings) if op.body != "form" else None
        try:
            accepted = await request.app.state.intake.submit(principal, run_op, params, sync=sync,
                                                             options=options, base_url=base,
                                                             key=created.claim if created else None)
        except InsufficientCredits as exc:
            raise ApiError(406, str(exc), code="insufficient_credits", credit_cost=exc.cost,
                           credits_remaining=exc.available) from None
        if created is not None:  # from here on the answer is the key's to replay
            created(accepted.job_id, _accepted(base, accepted))
        if not sync:
            return _accepted(base, accepted)
        app, job_id = request.app, accepted.job_id

        async def is_final() -> bool:
            async with app.state.sessions() as s:
                state = await s.scalar(select(Job.status).where(Job.id == job_id))
            return state in FINAL_VALUES

        done = await app.state.waiters.wait(job_id, settings.sync_deadline_seconds, is_final)
        if not done:
            return _accepted(base, accepted)
        async with app.state.sessions() as session:
            job = await session.get(Job, job_id)
        if job.status == JobStatus.COMPLETED.value:
            return success({"request_id": job.id, "status": "COMPLETED",
                            "status_url": status_url(base, job.provider, job.id),
                            **result_body(job, settings, base), **accepted.receipt()})
        failure = error_body(job)
        if job.status == JobStatus.CANCELLED.value:  # DELETE /api/v1/jobs/{id} while it waited
            raise ApiError(409, failure["message"], code="cancelled", request_id=job.id,
                           status_url=status_url(base, job.provider, job.id))
        if input_fault(failure["code"]):
            # The client's own input (a blocked or unreachable URL, a file that is not an image,
            # an input the upstream refused): a 422 like any bad field, not a gateway failure.
            raise ApiError(422, failure["message"], code=failure["code"], request_id=job.id,
                           status_url=status_url(base, job.provider, job.id))
        raise ApiError(502, failure["message"], code=failure["code"], request_id=job.id,
                       status_url=status_url(base, job.provider, job.id))

    endpoint.__name__ = op.name.replace(".", "_")
    return endpoint


_INLINE_HASH_BYTES = 64 * 1024  # larger bodies are fingerprinted off the event loop


async def _fingerprint(op: Operation, body: BaseModel, request: Request) -> str:
    """The request's idempotency fingerprint: the endpoint and the JSON body as sent (canonical:
    key order and spacing do not matter), or for a form body its validated fields (a multipart
    boundary differs from one send to the next)."""
    endpoint = f"{op.method} {op.path}"
    if op.body == "form":
        return fingerprint(endpoint, body.model_dump(mode="json"))
    raw = await request.json()  # already parsed for the model: Starlette caches it
    if len(await request.body()) < _INLINE_HASH_BYTES:
        return fingerprint(endpoint, raw)
    return await run_in_threadpool(fingerprint, endpoint, raw)


async def recovered(request: Request, principal: Principal, job_id: str) -> JSONResponse:
    """The answer for a job created under an idempotency key whose first request died before
    answering (api/idempotency.py): the job as it stands now, in the shape of the 202 (with the
    result when it has completed)."""
    async with request.app.state.sessions() as session:
        job = await session.get(Job, job_id)
        balance = None if principal.limits.unmetered else await session.scalar(
            select(Tenant.credits).where(Tenant.id == principal.tenant_id))
    if job is None or job.tenant_id != principal.tenant_id:
        raise ApiError(404, f"request {job_id}, created with this {idempotency.HEADER}, no longer exists",
                       code="expired", request_id=job_id)
    base = base_url_of(request)
    doc: dict[str, Any] = {"request_id": job.id, "status": public_status(job.status),
                           "status_url": status_url(base, job.provider, job.id), "credit_cost": job.credit_cost,
                           "credits_remaining": balance}
    if job.status == JobStatus.COMPLETED.value:
        doc["result"] = result_body(job, request.app.state.settings, base)
    elif doc["status"] == "ERROR":
        doc["error"] = error_body(job)
    return success_response(doc, status_code=202)


async def fresh_urls(request: Request, replay: Replay) -> str:
    """A replayed synchronous 200 with result URLs gets freshly signed ones (the stored ones
    may have expired since; ``VISIONGATE_URL_TTL_SECONDS``); any other answer is replayed as
    stored."""
    doc = idempotency.replay_json(replay) if replay.status_code == 200 and replay.request_id else None
    result = doc.get("result") if isinstance(doc, dict) else None
    if not isinstance(result, dict) or "urls" not in result:
        return replay.body
    async with request.app.state.sessions() as session:
        job = await session.get(Job, replay.request_id)
    if job is None or job.status != JobStatus.COMPLETED.value:
        return replay.body
    result.update(result_body(job, request.app.state.settings, base_url_of(request)))
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


async def prepare(op: Operation, params: dict[str, Any]) -> tuple[Operation, dict[str, Any]]:
    """The operation that really runs and its params (an alias becomes its canonical operation;
    base64 media are decoded and checked off the event loop): any problem is a 422 naming the
    field, before anything is created. See ``core.media_inputs.prepare_request``."""
    if op.alias_of is None and all(params.get(spec.field) is None for spec in op.inputs):
        return op, params  # no media sent (a plain prompt): nothing to decode, no thread hop
    run_op, params, errors = await run_in_threadpool(media_inputs.prepare_request, op, params, OPERATIONS)
    if errors:
        raise RequestValidationError(errors)
    return run_op, params


async def resolve(op: Operation, params: dict[str, Any], tenant_id: str, session: Any,
                  defaults: UpstreamDefaults) -> dict[str, Any]:
    """The operation's intake hook that needs the database (``Operation.resolve``, e.g. a
    tenant's tailored model id → Bria's): its ``InvalidRequest`` is a 422 naming the field, and
    no job is created. Operations without a hook pass through unchanged."""
    if op.resolve is None:
        return params
    try:
        return await op.resolve(params, tenant_id, session, defaults)
    except InvalidRequest as exc:
        await session.rollback()
        raise RequestValidationError(exc.errors) from None


def _quick_provider(app: Any, name: str) -> Any:
    providers = getattr(app.state, "providers", None)
    if providers is None:
        providers = app.state.providers = build_adapters(app.state.settings.upstream_defaults())
    return providers[name]


def make_quick_endpoint(op: Operation):
    """A ``Kind.QUICK`` operation: validated like a job, then one inline upstream call (in a
    thread: the adapters are synchronous) whose answer is the ``result``. Upstream errors map to
    the error envelope: 429 → 429 with Retry-After, timeouts → 504, other retryable → 502,
    rejected input (upstream 400/422) → 422, other permanent errors → 502."""
    model: type[BaseModel] = op.request_model
    body_type = Annotated[model, Form()] if op.body == "form" else model

    async def endpoint(body: body_type, principal: EndpointLimited, request: Request) -> Any:  # type: ignore[valid-type]
        run_op, params = await prepare(op, body.model_dump(mode="json"))
        provider = _quick_provider(request.app, run_op.provider)
        result = await call_upstream(provider.call, run_op, params)
        return success(result)

    endpoint.__name__ = op.name.replace(".", "_")
    return endpoint


def form_paths() -> frozenset[str]:
    """Paths whose operations take form bodies (IntakeMiddleware leaves their content type alone)."""
    return frozenset(op.path for table in TABLES.values() for op in table if op.body == "form")


def build_router() -> APIRouter:
    router = APIRouter(route_class=StrictRoute)
    for table in TABLES.values():
        for op in table:
            if op.kind is Kind.QUICK:
                router.add_api_route(
                    op.path, make_quick_endpoint(op), methods=[op.method], summary=op.summary,
                    description=op.description, tags=list(op.tags), deprecated=op.deprecated, status_code=200,
                    responses={401: {"description": "Missing or invalid API key"},
                               429: {"description": "Rate limit reached (ours or the upstream's; see Retry-After)"},
                               502: {"description": "The upstream failed"},
                               504: {"description": "The upstream did not answer in time"}})
                continue
            if op.kind is not Kind.JOB:
                raise NotImplementedError(f"{op.name}: only JOB and QUICK operations are routed so far")
            router.add_api_route(
                op.path, make_job_endpoint(op), methods=[op.method], summary=op.summary,
                description=(op.description + WEBHOOK_OPTIONS_DOC + IDEMPOTENCY_DOC).strip(), tags=list(op.tags),
                deprecated=op.deprecated, status_code=200,
                responses=idempotency.document({
                    202: {"description": "Accepted: the job runs; poll status_url"},
                    401: {"description": "Missing or invalid API key"},
                    406: {"description": "Not enough credits (no job is created)"},
                    413: {"description": "Request body too large"},
                    429: {"description": "Rate limit reached (see Retry-After)"}}, success=(200, 202)),
                openapi_extra={"parameters": [idempotency.PARAMETER]},
            )
    return router
