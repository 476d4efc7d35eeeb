"""Cancelling a job in each state (core/jobs/cancel.py), with credits and the job.cancelled
event checked, the upstream cancel where the provider can, and races with the worker."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import credits
from core.jobs import cancel as jc
from core.models import CreditEntry, Job, JobWebhook, Tenant, WebhookEvent
from providers.fake import FakeCancellableProvider, FakeProvider
from tests.unit.test_pipeline_fake import make_ctx, row
from workers import pipeline


def metered_job(ctx, cost: int = 3) -> tuple[str, str]:
    with ctx.sessions.begin() as s:
        tenant = s.scalar(select(Tenant).where(Tenant.name == "c"))
        if tenant is None:
            tenant = Tenant(name="c", plan="pro", credits=0)
            s.add(tenant)
            s.flush()
            credits.grant(s, tenant.id, 100)
        tenant.credits -= cost  # reserved at intake
        job = Job(tenant_id=tenant.id, provider="fake", operation="fake.render", credit_cost=cost,
                  params={"prompt": "p", "width": 40, "height": 30}, sync=False)
        s.add(job)
        s.flush()
        s.add(CreditEntry(tenant_id=tenant.id, job_id=job.id, kind="reserve", amount=cost,
                          balance_after=tenant.credits, note=""))
        s.add(JobWebhook(job_id=job.id, url="http://127.0.0.3:9/h", events=["job.cancelled"], base_url=""))
        return job.id, tenant.id


def cancel(ctx, tenant_id, job_id, can=False):
    with ctx.sessions.begin() as s:
        return jc.cancel_job(s, tenant_id, job_id, 3600, lambda _p: can)


def balance(ctx, tenant_id) -> int:
    with ctx.sessions() as s:
        return s.get(Tenant, tenant_id).credits


def events(ctx, job_id) -> list[str]:
    with ctx.sessions() as s:
        return list(s.scalars(select(WebhookEvent.type).where(WebhookEvent.job_id == job_id)))


@pytest.fixture
def build(db, tmp_path):
    return lambda provider: make_ctx(db, tmp_path, provider)


def test_a_queued_job_is_cancelled_at_once_and_its_credits_released(build):
    ctx = build(FakeProvider(["task"]))
    job_id, tenant = metered_job(ctx)
    assert balance(ctx, tenant) == 97
    out = cancel(ctx, tenant, job_id)
    assert out.cancelled and out.previous == "QUEUED" and not out.captured
    job = row(ctx, job_id)
    assert job.status == "CANCELLED" and job.error_code == "cancelled" and job.expires_at is not None
    assert balance(ctx, tenant) == 100
    assert events(ctx, job_id) == ["job.cancelled"]
    pipeline.start(ctx, job_id)  # its start message arrives later: nothing happens
    assert row(ctx, job_id).status == "CANCELLED" and not ctx.providers["fake"].calls


def test_running_with_a_provider_that_can_cancel_stops_the_task_and_releases(build):
    fake = FakeCancellableProvider(["task", "pending"])
    ctx = build(fake)
    job_id, tenant = metered_job(ctx)
    pipeline.start(ctx, job_id)
    assert row(ctx, job_id).status == "SUBMITTED"
    out = cancel(ctx, tenant, job_id, can=True)
    assert out.cancelled and out.previous == "SUBMITTED" and out.tasks[0]["id"] == "fake-task-1"
    assert pipeline.cancel_upstream(ctx, job_id) == 1 and fake.cancelled == ["fake-task-1"]
    assert balance(ctx, tenant) == 100
    pipeline.poll(ctx, job_id)  # no longer polled
    assert [c for c in fake.calls if c[0] == "poll"] == []


def test_running_with_a_provider_that_cannot_cancel_keeps_the_credits(build):
    fake = FakeProvider(["task", "done"])
    ctx = build(fake)
    job_id, tenant = metered_job(ctx)
    pipeline.start(ctx, job_id)
    out = cancel(ctx, tenant, job_id, can=False)
    assert out.cancelled and out.captured and out.tasks is None
    assert balance(ctx, tenant) == 97  # the upstream bills the task regardless
    pipeline.poll(ctx, job_id)
    assert row(ctx, job_id).status == "CANCELLED"  # the finished task does not revive it


def test_a_finished_job_is_not_cancelled(build):
    ctx = build(FakeProvider(["done"]))
    job_id, tenant = metered_job(ctx)
    pipeline.start(ctx, job_id)
    assert row(ctx, job_id).status == "COMPLETED"
    out = cancel(ctx, tenant, job_id)
    assert not out.cancelled and out.previous == "COMPLETED"
    assert balance(ctx, tenant) == 97 and "job.cancelled" not in events(ctx, job_id)


def test_someone_elses_job_is_not_found(build):
    ctx = build(FakeProvider())
    job_id, _ = metered_job(ctx)
    assert cancel(ctx, "another-tenant", job_id) is None


def test_cancel_while_the_worker_submits_ends_cancelled_and_the_task_is_cancelled(build):
    fake = FakeCancellableProvider(["task"])
    ctx = build(fake)
    job_id, tenant = metered_job(ctx)
    job = pipeline._claim(ctx, job_id)  # the worker has claimed it and is sending
    assert cancel(ctx, tenant, job_id, can=True).previous == "RUNNING"
    pipeline._submitted(ctx, job, fake, fake.submit(ctx.operations["fake.render"], {}))
    assert row(ctx, job_id).status == "CANCELLED"
    assert fake.cancelled == ["fake-task-1"]  # the task id arrived for a cancelled job: orphan
    assert balance(ctx, tenant) == 100


def test_cancel_racing_completion_ends_in_one_state(build):
    ctx = build(FakeProvider(["task", "done"]))
    job_id, tenant = metered_job(ctx)
    pipeline.start(ctx, job_id)
    pipeline.poll(ctx, job_id)  # completion won
    assert not cancel(ctx, tenant, job_id).cancelled
    assert row(ctx, job_id).status == "COMPLETED" and balance(ctx, tenant) == 97
    with ctx.sessions() as s:
        kinds = list(s.scalars(select(CreditEntry.kind).where(CreditEntry.job_id == job_id)))
    assert sorted(kinds) == ["capture", "reserve"]


def test_a_held_job_waiting_for_a_slot_is_cancelled_and_leaves_the_line(build):
    from sqlalchemy import update

    from core.jobs import claims
    from core.models import utcnow

    ctx = build(FakeProvider(["task"]))
    job_id, tenant = metered_job(ctx)
    with ctx.sessions.begin() as s:  # waiting in its tenant's line for a free slot
        s.execute(update(Job).where(Job.id == job_id).values(held_at=utcnow(), published_at=None))
    out = cancel(ctx, tenant, job_id)
    assert out.cancelled and out.previous == "QUEUED" and not out.captured
    job = row(ctx, job_id)
    assert job.status == "CANCELLED" and job.held_at is None
    assert balance(ctx, tenant) == 100 and events(ctx, job_id) == ["job.cancelled"]
    with ctx.sessions.begin() as s:  # nothing left to release
        assert claims.release_held(s, lambda _t: 5, 10, tenant) == []


def test_bulk_cancel_takes_only_the_unstarted_jobs_it_is_given(build):
    """``cancel_unstarted`` (what batch cancel runs): the same move in bulk, credits and events."""
    ctx = build(FakeProvider(["task", "pending"]))
    running, tenant = metered_job(ctx)
    pipeline.start(ctx, running)
    waiting = [metered_job(ctx)[0] for _ in range(2)]
    other = metered_job(ctx)[0]
    assert balance(ctx, tenant) == 88
    chosen = [running, *waiting]
    with ctx.sessions.begin() as s:
        done = jc.cancel_unstarted(s, tenant, Job.id.in_(chosen), 3600, reason="cancelled with its batch")
    assert sorted(done) == sorted(waiting)
    assert row(ctx, running).status == "SUBMITTED" and row(ctx, other).status == "QUEUED"
    assert all(row(ctx, j).status == "CANCELLED" and row(ctx, j).error_code == "cancelled" for j in waiting)
    assert balance(ctx, tenant) == 94
    assert all(events(ctx, j) == ["job.cancelled"] for j in waiting) and events(ctx, other) == []
    with ctx.sessions() as s:
        notes = s.scalars(select(CreditEntry.note).where(CreditEntry.job_id.in_(waiting),
                                                         CreditEntry.kind == "release")).all()
    assert notes == ["cancelled with its batch"] * 2
