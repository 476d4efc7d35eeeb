"""What a worker does with a job, free of Celery so it can be run and tested directly.

* ``start(job_id)``  – claim the job (a duplicate message finds nothing), submit upstream.
* ``poll(job_ids)``  – a batch of jobs: one status request per unfinished upstream task (many at
  once, in a shared I/O pool), one transaction for the jobs still running; finish the done ones.

The sweeper (``sweep``, ``expire``) is workers/sweeper.py; storing a finished job's outputs,
workers/outputs.py; what every step needs, workers/context.py (``Context``).

Every failure is classified by the provider as RateLimited / Retryable / Permanent, so this
module never looks at HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select

from core import media_inputs
from core.jobs import claims, moves, sweeps, timing
from core.jobs.states import JobStatus
from core.models import Job, utcnow
from providers.base import (Failed, Finished, Output, Pending, Provider, RateLimited, Retryable, Submitted,
                            UpstreamError, UpstreamTask)
from providers.plugin import AsyncProvider
from workers.context import Context
from workers.outputs import finish
from workers.pacing import INLINE_BELOW
from workers.throttle import ClaimThrottle

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- start
def start(ctx: Context, job_id: str, queue: str | None = None) -> None:
    """``queue``: the queue the start message came from, which is the job's provider (saves a
    read to learn whether its upstream is a slow synchronous one)."""
    s = ctx.settings
    if ctx.inflight is not None and ctx.has_async():
        # A slow synchronous upstream: take a slot of its in-flight cap before claiming, so a
        # full worker waits here (and the queue's other consumers take the next jobs).
        provider = ctx.providers.get(queue) if queue in ctx.providers else ctx.providers.get(
            _provider_of(ctx, job_id) or "")
        if isinstance(provider, AsyncProvider):
            _start_async(ctx, job_id, provider)
            return
    job = _claim(ctx, job_id)
    if job is None:
        return
    op, params = ctx.operations[job.operation], job.params
    provider = ctx.providers[job.provider]
    try:
        # Media inputs: URLs fetched SSRF-safely and checked, base64 without its data: prefix.
        params = media_inputs.resolve_inputs(op, params, allow_hosts=tuple(s.outbound_allow_hosts),
                                      timeout=s.upstream_timeout_seconds)
        if isinstance(provider, AsyncProvider):  # no in-flight runner (tests): one call inline
            outcome: Any = asyncio.run(provider.run(op, params))
        else:
            outcome = provider.submit(op, params)
    except Exception as exc:  # noqa: BLE001 - every failure is classified by _submitted
        outcome = exc
    _submitted(ctx, job, provider, outcome)


def _provider_of(ctx: Context, job_id: str) -> str | None:
    with ctx.sessions() as session:
        return session.scalar(select(Job.provider).where(Job.id == job_id))


def _start_async(ctx: Context, job_id: str, provider: Any) -> None:
    """Claim, resolve the inputs, and hand the call to the process's event loop; the answer is
    handled by ``_submitted`` on a finisher thread. The start task returns at once."""
    s = ctx.settings
    slot = ctx.inflight.slot(provider.name, provider.max_in_flight)
    slot.acquire()  # released below, or by the launch (which takes its own)
    try:
        job = _claim(ctx, job_id)
        if job is None:
            return
        op = ctx.operations[job.operation]
        try:
            params = media_inputs.resolve_inputs(op, job.params, allow_hosts=tuple(s.outbound_allow_hosts),
                                          timeout=s.upstream_timeout_seconds)
        except Exception as exc:  # noqa: BLE001
            _submitted(ctx, job, provider, exc)
            return
    finally:
        slot.release()
    ctx.inflight.launch(job.id, provider.name, provider.max_in_flight, lambda: provider.run(op, params),
                        lambda outcome: _submitted(ctx, job, provider, outcome))


def _submitted(ctx: Context, job: claims.Claimed, provider: Any, outcome: Any) -> None:
    """What the upstream's answer to a submit (or the exception it raised) does to the job."""
    s, job_id, attempts, tenant_id = ctx.settings, job.id, job.attempts, job.tenant_id
    if isinstance(outcome, RateLimited):
        delay = outcome.retry_after if outcome.retry_after is not None else timing.backoff(
            attempts, s.retry_backoff_base_seconds, s.retry_backoff_max_seconds)
        log.info("start %s: upstream rate limited; retry in %.1fs", job_id, delay)
        _requeue(ctx, job_id, delay, refund=True)
        return
    if isinstance(outcome, Retryable):
        if attempts >= s.max_start_attempts:
            _fail(ctx, job_id, outcome.code, f"{outcome.message} (after {attempts} attempts)")
            return
        delay = timing.backoff(attempts, s.retry_backoff_base_seconds, s.retry_backoff_max_seconds)
        log.info("start %s: %s; retry %d in %.1fs", job_id, outcome.message, attempts, delay)
        _requeue(ctx, job_id, delay)
        return
    if isinstance(outcome, UpstreamError):
        _fail(ctx, job_id, outcome.code, outcome.message)
        return
    if isinstance(outcome, BaseException):  # our own bug or an unexpected library error: bounded retries
        log.error("start %s crashed", job_id, exc_info=outcome)
        if attempts >= s.max_start_attempts:
            _fail(ctx, job_id, "internal_error", f"the gateway could not submit the job: {outcome}")
        else:
            _requeue(ctx, job_id, timing.backoff(attempts, s.retry_backoff_base_seconds,
                                               s.retry_backoff_max_seconds))
        return

    if isinstance(outcome, Submitted):
        tasks = [{**asdict(t), "done": False, "outputs": [], "meta": {}} for t in outcome.tasks]
        first = ctx.pacing.delay(job.operation)  # when tasks of this kind are usually done
        with ctx.sessions.begin() as session:
            # The sweeper polls at run_at: the first check itself when it is a poll interval or
            # more away, else the safety net of the early check below (lost message, crash).
            submitted_at = moves.mark_submitted(session, job_id, tasks, max(first, s.poll_interval_seconds))
            released = _held_to_release(ctx, session, tenant_id)
        _publish_starts(ctx, released)
        if submitted_at is None:
            return
        if first < INLINE_BELOW:  # this operation is usually done by now: check at once
            _poll_rows(ctx, [_PollRow(job_id, job.operation, tasks, job.provider, submitted_at,
                                      submitted_at, 0, tenant_id, submitted_at)])
        elif first < s.poll_interval_seconds:
            try:
                ctx.publish(ctx.poll_task, [job_id], ctx.poll_queue(job.provider), countdown=first)
            except Exception:
                log.warning("early poll of %s not published; the sweeper will poll it", job_id,
                            exc_info=True)
        return
    with ctx.sessions.begin() as session:
        released = _held_to_release(ctx, session, tenant_id)
    _publish_starts(ctx, released)
    finish(ctx, job_id, tenant_id, [outcome], provider, sources="start")


