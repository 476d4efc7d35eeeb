"""What a worker does with a job, free of Celery so it can be run and tested directly.

* ``start(job_id)``  – claim the job (a duplicate message finds nothing), submit upstream.
* ``poll(job_id)``   – one status request per unfinished upstream task; finish when all are done.
* ``sweep()``        – dispatch due polls, publish due/unclaimed starts, recover jobs whose
  worker died, fail jobs past their deadline. Run by beat every second; safe to overlap.
* ``expire()``       – delete result files past retention; the job then reads as 404.

Every failure is classified by the provider as RateLimited / Retryable / Permanent, so this
module never looks at HTTP.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from core import jobs, media
from core.models import Job, JobStatus, Tenant, utcnow
from core.plans import limits_for
from core.notify import Notifier
from core.settings import Settings
from core.storage import LocalStorage
from providers.base import (
    Failed,
    Finished,
    Output,
    Pending,
    Provider,
    RateLimited,
    Retryable,
    Submitted,
    UpstreamError,
    UpstreamTask,
)
from providers.registry import OPERATIONS
from workers.throttle import Throttle

log = logging.getLogger(__name__)

Publish = Callable[[str, str, str], None]  # (task name, job id, queue)

EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp",
              "image/svg+xml": ".svg", "video/mp4": ".mp4", "audio/wav": ".wav",
              "audio/x-wav": ".wav", "audio/mpeg": ".mp3", "application/json": ".json",
              "video/webm": ".webm", "video/x-matroska": ".mkv", "video/quicktime": ".mov",
              "video/x-msvideo": ".avi", "image/gif": ".gif", "application/zip": ".zip"}


@dataclass
class Context:
    settings: Settings
    sessions: sessionmaker
    storage: LocalStorage
    notifier: Notifier
    providers: dict[str, Provider]
    publish: Publish
    throttle: Throttle | None = None
    start_task: str = "visiongate.start"
    poll_task: str = "visiongate.poll"
    _closed: bool = field(default=False, repr=False)

    def concurrency(self, tenant: Tenant) -> int:
        """The tenant's cap on jobs running upstream at once (plan grid + overrides)."""
        return limits_for(self.settings.plan_grid, tenant.plan, tenant.limits).concurrency

    def close(self) -> None:
        for provider in self.providers.values():
            provider.close()
        self._closed = True


# --------------------------------------------------------------------------- start
def start(ctx: Context, job_id: str) -> None:
    s = ctx.settings
    with ctx.sessions.begin() as session:
        job = jobs.claim_start(session, job_id, s.start_lease_seconds, ctx.concurrency)
        if job is None:
            log.info("start %s: not started now (duplicate, not due, or waiting for a slot)", job_id)
            return
        op, params, attempts, provider_name = OPERATIONS[job.operation], job.params, job.attempts, job.provider
        tenant_id = job.tenant_id
        wait = ctx.throttle.wait_time(session, provider_name, job_id, op.upstream_requests(params)) \
            if ctx.throttle else None
        if wait is not None:  # back in line in the same transaction: never counted as upstream
            log.info("start %s: %s upstream limit reached; retry in %.2fs", job_id, provider_name, wait)
            jobs.requeue(session, job_id, wait, refund_attempt=True)
            return
    _hand_off(ctx, tenant_id)
    provider = ctx.providers[provider_name]
    try:
        # Media inputs: URLs fetched SSRF-safely and checked, base64 without its data: prefix.
        params = media.resolve_inputs(op, params, allow_hosts=tuple(s.outbound_allow_hosts),
                                      timeout=s.upstream_timeout_seconds)
        outcome = provider.submit(op, params)
    except RateLimited as exc:
        delay = exc.retry_after if exc.retry_after is not None else jobs.backoff(
            attempts, s.retry_backoff_base_seconds, s.retry_backoff_max_seconds)
        log.info("start %s: upstream rate limited; retry in %.1fs", job_id, delay)
        _requeue(ctx, job_id, delay, refund=True)
        return
    except Retryable as exc:
        if attempts >= s.max_start_attempts:
            _fail(ctx, job_id, exc.code, f"{exc.message} (after {attempts} attempts)")
            return
        delay = jobs.backoff(attempts, s.retry_backoff_base_seconds, s.retry_backoff_max_seconds)
        log.info("start %s: %s; retry %d in %.1fs", job_id, exc.message, attempts, delay)
        _requeue(ctx, job_id, delay)
        return
    except UpstreamError as exc:
        _fail(ctx, job_id, exc.code, exc.message)
        return
    except Exception as exc:  # our own bug or an unexpected library error: bounded retries
        log.exception("start %s crashed", job_id)
        if attempts >= s.max_start_attempts:
            _fail(ctx, job_id, "internal_error", f"the gateway could not submit the job: {exc}")
        else:
            _requeue(ctx, job_id, jobs.backoff(attempts, s.retry_backoff_base_seconds,
                                               s.retry_backoff_max_seconds))
        return

    if isinstance(outcome, Submitted):
        tasks = [{**asdict(t), "done": False, "outputs": [], "meta": {}} for t in outcome.tasks]
        with ctx.sessions.begin() as session:
            jobs.mark_submitted(session, job_id, tasks, s.poll_interval_seconds)
        return
    _finish(ctx, job_id, [outcome], provider, sources="start")


