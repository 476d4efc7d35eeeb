"""The sweeper (beat, every second; safe to overlap): due polls dispatched in batches on the
provider's poll queue, due and unclaimed starts published, jobs whose worker died recovered, jobs
past their deadline failed; and expiry: result files past retention deleted, the job then reads
as 404."""

from __future__ import annotations

import logging

from core import idempotency
from core.jobs import claims, moves, sweeps
from workers.context import Context

log = logging.getLogger("workers.pipeline")


def sweep(ctx: Context) -> dict[str, int]:
    s = ctx.settings
    counts = {"polls": 0, "starts": 0, "recovered": 0, "timed_out": 0}
    with ctx.sessions.begin() as session:
        polls = sweeps.due_polls(session, s.poll_lease_seconds, s.sweep_batch)
    by_provider: dict[str, list[str]] = {}
    for due in polls:
        by_provider.setdefault(due.provider, []).append(due.id)
    size = max(1, s.poll_batch)
    for provider_name, ids in by_provider.items():
        for i in range(0, len(ids), size):
            ctx.publish(ctx.poll_task, ids[i:i + size], ctx.poll_queue(provider_name))
    counts["polls"] = len(polls)

    # Lost starts are recovered only once this process has seen the database answer for a whole
    # lease: after an outage every lease has run out, and live workers renew theirs first.
    recover = ctx.holdings is None or ctx.holdings.healthy_for() >= s.start_lease_seconds
    journal = ctx.holdings.journal if ctx.holdings is not None else None
    noted_here: list[str] = []
    with ctx.sessions.begin() as session:
        for lost in (sweeps.lost_starts(session, s.sweep_batch) if recover else []):
            # Ids a dead process of this host noted but never wrote (workers/journal.py) count too.
            noted = journal.get(lost.id) if journal is not None and not lost.recorded else None
            if noted and moves.record_tasks(session, lost.id, noted):
                noted_here.append(lost.id)
            if lost.recorded or lost.id in noted_here:  # its task ids are safe: poll them, never submit again
                moves.resume(session, lost.id)
            elif lost.attempts >= s.max_start_attempts:
                if moves.fail(session, lost.id, "worker_lost",
                              f"the worker running this job stopped {lost.attempts} times", s.retention_seconds):
                    ctx.notifier.job_finished(lost.id)
            else:  # its worker died after the claim: it may have sent the submit
                moves.requeue(session, lost.id, 0.0, uncertain=True)
            counts["recovered"] += 1
        for job_id in sweeps.overdue(session, s.job_timeout_seconds, s.sweep_batch):
            if moves.fail(session, job_id, "timeout",
                         f"the job did not finish within {s.job_timeout_seconds:.0f} s", s.retention_seconds):
                ctx.notifier.job_finished(job_id)
                counts["timed_out"] += 1
    for job_id in noted_here:  # in their rows now
        journal.remove(job_id)

    requeue_after, providers, held_stale = _lost_messages(ctx)
    with ctx.sessions.begin() as session:
        starts = sweeps.due_starts(session, requeue_after, s.sweep_batch, providers)
        starts += claims.release_held(session, ctx.concurrency, s.sweep_batch, stale_after=held_stale)
    for due in starts:
        ctx.publish(ctx.start_task, due.id, due.provider)
    counts["starts"] = len(starts)
    if any(counts.values()):
        log.info("sweep: %s", counts)
    return counts


def _lost_messages(ctx: Context) -> tuple[float, set[str] | None, float]:
    """When an unclaimed job's start message counts as lost: (age after which it is published
    again, of which providers (None: all), the same age for released held jobs)."""
    s = ctx.settings
    slow = s.requeue_after_seconds * 10  # a broker that cannot say: a long publish lease
    if ctx.broker is None:
        return s.requeue_after_seconds, None, slow
    try:
        if ctx.broker.lost_everything():
            log.warning("the broker lost its messages (restarted empty?): publishing every "
                        "unclaimed job again")
            return 0.0, None, 0.0
        empty = ctx.broker.empty_queues(sorted(ctx.providers))
    except Exception:  # noqa: BLE001 - the broker is away: publishing fails anyway
        log.warning("broker probe failed", exc_info=True)
        return slow, None, slow
    if empty is None:
        return slow, None, slow
    return s.requeue_after_seconds, empty, slow


def expire(ctx: Context) -> int:
    """Delete the files of jobs past retention, then mark them EXPIRED (they read as 404).

    Files go first: a crash in between leaves a finished job without files that the next run
    expires again, never an EXPIRED job whose files linger.
    """
    with ctx.sessions() as session:
        victims = sweeps.expired(session, ctx.settings.sweep_batch)
    done = 0
    for job_id, tenant_id in victims:
        ctx.storage.delete_prefix(f"{tenant_id}/{job_id}")
        with ctx.sessions.begin() as session:
            done += moves.mark_expired(session, job_id)
    with ctx.sessions.begin() as session:  # idempotency keys past their 24 h
        idempotency.sweep(session, ctx.settings.sweep_batch)
    return done
