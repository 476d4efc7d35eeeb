"""The worker's pipeline against the real simulator (over HTTP) and a migrated SQLite file.

The broker is the one edge replaced here: published messages are collected in a list so each
step can be driven and checked one at a time (the integration tier runs real Celery)."""

import datetime as dt
import io
import time

import httpx
import pytest
from PIL import Image
from sqlalchemy import update

from core.models import Job, Tenant, utcnow
from core.notify import Notifier
from core.settings import Settings
from core.storage import LocalStorage
from core.tenants import get_or_create_tenant
from providers.bria.provider import BriaProvider
from tests.sim_server import running_simulator
from workers import pipeline, sweeper
from workers.context import Context


@pytest.fixture(scope="module")
def sim():
    with running_simulator(latency_seconds=0.2) as url:
        yield url


@pytest.fixture
def ctx(db, sim, tmp_path):
    sessions, _ = db
    httpx.post(f"{sim}/_sim/reset").raise_for_status()
    httpx.post(f"{sim}/_sim/config", json={"latency_seconds": 0.2}).raise_for_status()
    settings = Settings(VISIONGATE_DATA_DIR=tmp_path, VISIONGATE_MAX_START_ATTEMPTS=2,
                        VISIONGATE_RETRY_BACKOFF_BASE_SECONDS=0.01)
    sent: list[tuple[str, str, str]] = []
    c = Context(settings=settings, sessions=sessions, storage=LocalStorage(tmp_path / "r"),
                         notifier=Notifier(""), providers={"bria": BriaProvider(sim, "tok", timeout=5)},
                         publish=lambda *m, **kw: sent.append(m))
    c.sent = sent
    yield c
    c.close()


def new_job(ctx, **params) -> str:
    with ctx.sessions.begin() as s:
        tenant = get_or_create_tenant(s, "t")
        job = Job(tenant_id=tenant.id, provider="bria", operation="bria.generate_image",
                  params={"prompt": "a lighthouse", "aspect_ratio": "4:3", "num_results": 1, **params},
                  sync=False)
        s.add(job)
        s.flush()
        return job.id


def row(ctx, job_id) -> Job:
    with ctx.sessions() as s:
        return s.get(Job, job_id)


def poll_until_final(ctx, job_id, timeout=10):
    deadline = time.time() + timeout
    while row(ctx, job_id).status == "SUBMITTED" and time.time() < deadline:
        pipeline.poll(ctx, job_id)
        time.sleep(0.05)
    return row(ctx, job_id)


def test_start_poll_complete_stores_real_images(ctx):
    job_id = new_job(ctx, num_results=2, seed=5)
    pipeline.start(ctx, job_id)
    job = row(ctx, job_id)
    assert job.status == "SUBMITTED" and len(job.upstream_tasks) == 2 and job.attempts == 1
    pipeline.poll(ctx, job_id)  # too early: still pending, next poll scheduled
    assert row(ctx, job_id).status == "SUBMITTED" and row(ctx, job_id).polls == 1
    job = poll_until_final(ctx, job_id)
    assert job.status == "COMPLETED"
    assert [o["content_type"] for o in job.outputs] == ["image/png", "image/png"]
    for out in job.outputs:
        img = Image.open(io.BytesIO(ctx.storage.path(out["key"]).read_bytes()))
        assert img.size == (out["width"], out["height"])
        assert abs(img.size[0] / img.size[1] - 4 / 3) < 0.02
    assert job.result_meta["seed"] == 5 and job.result_meta["seeds"] == [5, 6]


def test_duplicate_start_does_not_resubmit(ctx):
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    pipeline.start(ctx, job_id)
    assert httpx.get(f"{ctx.providers['bria'].base_url}/_sim/stats").json()["submit"] == 1


def test_rate_limit_requeues_without_spending_an_attempt(ctx, sim):
    httpx.post(f"{sim}/_sim/faults", json=[{"on": "submit", "kind": "429", "retry_after": 30}])
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    job = row(ctx, job_id)
    assert job.status == "QUEUED" and job.attempts == 0 and job.published_at is None
    assert 25 < (job.run_at - utcnow()).total_seconds() <= 30
    pipeline.start(ctx, job_id)  # not due yet: nothing happens
    assert row(ctx, job_id).status == "QUEUED"