def _hand_off(ctx: Context, tenant_id: str) -> None:
    """Publish the tenant's next waiting jobs if slots are free. (A job younger than one that
    was due waits behind it; once that one has started, the younger may go at once rather than
    at the next sweep.)"""
    with ctx.sessions.begin() as session:
        released = jobs.release_held(session, ctx.concurrency, ctx.settings.sweep_batch, tenant_id)
    for due in released:
        ctx.publish(ctx.start_task, due.id, due.provider)


def _requeue(ctx: Context, job_id: str, delay: float, refund: bool = False) -> None:
    with ctx.sessions.begin() as session:
        jobs.requeue(session, job_id, delay, refund_attempt=refund)


def _fail(ctx: Context, job_id: str, code: str, message: str) -> None:
    with ctx.sessions.begin() as session:
        changed = jobs.fail(session, job_id, code, message, ctx.settings.retention_seconds)
    if changed:
        log.info("job %s failed: %s %s", job_id, code, message)
        ctx.notifier.job_finished(job_id)


# --------------------------------------------------------------------------- poll
def poll(ctx: Context, job_id: str) -> None:
    s = ctx.settings
    with ctx.sessions() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.SUBMITTED.value:
            return
        op, tasks, provider_name = OPERATIONS[job.operation], list(job.upstream_tasks or []), job.provider
        submitted_at, poll_failures = job.submitted_at or job.created_at, job.poll_failures
    provider = ctx.providers[provider_name]
    progress: list[float] = []
    try:
        for task in tasks:
            if task["done"]:
                progress.append(1.0)
                continue
            result = provider.poll(op, UpstreamTask(task["id"], task.get("status_url")))
            if isinstance(result, Failed):
                _fail(ctx, job_id, result.code, result.message)
                return
            if isinstance(result, Pending):
                progress.append(result.progress or 0.0)
                continue
            task.update(done=True, meta=result.meta,
                        outputs=[{"url": o.url, "content_type": o.content_type, "meta": o.meta}
                                 for o in result.outputs])
            progress.append(1.0)
    except RateLimited as exc:
        delay = exc.retry_after or jobs.backoff(1, s.retry_backoff_base_seconds, s.retry_backoff_max_seconds)
        _poll_later(ctx, job_id, tasks, delay)
        return
    except Retryable as exc:
        _poll_failed(ctx, job_id, tasks, poll_failures + 1, exc)
        return
    except UpstreamError as exc:
        _fail(ctx, job_id, exc.code, exc.message)
        return

    if all(t["done"] for t in tasks):
        finished = [Finished([Output(url=o["url"], content_type=o["content_type"], meta=o["meta"] or {})
                              for o in t["outputs"]], t["meta"] or {}) for t in tasks]
        try:
            _finish(ctx, job_id, finished, provider, sources="poll", tasks=tasks)
        except Retryable as exc:
            _poll_failed(ctx, job_id, tasks, poll_failures + 1, exc)
        except UpstreamError as exc:
            _fail(ctx, job_id, exc.code, exc.message)
        return
    elapsed = (utcnow() - submitted_at).total_seconds()
    delay = jobs.next_poll_delay(elapsed, s.poll_interval_seconds, s.poll_interval_max_seconds)
    _poll_later(ctx, job_id, tasks, delay, progress=sum(progress) / len(progress) if progress else None)


def _poll_later(ctx: Context, job_id: str, tasks: list[dict[str, Any]], delay: float,
                progress: float | None = None, failed: bool = False) -> None:
    with ctx.sessions.begin() as session:
        jobs.record_poll(session, job_id, tasks=tasks, delay=delay, progress=progress, failed=failed)


def _poll_failed(ctx: Context, job_id: str, tasks: list[dict[str, Any]], failures: int,
                 exc: UpstreamError) -> None:
    s = ctx.settings
    if failures >= s.max_poll_failures:
        _fail(ctx, job_id, exc.code, f"{exc.message} (after {failures} failed status checks)")
        return
    delay = jobs.backoff(failures, s.retry_backoff_base_seconds, s.retry_backoff_max_seconds)
    log.info("poll %s: %s; again in %.1fs", job_id, exc.message, delay)
    _poll_later(ctx, job_id, tasks, delay, failed=True)


