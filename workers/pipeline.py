"""What a worker does with a job, free of Celery so it can be run and tested directly.

* ``start(job_id)``  – claim the job (a duplicate message finds nothing), submit upstream, and
  record the upstream's task ids at once, alone in their transaction (a job with recorded task
  ids is never submitted again: a later claim or recovery resumes polling them).
* ``poll(job_ids)``  – a batch of jobs: one status request per unfinished upstream task (many at
  once, in a shared I/O pool), one transaction for the jobs still running; finish the done ones
  (workers/polling.py).

The sweeper (``sweep``, ``expire``) is workers/sweeper.py; storing a finished job's outputs,
workers/outputs.py; what every step needs, workers/context.py (``Context``); the jobs a process
holds, its heartbeat and its journal of task ids, workers/holdings.py and workers/journal.py.

Every failure is classified by the provider as RateLimited / Retryable / Permanent, so this
module never looks at HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from core import media_inputs
from core.jobs import claims, moves, sweeps, timing
from core.models import Job
from providers.base import RateLimited, Retryable, Submitted, UpstreamError, UpstreamTask
from providers.plugin import AsyncProvider
from core import faultpoints
from workers.context import Context
from workers.outputs import finish
from workers.pacing import INLINE_BELOW
from workers.polling import PollRow, fail, poll, poll_rows  # noqa: F401 - poll: the poll task's entry
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
    try:
        if _resume(ctx, job):
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
    finally:
        ctx.release(job.id)


def _provider_of(ctx: Context, job_id: str) -> str | None:
    with ctx.sessions() as session:
        return session.scalar(select(Job.provider).where(Job.id == job_id))


def _start_async(ctx: Context, job_id: str, provider: Any) -> None:
    """Claim, resolve the inputs, and hand the call to the process's event loop; the answer is
    handled by ``_submitted`` on a finisher thread. The start task returns at once."""
    s = ctx.settings
    slot = ctx.inflight.slot(provider.name, provider.max_in_flight)
    slot.acquire()  # released below, or by the launch (which takes its own)
    launched = False
    job = None
    try:
        job = _claim(ctx, job_id)
        if job is None or _resume(ctx, job):
            return
        op = ctx.operations[job.operation]
        try:
            params = media_inputs.resolve_inputs(op, job.params, allow_hosts=tuple(s.outbound_allow_hosts),
                                                 timeout=s.upstream_timeout_seconds)
        except Exception as exc:  # noqa: BLE001
            _submitted(ctx, job, provider, exc)
            return
        launched = True
    finally:
        slot.release()
        if job is not None and not launched:
            ctx.release(job.id)

    def done(outcome: Any) -> None:
        try:
            _submitted(ctx, job, provider, outcome)
        finally:
            ctx.release(job.id)

    ctx.inflight.launch(job.id, provider.name, provider.max_in_flight, lambda: provider.run(op, params), done)


def _resume(ctx: Context, job: claims.Claimed) -> bool:
    """A claimed job whose task ids an earlier attempt recorded (in its row, or in this host's
    journal: the database was away, or the process died before writing its note's ids)
    resumes polling them: never a second submit."""
    tasks = job.upstream_tasks
    if tasks is None and ctx.holdings is not None:
        tasks = ctx.holdings.journal.get(job.id)
        if tasks is not None and not _record_tasks(ctx, job, ctx.providers[job.provider], tasks):
            return True
        if tasks is not None:
            ctx.holdings.journal.remove(job.id)
    if tasks is None:
        return False
    log.info("start %s: its upstream task ids are recorded; polling them, not submitting again", job.id)
    _after_record(ctx, job, [dict(t) for t in tasks])
    return True


def resume_recorded(ctx: Context, job_id: str, tasks: list[dict[str, Any]], recorded: bool) -> None:
    """The heartbeat wrote task ids from the journal (``recorded``), or found the job moved on."""
    with ctx.sessions() as session:
        row = session.execute(select(Job.tenant_id, Job.provider, Job.operation, Job.attempts)
                              .where(Job.id == job_id)).first()
    if row is None:
        return
    job = claims.Claimed(job_id, row[0], row[1], row[2], {}, row[3], upstream_tasks=tasks)
    if not recorded:
        _orphaned(ctx, job, ctx.providers[job.provider], tasks)
        return
    _after_record(ctx, job, tasks)  # a job requeued meanwhile is resumed by its next claim


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
            fail(ctx, job_id, outcome.code, f"{outcome.message} (after {attempts} attempts)")
            return
        delay = timing.backoff(attempts, s.retry_backoff_base_seconds, s.retry_backoff_max_seconds)
        log.info("start %s: %s; retry %d in %.1fs%s", job_id, outcome.message, attempts, delay,
                 " (the upstream may have received it)" if outcome.maybe_sent else "")
        _requeue(ctx, job_id, delay, uncertain=outcome.maybe_sent)
        return
    if isinstance(outcome, UpstreamError):
        fail(ctx, job_id, outcome.code, outcome.message)
        return
    if isinstance(outcome, BaseException):  # our own bug or an unexpected library error: bounded retries
        log.error("start %s crashed", job_id, exc_info=outcome)
        if attempts >= s.max_start_attempts:
            fail(ctx, job_id, "internal_error", f"the gateway could not submit the job: {outcome}")
        else:
            _requeue(ctx, job_id, timing.backoff(attempts, s.retry_backoff_base_seconds,
                                               s.retry_backoff_max_seconds))
        return

    if isinstance(outcome, Submitted):
        tasks = [{**asdict(t), "done": False, "outputs": [], "meta": {}} for t in outcome.tasks]
        faultpoints.reached("after_send")
        journal = ctx.holdings.journal if ctx.holdings is not None else None
        if journal is not None:  # outlives this process if it dies before the row has them
            journal.note(job.id, tasks)
            faultpoints.reached("after_note")
        recorded = _record_tasks(ctx, job, provider, tasks)
        if journal is not None:  # in the row, in the journal, or orphaned: the note is done
            journal.clear_note(job.id)
        if not recorded:
            return
        faultpoints.reached("after_record")
        _after_record(ctx, job, tasks)
        return
    with ctx.sessions.begin() as session:
        released = _held_to_release(ctx, session, tenant_id)
    _publish_starts(ctx, released)
    finish(ctx, job_id, tenant_id, [outcome], provider, sources="start")


# Quick retries of the task-id write before it goes to the journal: a database that is away
# longer than this does not hold the start's thread; the heartbeat writes the ids once it is back.
RECORD_RETRIES = (0.1, 0.3, 0.6, 1.0, 2.0)


def _record_tasks(ctx: Context, job: claims.Claimed, provider: Any, tasks: list[dict[str, Any]]) -> bool:
    """The task ids in the job's row, alone in their transaction, right after the upstream's
    answer. True: recorded, go on. False: journalled (the database is away; the heartbeat
    writes them later and moves the job on), or the job had moved on (the tasks are orphans:
    cancelled upstream where the provider can)."""
    for pause in (*RECORD_RETRIES, None):
        try:
            with ctx.sessions.begin() as session:
                recorded = moves.record_tasks(session, job.id, tasks)
            break
        except DBAPIError:
            if pause is None:
                if ctx.holdings is None:
                    raise
                ctx.holdings.journal.write(job.id, tasks)
                ctx.holdings.add(job.id)  # held (its lease extended) until the heartbeat writes them
                log.warning("start %s: the database is away; upstream task ids %s kept in the journal",
                            job.id, [t["id"] for t in tasks])
                return False
            time.sleep(pause)
    if not recorded:
        _orphaned(ctx, job, provider, tasks)
    return recorded


def cancel_upstream(ctx: Context, job_id: str) -> int:
    """A cancelled job's unfinished upstream tasks, cancelled where its provider can."""
    with ctx.sessions() as session:
        row = session.execute(select(Job.provider, Job.operation, Job.upstream_tasks)
                              .where(Job.id == job_id)).first()
    if row is None or not row[2]:
        return 0
    provider, op = ctx.providers.get(row[0]), ctx.operations.get(row[1])
    cancel = getattr(provider, "cancel", None)
    if cancel is None or op is None:
        return 0
    done = 0
    for task in row[2]:
        if task.get("done"):
            continue
        try:
            cancel(op, UpstreamTask(task["id"], task.get("status_url")))
            done += 1
        except Exception:  # noqa: BLE001 - the job is cancelled either way; the task may bill
            log.warning("job %s: cancelling upstream task %s failed", job_id, task["id"], exc_info=True)
    log.info("job %s cancelled: %d upstream task(s) stopped", job_id, done)
    return done


def _orphaned(ctx: Context, job: claims.Claimed, provider: Any, tasks: list[dict[str, Any]]) -> None:
    """Upstream tasks nobody will poll: the job finished or was started again meanwhile."""
    cancel = getattr(provider, "cancel", None)
    for task in tasks:
        if cancel is None:
            log.warning("job %s: upstream task %s is orphaned and %s cannot cancel it", job.id,
                        task["id"], job.provider)
            continue
        try:
            cancel(ctx.operations[job.operation], UpstreamTask(task["id"], task.get("status_url")))
            log.warning("job %s: orphaned upstream task %s cancelled", job.id, task["id"])
        except Exception:  # noqa: BLE001 - best effort
            log.warning("job %s: cancelling orphaned upstream task %s failed", job.id, task["id"],
                        exc_info=True)


def _after_record(ctx: Context, job: claims.Claimed, tasks: list[dict[str, Any]]) -> None:
    """RUNNING → SUBMITTED once the task ids are safe, the tenant's next waiting jobs released,
    and the first check scheduled (or made at once when this operation is usually done)."""
    s, job_id, tenant_id = ctx.settings, job.id, job.tenant_id
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
        poll_rows(ctx, [PollRow(job_id, job.operation, tasks, job.provider, submitted_at,
                                  submitted_at, 0, tenant_id, submitted_at)])
    elif first < s.poll_interval_seconds:
        try:
            ctx.publish(ctx.poll_task, [job_id], ctx.poll_queue(job.provider), countdown=first)
        except Exception:
            log.warning("early poll of %s not published; the sweeper will poll it", job_id,
                        exc_info=True)


def _claim(ctx: Context, job_id: str) -> claims.Claimed | None:
    """Claim the job within the tenant's and our upstream limits; None: nothing to do now."""
    job = claims.claim(ctx.sessions, job_id, ctx.settings.start_lease_seconds, ctx.concurrency,
                     guard=ClaimThrottle(ctx.throttle, ctx.operations) if ctx.throttle is not None else None)
    if job is None:
        log.info("start %s: not started now (duplicate, not due, waiting for a slot, or an "
                 "upstream limit)", job_id)
    else:
        ctx.hold(job.id)
    return job


def _held_to_release(ctx: Context, session: Any, tenant_id: str) -> list[sweeps.Due]:
    """The tenant's next waiting jobs, if slots are free (in the caller's transaction). A job
    younger than one that was due waits behind it; once that one has started, the younger may go
    at once rather than at the next sweep."""
    return claims.release_held(session, ctx.concurrency, ctx.settings.sweep_batch, tenant_id)


def _publish_starts(ctx: Context, released: list[sweeps.Due]) -> None:
    for due in released:
        ctx.publish(ctx.start_task, due.id, due.provider)


def _requeue(ctx: Context, job_id: str, delay: float, refund: bool = False, uncertain: bool = False) -> None:
    with ctx.sessions.begin() as session:
        moves.requeue(session, job_id, delay, refund_attempt=refund, uncertain=uncertain)