def test_retryable_errors_are_bounded(ctx, sim):
    httpx.post(f"{sim}/_sim/faults", json=[{"on": "submit", "kind": "503", "times": 5}])
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    assert row(ctx, job_id).status == "QUEUED"
    with ctx.sessions.begin() as s:
        s.execute(update(Job).values(run_at=utcnow()))
    pipeline.start(ctx, job_id)
    job = row(ctx, job_id)
    assert job.status == "ERROR" and "after 2 attempts" in job.error_message


def test_rejected_request_fails_at_once(ctx):
    job_id = new_job(ctx, aspect_ratio="21:9")  # not a ratio Bria accepts: upstream 4xx
    pipeline.start(ctx, job_id)
    job = row(ctx, job_id)
    assert job.status == "ERROR" and job.error_code.startswith("upstream_4") and job.attempts == 1


def test_upstream_error_state_fails_the_job_with_its_message(ctx, sim):
    httpx.post(f"{sim}/_sim/faults", json=[{"on": "submit", "kind": "error", "code": 422,
                                           "message": "flagged"}])
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    job = poll_until_final(ctx, job_id)
    assert job.status == "ERROR" and job.error_message == "flagged"


def test_sweep_dispatches_due_work_and_recovers_lost_workers(ctx):
    polled = new_job(ctx)
    pipeline.start(ctx, polled)
    lost = new_job(ctx)
    unpublished = new_job(ctx)
    with ctx.sessions.begin() as s:
        s.execute(update(Job).where(Job.id == polled).values(run_at=utcnow()))
        s.execute(update(Job).where(Job.id == lost).values(
            status="RUNNING", attempts=1, lease_until=utcnow() - dt.timedelta(seconds=1)))
        s.execute(update(Job).where(Job.id == unpublished).values(published_at=None))
    counts = sweeper.sweep(ctx)
    assert counts["polls"] == 1 and counts["recovered"] == 1
    assert ("visiongate.poll", [polled], "bria") in ctx.sent
    starts = {m for m in ctx.sent if m[0] == "visiongate.start"}
    assert {("visiongate.start", lost, "bria"), ("visiongate.start", unpublished, "bria")} <= starts
    assert row(ctx, lost).status == "QUEUED"
    ctx.sent.clear()
    assert sweeper.sweep(ctx)["starts"] == 0 and not ctx.sent  # nothing is sent twice


def test_lost_worker_past_attempt_cap_fails(ctx):
    job_id = new_job(ctx)
    with ctx.sessions.begin() as s:
        s.execute(update(Job).values(status="RUNNING", attempts=2,
                                     lease_until=utcnow() - dt.timedelta(seconds=1)))
    sweeper.sweep(ctx)
    job = row(ctx, job_id)
    assert job.status == "ERROR" and job.error_code == "worker_lost"