def _claim(ctx: Context, job_id: str) -> claims.Claimed | None:
    """Claim the job within the tenant's and our upstream limits; None: nothing to do now."""
    job = claims.claim(ctx.sessions, job_id, ctx.settings.start_lease_seconds, ctx.concurrency,
                     guard=ClaimThrottle(ctx.throttle, ctx.operations) if ctx.throttle is not None else None)
    if job is None:
        log.info("start %s: not started now (duplicate, not due, waiting for a slot, or an "
                 "upstream limit)", job_id)
    return job


def _held_to_release(ctx: Context, session: Any, tenant_id: str) -> list[sweeps.Due]:
    """The tenant's next waiting jobs, if slots are free (in the caller's transaction). A job
    younger than one that was due waits behind it; once that one has started, the younger may go
    at once rather than at the next sweep."""
    return claims.release_held(session, ctx.concurrency, ctx.settings.sweep_batch, tenant_id)


def _publish_starts(ctx: Context, released: list[sweeps.Due]) -> None:
    for due in released:
        ctx.publish(ctx.start_task, due.id, due.provider)


def _requeue(ctx: Context, job_id: str, delay: float, refund: bool = False) -> None:
    with ctx.sessions.begin() as session:
        moves.requeue(session, job_id, delay, refund_attempt=refund)


