"""The job machinery against the scripted fake provider (providers/fake): no vendor, no HTTP.

Submit → pending polls → finished; inline answers; rate limits, retryable and permanent
failures; our own crashes; and the in-flight path for providers whose one call answers only when
the work is done (many calls open at once in one process, leases extended while they are)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import update

from core.jobs import sweeps
from core.models import Job, utcnow
from core.notify import Notifier
from core.settings import Settings
from core.storage import LocalStorage
from core.tenants import get_or_create_tenant
from providers.fake import OPERATIONS, FakeAsyncProvider, FakeProvider
from workers import pipeline
from workers.context import Context
from workers.holdings import Holdings
from workers.inflight import InFlight
from workers.journal import Journal

OPS = {op.name: op for op in OPERATIONS}


def make_ctx(db, tmp_path, provider, inflight: InFlight | None = None) -> Context:
    sessions, _ = db
    settings = Settings(VISIONGATE_DATA_DIR=tmp_path, VISIONGATE_MAX_START_ATTEMPTS=2,
                        VISIONGATE_RETRY_BACKOFF_BASE_SECONDS=0.01, VISIONGATE_START_LEASE_SECONDS=0.9)
    sent: list[tuple] = []
    ctx = Context(settings=settings, sessions=sessions, storage=LocalStorage(tmp_path / "r"),
                           notifier=Notifier(""), providers={"fake": provider},
                           publish=lambda *m, **kw: sent.append(m), operations=OPS, inflight=inflight)
    ctx.sent = sent
    return ctx


@pytest.fixture
def fake():
    return FakeProvider()


@pytest.fixture
def ctx(db, tmp_path, fake):
    c = make_ctx(db, tmp_path, fake)
    yield c
    c.close()


def new_job(ctx, **params) -> str:
    with ctx.sessions.begin() as s:
        tenant = get_or_create_tenant(s, "t", "enterprise")  # 200 jobs at once
        job = Job(tenant_id=tenant.id, provider="fake", operation="fake.render",
                  params={"prompt": "p", "width": 40, "height": 30, **params}, sync=False)
        s.add(job)
        s.flush()
        return job.id


def row(ctx, job_id) -> Job:
    with ctx.sessions() as s:
        return s.get(Job, job_id)


def make_due(ctx, job_id) -> None:
    with ctx.sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(run_at=utcnow() - dt.timedelta(seconds=1)))


def test_submit_pending_polls_then_finished(ctx, fake):
    fake.script.steps = ["task", "pending:0.25", "pending:0.5", "done"]
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    assert row(ctx, job_id).status == "SUBMITTED"
    pipeline.poll(ctx, job_id)
    assert row(ctx, job_id).status == "SUBMITTED" and row(ctx, job_id).progress == pytest.approx(0.25)
    pipeline.poll(ctx, job_id)
    pipeline.poll(ctx, job_id)
    job = row(ctx, job_id)
    assert job.status == "COMPLETED" and job.outputs[0]["content_type"] == "image/png"
    assert (job.outputs[0]["width"], job.outputs[0]["height"]) == (64, 48)  # the fake's download
    assert [c[0] for c in fake.calls] == ["submit", "poll", "poll", "poll", "download"]


def test_inline_answer_completes_at_start(ctx, fake):
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    job = row(ctx, job_id)
    assert job.status == "COMPLETED" and (job.outputs[0]["width"], job.outputs[0]["height"]) == (40, 30)
    assert ctx.storage.path(job.outputs[0]["key"]).read_bytes()[:4] == b"\x89PNG"


def test_rate_limit_requeues_without_spending_an_attempt(ctx, fake):
    fake.script.steps = ["429"]
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    job = row(ctx, job_id)
    assert job.status == "QUEUED" and job.attempts == 0


def test_retryable_failures_are_bounded(ctx, fake):
    fake.script.steps = ["5xx", "5xx"]
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    assert row(ctx, job_id).status == "QUEUED"
    make_due(ctx, job_id)
    pipeline.start(ctx, job_id)
    job = row(ctx, job_id)
    assert job.status == "ERROR" and job.error_code == "upstream_503" and "after 2 attempts" in job.error_message


@pytest.mark.parametrize("step, code", [("reject", "upstream_400"), ("moderated", "content_moderated")])
def test_permanent_failures_end_the_job_at_once(ctx, fake, step, code):
    fake.script.steps = [step]
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    assert (row(ctx, job_id).status, row(ctx, job_id).error_code) == ("ERROR", code)


def test_our_own_crash_is_retried_then_reported(ctx, fake):
    fake.script.steps = ["crash", "crash"]
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    make_due(ctx, job_id)
    pipeline.start(ctx, job_id)
    assert (row(ctx, job_id).status, row(ctx, job_id).error_code) == ("ERROR", "internal_error")


def test_upstream_failed_state_fails_the_job(ctx, fake):
    fake.script.steps = ["task", "failed"]
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    pipeline.poll(ctx, job_id)
    assert (row(ctx, job_id).status, row(ctx, job_id).error_code) == ("ERROR", "fake_failed")


# --------------------------------------------------------------------------- in flight
def wait_for(check, timeout: float = 10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_async_calls_run_many_at_once_without_a_thread_each(db, tmp_path):
    provider = FakeAsyncProvider(delay=0.6, max_in_flight=40)
    inflight = InFlight()
    ctx = make_ctx(db, tmp_path, provider, inflight)
    try:
        ids = [new_job(ctx) for _ in range(30)]
        for job_id in ids:  # each start returns once the call is handed to the loop
            pipeline.start(ctx, job_id)
        assert inflight.in_flight() > 0
        wait_for(lambda: all(row(ctx, i).status == "COMPLETED" for i in ids))
        assert provider.most_open >= 20  # the calls overlapped on one event loop
        assert inflight.launched == inflight.finished == 30
    finally:
        ctx.close()


def test_in_flight_leases_are_extended_until_the_answer(db, tmp_path):
    provider = FakeAsyncProvider(delay=2.0)
    ctx = make_ctx(db, tmp_path, provider, InFlight())
    ctx.holdings = Holdings(ctx.sessions, 0.9, Journal(tmp_path / "journal"))
    try:
        job_id = new_job(ctx)
        pipeline.start(ctx, job_id)
        time.sleep(1.5)  # past the 0.9 s lease taken at the claim
        with ctx.sessions() as s:
            assert sweeps.lost_starts(s, 10) == []  # the heartbeat kept it
        wait_for(lambda: row(ctx, job_id).status == "COMPLETED")
    finally:
        ctx.close()


@pytest.mark.parametrize("step, status, code", [
    ("429", "QUEUED", None), ("5xx", "QUEUED", None), ("moderated", "ERROR", "content_moderated")])
def test_async_failures_are_classified_like_submits(db, tmp_path, step, status, code):
    provider = FakeAsyncProvider(steps=[step])
    ctx = make_ctx(db, tmp_path, provider, InFlight())
    try:
        job_id = new_job(ctx)
        pipeline.start(ctx, job_id)
        wait_for(lambda: row(ctx, job_id).status == status)
        assert row(ctx, job_id).error_code == code
    finally:
        ctx.close()


def test_async_provider_without_a_runner_calls_inline(db, tmp_path):
    ctx = make_ctx(db, tmp_path, FakeAsyncProvider())
    try:
        job_id = new_job(ctx)
        pipeline.start(ctx, job_id)
        assert row(ctx, job_id).status == "COMPLETED"
    finally:
        ctx.close()