# --------------------------------------------------------------------------- finish
def _finish(ctx: Context, job_id: str, results: list[Finished], provider: Provider, *,
            sources: str, tasks: list[dict[str, Any]] | None = None) -> None:
    """Copy every output into our storage, then mark the job COMPLETED."""
    with ctx.sessions() as session:
        job = session.get(Job, job_id)
        tenant_id = job.tenant_id
    stored: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for result in results:
        for name, value in result.meta.items():
            meta.setdefault(name, value)
        for output in result.outputs:
            data, content_type = provider.download(output)
            stored.append(_store(ctx, tenant_id, job_id, len(stored), data, content_type))
    if results and len(results) > 1:
        meta["seeds"] = [r.meta.get("seed") for r in results]
    with ctx.sessions.begin() as session:
        changed = jobs.complete(session, job_id, stored, meta, ctx.settings.retention_seconds,
                                upstream_tasks=tasks)
    if changed:
        log.info("job %s completed from %s with %d output(s)", job_id, sources, len(stored))
        ctx.notifier.job_finished(job_id)


def describe_media(data: bytes, content_type: str | None) -> dict[str, Any]:
    """Content type (sniffed when the upstream's is missing or generic) and image size."""
    info: dict[str, Any] = {"content_type": content_type or "application/octet-stream",
                            "size": len(data)}
    if info["content_type"].startswith("image/svg"):
        return info
    try:
        with Image.open(io.BytesIO(data)) as img:
            info["width"], info["height"] = img.size
            info["content_type"] = Image.MIME.get(img.format, info["content_type"])
    except Exception:  # not a raster image (video, audio, svg): keep the upstream's type
        pass
    return info


def _store(ctx: Context, tenant_id: str, job_id: str, index: int, data: bytes,
           content_type: str | None) -> dict[str, Any]:
    info = describe_media(data, (content_type or "").split(";")[0].strip() or None)
    key = f"{tenant_id}/{job_id}/{index}{EXTENSIONS.get(info['content_type'], '.bin')}"
    ctx.storage.put(key, data)
    return {"key": key, **info}


# --------------------------------------------------------------------------- sweeper
def sweep(ctx: Context) -> dict[str, int]:
    s = ctx.settings
    counts = {"polls": 0, "starts": 0, "recovered": 0, "timed_out": 0}
    with ctx.sessions.begin() as session:
        polls = jobs.due_polls(session, s.poll_lease_seconds, s.sweep_batch)
    for due in polls:
        ctx.publish(ctx.poll_task, due.id, due.provider)
    counts["polls"] = len(polls)

    with ctx.sessions.begin() as session:
        for job_id, attempts in jobs.lost_starts(session, s.sweep_batch):
            if attempts >= s.max_start_attempts:
                if jobs.fail(session, job_id, "worker_lost",
                             f"the worker running this job stopped {attempts} times", s.retention_seconds):
                    ctx.notifier.job_finished(job_id)
            else:
                jobs.requeue(session, job_id, 0.0)
            counts["recovered"] += 1
        for job_id in jobs.overdue(session, s.job_timeout_seconds, s.sweep_batch):
            if jobs.fail(session, job_id, "timeout",
                         f"the job did not finish within {s.job_timeout_seconds:.0f} s", s.retention_seconds):
                ctx.notifier.job_finished(job_id)
                counts["timed_out"] += 1

    with ctx.sessions.begin() as session:
        starts = jobs.due_starts(session, s.requeue_after_seconds, s.sweep_batch)
        starts += jobs.release_held(session, ctx.concurrency, s.sweep_batch)
    for due in starts:
        ctx.publish(ctx.start_task, due.id, due.provider)
    counts["starts"] = len(starts)
    if any(counts.values()):
        log.info("sweep: %s", counts)
    return counts


def expire(ctx: Context) -> int:
    """Delete the files of jobs past retention, then mark them EXPIRED (they read as 404).

    Files go first: a crash in between leaves a finished job without files that the next run
    expires again, never an EXPIRED job whose files linger.
    """
    with ctx.sessions() as session:
        victims = jobs.expired(session, ctx.settings.sweep_batch)
    done = 0
    for job_id, tenant_id in victims:
        ctx.storage.delete_prefix(f"{tenant_id}/{job_id}")
        with ctx.sessions.begin() as session:
            done += jobs.mark_expired(session, job_id)
    return done