def _fail(ctx: Context, job_id: str, code: str, message: str) -> None:
    with ctx.sessions.begin() as session:
        changed = moves.fail(session, job_id, code, message, ctx.settings.retention_seconds)
    if changed:
        log.info("job %s failed: %s %s", job_id, code, message)
        ctx.notifier.job_finished(job_id)


# --------------------------------------------------------------------------- poll
@dataclass
class _Checked:
    """What one job's status check learned (no DB work done yet)."""

    job_id: str
    tasks: list[dict[str, Any]]
    provider: Provider
    outcome: str  # "later" | "failed" | "finish" | "error"
    delay: float = 0.0
    progress: float | None = None
    failures: int = 0  # consecutive failed checks, this one included
    error: UpstreamError | None = None
    code: str = ""
    message: str = ""
    tenant_id: str = ""


def poll(ctx: Context, job_ids: str | list[str]) -> None:
    """Check a batch of SUBMITTED jobs upstream: one SELECT, up to ``poll_concurrency``
    status requests at once, one transaction for every job that is still running; finished
    jobs then download and store their outputs (also in the pool), failed ones end in ERROR."""
    ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
    with ctx.sessions() as session:
        rows = session.execute(_POLL_READ, {"ids": ids}).all()
    _poll_rows(ctx, [_PollRow(*r) for r in rows])


_J = Job.__table__
_POLL_READ = (select(_J.c.id, _J.c.operation, _J.c.upstream_tasks, _J.c.provider, _J.c.submitted_at,
                     _J.c.created_at, _J.c.poll_failures, _J.c.tenant_id, _J.c.updated_at)
              .where(_J.c.id.in_(bindparam("ids", expanding=True)),
                     _J.c.status == JobStatus.SUBMITTED.value))


class _PollRow(NamedTuple):
    """A SUBMITTED job as a status check needs it (``updated_at``: its last check or submit)."""

    id: str
    operation: str
    upstream_tasks: list[dict[str, Any]]
    provider: str
    submitted_at: dt.datetime | None
    created_at: dt.datetime
    poll_failures: int
    tenant_id: str
    updated_at: dt.datetime | None


def _poll_rows(ctx: Context, rows: list[_PollRow]) -> None:
    if not rows:
        return
    checked = ctx.map(lambda r: _check(ctx, r), rows)
    for c, row in zip(checked, rows):
        c.tenant_id = row.tenant_id
    later = [c for c in checked if c.outcome in ("later", "failed")]
    if later:
        with ctx.sessions.begin() as session:
            moves.record_polls(session, [(c.job_id, c.tasks, c.delay, c.progress, c.outcome == "failed")
                                        for c in later])
    for c in checked:
        if c.outcome == "error":
            _fail(ctx, c.job_id, c.code, c.message)
    finishing = [c for c in checked if c.outcome == "finish"]
    if finishing:
        ctx.map(lambda c: _finish_polled(ctx, c), finishing)