def test_expire_deletes_files_then_hides_the_job(ctx):
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    job = poll_until_final(ctx, job_id)
    path = ctx.storage.path(job.outputs[0]["key"])
    assert path.exists()
    assert sweeper.expire(ctx) == 0
    with ctx.sessions.begin() as s:
        s.execute(update(Job).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert sweeper.expire(ctx) == 1
    assert not path.exists() and row(ctx, job_id).status == "EXPIRED"


def test_start_asks_for_an_early_first_poll(ctx):
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    assert ctx.sent == [("visiongate.poll", [job_id], "bria")]
    job = row(ctx, job_id)
    # The sweeper's own schedule stays one poll interval out, as a fallback for a lost message.
    assert 0.5 < (job.run_at - job.submitted_at).total_seconds() <= ctx.settings.poll_interval_seconds


def roomy(ctx) -> None:
    """Give the test tenant a plan that lets all its jobs run at once."""
    with ctx.sessions.begin() as s:
        s.execute(update(Tenant).values(plan="pro"))


def test_one_poll_message_checks_a_batch_of_jobs(ctx, sim):
    ids = [new_job(ctx, seed=i) for i in range(6)]
    roomy(ctx)
    for job_id in ids:
        pipeline.start(ctx, job_id)
    ctx.sent.clear()
    with ctx.sessions.begin() as s:  # all due at once
        s.execute(update(Job).values(run_at=utcnow()))
    ctx.settings.poll_batch = 4
    sweeper.sweep(ctx)
    batches = [m[1] for m in ctx.sent if m[0] == "visiongate.poll"]
    assert sorted(len(b) for b in batches) == [2, 4] and sorted(sum(batches, [])) == sorted(ids)
    time.sleep(0.3)  # the simulator's latency: every upstream task is done now
    before = httpx.get(f"{sim}/_sim/stats").json()["status"]
    for batch in batches:
        pipeline.poll(ctx, batch)
    assert httpx.get(f"{sim}/_sim/stats").json()["status"] - before == 6
    assert {row(ctx, j).status for j in ids} == {"COMPLETED"}
    pipeline.poll(ctx, ids)  # nothing left to check: no upstream request
    assert httpx.get(f"{sim}/_sim/stats").json()["status"] - before == 6


def test_failed_status_checks_in_a_batch_only_touch_their_job(ctx, sim):
    ids = [new_job(ctx, seed=i) for i in range(3)]
    roomy(ctx)
    for job_id in ids:
        pipeline.start(ctx, job_id)
    time.sleep(0.3)
    httpx.post(f"{sim}/_sim/faults", json=[{"on": "status", "kind": "503", "match": row(ctx, ids[0]).upstream_tasks[0]["id"]}])
    pipeline.poll(ctx, ids)
    first = row(ctx, ids[0])
    assert first.status == "SUBMITTED" and first.poll_failures == 1
    assert [row(ctx, j).status for j in ids[1:]] == ["COMPLETED", "COMPLETED"]
    pipeline.poll(ctx, ids)
    assert row(ctx, ids[0]).status == "COMPLETED"


def test_first_check_is_inline_for_an_operation_known_to_be_fast(ctx, sim):
    httpx.post(f"{sim}/_sim/config", json={"latency_seconds": 0}).raise_for_status()
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)  # unknown operation: an early check message, nothing inline
    assert row(ctx, job_id).status == "SUBMITTED"
    assert [m[0] for m in ctx.sent] == [ctx.poll_task]
    assert poll_until_final(ctx, job_id).status == "COMPLETED"  # done at its first check
    for _ in range(6):
        ctx.pacing.observe("bria.generate_image", 0.0)
    ctx.sent.clear()
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)  # the start task itself checks, finds it done and stores it
    job = row(ctx, job_id)
    assert job.status == "COMPLETED" and job.outputs[0]["content_type"] == "image/png"
    assert ctx.sent == []


def test_first_check_of_a_slow_operation_waits_for_its_usual_duration(ctx):
    for _ in range(40):
        ctx.pacing.observe("bria.generate_image", 60.0)
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    job = row(ctx, job_id)
    wait = (job.run_at - job.submitted_at).total_seconds()
    assert job.status == "SUBMITTED" and 40 < wait <= 45  # ~0.75 × 60 s: the sweeper's due poll
    assert ctx.sent == []  # no early check message
    pipeline.poll(ctx, job_id)  # a check anyway (e.g. a duplicate): the next waits as long
    job = row(ctx, job_id)
    assert job.status == "SUBMITTED" and (job.run_at - utcnow()).total_seconds() > 40


def test_tasks_seen_running_a_poll_interval_stop_early_checks_until_one_finishes(ctx, sim):
    httpx.post(f"{sim}/_sim/config", json={"latency_seconds": 30}).raise_for_status()
    first = new_job(ctx)
    pipeline.start(ctx, first)
    assert ctx.sent == [("visiongate.poll", [first], "bria")]  # nothing known: an early check
    with ctx.sessions.begin() as s:  # as if the sweeper checks it a poll interval later
        s.execute(update(Job).where(Job.id == first).values(
            submitted_at=utcnow() - dt.timedelta(seconds=ctx.settings.poll_interval_seconds + 0.5)))
    pipeline.poll(ctx, first)
    assert row(ctx, first).status == "SUBMITTED"  # still running upstream
    ctx.sent.clear()
    second = new_job(ctx)
    pipeline.start(ctx, second)
    assert ctx.sent == []  # no message of its own: the sweeper's batched checks find it
    job = row(ctx, second)
    assert (job.run_at - job.submitted_at).total_seconds() == pytest.approx(
        ctx.settings.poll_interval_seconds, abs=0.05)
