"""Checking SUBMITTED jobs upstream (``poll``), and ending a job in ERROR (``fail``): one status
request per unfinished upstream task (many at once, in the process's shared I/O pool), one
transaction for the jobs still running; the done ones' outputs stored (workers/outputs.py)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select

from core.jobs import moves, timing
from core.jobs.states import JobStatus
from core.models import Job, utcnow
from providers.base import (Failed, Finished, Output, Pending, Provider, RateLimited, Retryable,
                            UpstreamError, UpstreamTask)
from workers.context import Context
from workers.outputs import finish

log = logging.getLogger("workers.pipeline")


def fail(ctx: Context, job_id: str, code: str, message: str) -> None:
    with ctx.sessions.begin() as session:
        changed = moves.fail(session, job_id, code, message, ctx.settings.retention_seconds)
    if changed:
        log.info("job %s failed: %s %s", job_id, code, message)
        ctx.notifier.job_finished(job_id)


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
    poll_rows(ctx, [PollRow(*r) for r in rows])


_J = Job.__table__
_POLL_READ = (select(_J.c.id, _J.c.operation, _J.c.upstream_tasks, _J.c.provider, _J.c.submitted_at,
                     _J.c.created_at, _J.c.poll_failures, _J.c.tenant_id, _J.c.updated_at)
              .where(_J.c.id.in_(bindparam("ids", expanding=True)),
                     _J.c.status == JobStatus.SUBMITTED.value))


class PollRow(NamedTuple):
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


def poll_rows(ctx: Context, rows: list[PollRow]) -> None:
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
            moves.progress_events(session, [(c.job_id, c.tenant_id) for c in later if c.progress is not None])
    for c in checked:
        if c.outcome == "error":
            fail(ctx, c.job_id, c.code, c.message)
    finishing = [c for c in checked if c.outcome == "finish"]
    if finishing:
        ctx.map(lambda c: _finish_polled(ctx, c), finishing)


def _check(ctx: Context, row: PollRow) -> _Checked:
    s = ctx.settings
    job_id, operation, tasks, provider_name = row.id, row.operation, row.upstream_tasks, row.provider
    submitted_at, created_at, poll_failures = row.submitted_at, row.created_at, row.poll_failures
    checked_at = row.updated_at  # the submit, or the last check that found it running
    op, tasks, provider = ctx.operations[operation], [dict(t) for t in (tasks or [])], ctx.providers[provider_name]
    progress: list[float] = []
    reported = False  # did the upstream say how far it is (else progress stays unknown)
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
                reported = reported or result.progress is not None
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
                    progress=sum(progress) / len(progress) if progress and reported else None)


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
            fail(ctx, c.job_id, exc.code, exc.message)
            return
        if not isinstance(exc, UpstreamError):
            log.exception("finishing %s crashed", c.job_id)
            exc = Retryable(f"storing the outputs failed: {exc}", code="internal_error")
        failed = _check_failed(ctx, c.job_id, c.tasks, c.provider, c.failures + 1, exc)
        if failed.outcome == "error":
            fail(ctx, c.job_id, failed.code, failed.message)
        else:
            with ctx.sessions.begin() as session:
                moves.record_poll(session, c.job_id, tasks=c.tasks, delay=failed.delay, failed=True)
