"""Upstream progress reaches the job and, for those who opt in, the job.progress webhook event
(at most one per job every few seconds)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from core.models import JobWebhook, WebhookDelivery, WebhookEvent
from core.webhooks.delivery import prepare
from providers.fake import FakeProvider
from tests.unit.test_pipeline_fake import make_ctx, new_job, row
from workers import pipeline


def progress_events(ctx, job_id):
    with ctx.sessions() as s:
        return list(s.scalars(select(WebhookEvent).where(WebhookEvent.job_id == job_id,
                                                         WebhookEvent.type == "job.progress")))


def test_progress_reaches_the_job_and_the_opt_in_event(db, tmp_path):
    ctx = make_ctx(db, tmp_path, FakeProvider(["task", "pending:0.25", "pending:0.5", "pending:0.75", "done"]))
    job_id = new_job(ctx)
    other = new_job(ctx)  # subscribed to the final event only: never a progress event
    with ctx.sessions.begin() as s:
        s.add(JobWebhook(job_id=job_id, url="http://127.0.0.3:9/h", events=["job.progress", "job.completed"],
                         base_url=""))
        s.add(JobWebhook(job_id=other, url="http://127.0.0.3:9/h", events=["job.completed"], base_url=""))
    pipeline.start(ctx, job_id)
    pipeline.poll(ctx, job_id)
    assert row(ctx, job_id).progress == 0.25
    assert len(progress_events(ctx, job_id)) == 1
    pipeline.poll(ctx, job_id)  # a second report within the gap: no event
    assert row(ctx, job_id).progress == 0.5 and len(progress_events(ctx, job_id)) == 1
    with ctx.sessions.begin() as s:  # the gap has passed
        s.execute(update(WebhookEvent).where(WebhookEvent.job_id == job_id)
                  .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10)))
    pipeline.poll(ctx, job_id)
    events = progress_events(ctx, job_id)
    assert len(events) == 2
    with ctx.sessions.begin() as s:
        delivery = s.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == events[-1].id))
        prepared = prepare(s, delivery.id, ctx.settings)
    assert '"type":"job.progress"' in prepared.body and '"progress":0.75' in prepared.body


def test_no_progress_reported_leaves_it_unknown(db, tmp_path):
    ctx = make_ctx(db, tmp_path, FakeProvider(["task", "pending", "done"]))
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    pipeline.poll(ctx, job_id)
    assert row(ctx, job_id).progress is None and progress_events(ctx, job_id) == []