def _check(ctx: Context, row: _PollRow) -> _Checked:
    s = ctx.settings
    job_id, operation, tasks, provider_name = row.id, row.operation, row.upstream_tasks, row.provider
    submitted_at, created_at, poll_failures = row.submitted_at, row.created_at, row.poll_failures
    checked_at = row.updated_at  # the submit, or the last check that found it running
    op, tasks, provider = ctx.operations[operation], [dict(t) for t in (tasks or [])], ctx.providers[provider_name]
    progress: list[float] = []
    try:
        for task in tasks:
            if task["done"]:
                progress.append(1.0)
                continue
            result = provider.poll(op, UpstreamTask(task["id"], task.get("status_url")))
            if isinstance(result, Failed):
                return _Checked(job_id, tasks, provider, "error", code=result.code, message=result.message)
            if isinstance(result, Pending):
                progress.append(result.progress or 0.0)
                continue
            task.update(done=True, meta=result.meta,
                        outputs=[{"url": o.url, "content_type": o.content_type, "meta": o.meta}
                                 for o in result.outputs])
            progress.append(1.0)
    except RateLimited as exc:
        delay = exc.retry_after or timing.backoff(1, s.retry_backoff_base_seconds, s.retry_backoff_max_seconds)
        return _Checked(job_id, tasks, provider, "later", delay=delay)
    except Retryable as exc:
        return _check_failed(ctx, job_id, tasks, provider, poll_failures + 1, exc)
    except UpstreamError as exc:
        return _Checked(job_id, tasks, provider, "error", code=exc.code, message=exc.message)
    except Exception as exc:  # our bug or a library surprise: counted like a failed check
        log.exception("poll %s crashed", job_id)
        return _check_failed(ctx, job_id, tasks, provider, poll_failures + 1,
                             Retryable(f"status check crashed: {exc}", code="internal_error"))
    since = submitted_at or created_at
    if all(t["done"] for t in tasks):
        # Still running at the previous check (updated_at: the submit, or the last check that
        # found it running): a lower bound of how long this operation takes.
        ctx.pacing.observe(operation, (checked_at - since).total_seconds() if checked_at else 0.0)
        return _Checked(job_id, tasks, provider, "finish", failures=poll_failures)
    elapsed = (utcnow() - since).total_seconds()
    ctx.pacing.running(operation, elapsed)
    delay = ctx.pacing.not_before(operation, elapsed, timing.next_poll_delay(
        elapsed, s.poll_interval_seconds, s.poll_interval_max_seconds))
    return _Checked(job_id, tasks, provider, "later", delay=delay,
                    progress=sum(progress) / len(progress) if progress else None)


def _check_failed(ctx: Context, job_id: str, tasks: list[dict[str, Any]], provider: Provider,
                  failures: int, exc: UpstreamError) -> _Checked:
    s = ctx.settings
    if failures >= s.max_poll_failures:
        return _Checked(job_id, tasks, provider, "error", code=exc.code,
                        message=f"{exc.message} (after {failures} failed status checks)")
    delay = timing.backoff(failures, s.retry_backoff_base_seconds, s.retry_backoff_max_seconds)
    log.info("poll %s: %s; again in %.1fs", job_id, exc.message, delay)
    return _Checked(job_id, tasks, provider, "failed", delay=delay, failures=failures, error=exc)


def _finish_polled(ctx: Context, c: _Checked) -> None:
    finished = [Finished([Output(url=o["url"], content_type=o["content_type"], meta=o["meta"] or {})
                          for o in t["outputs"]], t["meta"] or {}) for t in c.tasks]
    try:
        finish(ctx, c.job_id, c.tenant_id, finished, c.provider, sources="poll", tasks=c.tasks)
    except Exception as exc:  # a download or store failed: check (and download) again later
        if isinstance(exc, UpstreamError) and not isinstance(exc, (Retryable, RateLimited)):
            _fail(ctx, c.job_id, exc.code, exc.message)
            return
        if not isinstance(exc, UpstreamError):
            log.exception("finishing %s crashed", c.job_id)
            exc = Retryable(f"storing the outputs failed: {exc}", code="internal_error")
        failed = _check_failed(ctx, c.job_id, c.tasks, c.provider, c.failures + 1, exc)
        if failed.outcome == "error":
            _fail(ctx, c.job_id, failed.code, failed.message)
        else:
            with ctx.sessions.begin() as session:
                moves.record_poll(session, c.job_id, tasks=c.tasks, delay=failed.delay, failed=True)
