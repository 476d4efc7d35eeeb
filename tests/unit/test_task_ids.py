"""A task id, once received, is never lost: recorded alone right after the upstream's answer,
kept in the journal while the database is away, resumed (never resubmitted) by a later claim or
by recovery; orphaned tasks are cancelled where the provider can; possible duplicates counted."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from core.jobs import moves, sweeps
from core.models import Job, utcnow
from providers.fake import FakeCancellableProvider, FakeProvider
from providers.base import Retryable
from tests.unit.test_pipeline_fake import make_ctx, new_job, row
from workers import pipeline, sweeper
from workers.holdings import Holdings
from workers.journal import Journal


@pytest.fixture
def held(db, tmp_path):
    def build(provider):
        ctx = make_ctx(db, tmp_path, provider)
        ctx.holdings = Holdings(ctx.sessions, 0.9, Journal(tmp_path / "journal"),
                                on_recorded=lambda j, t, r: pipeline.resume_recorded(ctx, j, t, r),
                                autostart=False)
        return ctx
    return build


def expire_lease(ctx, job_id) -> None:
    with ctx.sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(lease_until=utcnow() - dt.timedelta(seconds=1)))


def test_the_task_id_is_recorded_before_anything_else(held, monkeypatch):
    ctx = held(FakeProvider(["task", "pending"]))
    job_id = new_job(ctx)
    seen = {}

    def after_record(point: str) -> None:  # the worker "dies" here: what does the row say?
        if point == "after_record":
            seen["row"] = row(ctx, job_id)
            raise SystemExit
    monkeypatch.setattr(pipeline.faultpoints, "reached", after_record)
    with pytest.raises(SystemExit):
        pipeline.start(ctx, job_id)
    assert seen["row"].status == "RUNNING" and seen["row"].upstream_tasks[0]["id"] == "fake-task-1"


def test_a_recovered_job_with_recorded_task_ids_is_polled_not_resubmitted(held, monkeypatch):
    fake = FakeProvider(["task", "task", "done"])
    ctx = held(fake)
    ctx.holdings._healthy_since -= 10  # the sweeper's process saw the database healthy for long
    job_id = new_job(ctx)
    monkeypatch.setattr(pipeline.faultpoints, "reached",
                        lambda p: (_ for _ in ()).throw(SystemExit) if p == "after_record" else None)
    with pytest.raises(SystemExit):
        pipeline.start(ctx, job_id)
    ctx.holdings.discard(job_id)  # the worker died: nobody extends the lease
    expire_lease(ctx, job_id)
    assert sweeper.sweep(ctx)["recovered"] == 1
    job = row(ctx, job_id)
    assert job.status == "SUBMITTED" and job.uncertain_submits == 0
    pipeline.poll(ctx, job_id)
    assert row(ctx, job_id).status == "COMPLETED"
    assert [c for c in fake.calls if c[0] == "submit"] == [("submit", "fake.render")]  # one submit


def test_a_lost_start_without_task_ids_is_resubmitted_and_counted_as_uncertain(held):
    fake = FakeProvider(["task", "done"])
    ctx = held(fake)
    ctx.holdings._healthy_since -= 10
    job_id = new_job(ctx)
    with ctx.sessions.begin() as s:  # claimed by a worker that then died (before recording)
        s.execute(update(Job).where(Job.id == job_id).values(status="RUNNING", attempts=1,
                                                             lease_until=utcnow() - dt.timedelta(seconds=1)))
    sweeper.sweep(ctx)
    job = row(ctx, job_id)
    assert job.status == "QUEUED" and job.uncertain_submits == 1


def test_recovery_waits_a_lease_after_the_database_came_back(held):
    ctx = held(FakeProvider(["task"]))
    job_id = new_job(ctx)
    with ctx.sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(status="RUNNING", attempts=1,
                                                             lease_until=utcnow() - dt.timedelta(seconds=1)))
    ctx.holdings._healthy_since = None  # the heartbeat just failed: an outage
    assert sweeper.sweep(ctx)["recovered"] == 0
    ctx.holdings.beat()  # the database answers again: healthy from now on
    assert sweeper.sweep(ctx)["recovered"] == 0  # live workers get a lease to renew theirs
    ctx.holdings._healthy_since -= 1.0
    assert sweeper.sweep(ctx)["recovered"] == 1


def test_a_submit_timeout_that_may_have_arrived_is_counted(held):
    ctx = held(FakeProvider())
    job_id = new_job(ctx)
    job = pipeline._claim(ctx, job_id)
    pipeline._submitted(ctx, job, ctx.providers["fake"], Retryable("read timeout", maybe_sent=True))
    assert row(ctx, job_id).uncertain_submits == 1
    with ctx.sessions.begin() as s:  # due again at once
        s.execute(update(Job).where(Job.id == job_id).values(run_at=utcnow()))
    job = pipeline._claim(ctx, job_id)
    pipeline._submitted(ctx, job, ctx.providers["fake"], Retryable("connect refused", maybe_sent=False))
    assert row(ctx, job_id).uncertain_submits == 1  # a refused connection sent nothing


def test_database_away_when_recording_keeps_the_ids_in_the_journal(held, monkeypatch):
    fake = FakeProvider(["task", "done"])
    ctx = held(fake)
    job_id = new_job(ctx)
    monkeypatch.setattr(pipeline, "RECORD_RETRIES", (0.01,))
    real = moves.record_tasks
    down = {"on": True}

    def record(session, jid, tasks):
        if down["on"]:
            raise OperationalError("UPDATE jobs", {}, Exception("server closed the connection"))
        return real(session, jid, tasks)
    monkeypatch.setattr(moves, "record_tasks", record)
    pipeline.start(ctx, job_id)
    assert ctx.holdings.journal.get(job_id)[0]["id"] == "fake-task-1"
    assert job_id in ctx.holdings.held()  # still held: its lease is extended meanwhile
    assert row(ctx, job_id).status == "RUNNING"

    ctx.holdings.beat()  # still down: kept
    assert ctx.holdings.journal.get(job_id) is not None and ctx.holdings.healthy_for() == 0
    down["on"] = False
    ctx.holdings.beat()  # back: written, the job moves on, the journal entry is gone
    assert ctx.holdings.journal.get(job_id) is None and job_id not in ctx.holdings.held()
    assert row(ctx, job_id).status in ("SUBMITTED", "COMPLETED")
    assert [c for c in fake.calls if c[0] == "submit"] == [("submit", "fake.render")]


def test_a_claim_reads_the_journal_before_it_would_submit_again(held):
    fake = FakeProvider(["done"])
    ctx = held(fake)
    job_id = new_job(ctx)
    ctx.holdings.journal.write(job_id, [{"id": "fake-task-9", "status_url": None, "done": False,
                                         "outputs": [], "meta": {}}])
    pipeline.start(ctx, job_id)  # a restarted worker's first claim of the job
    assert row(ctx, job_id).upstream_tasks[0]["id"] == "fake-task-9"
    assert not [c for c in fake.calls if c[0] == "submit"]
    assert row(ctx, job_id).status == "SUBMITTED"
    pipeline.poll(ctx, job_id)
    assert row(ctx, job_id).status == "COMPLETED"


def test_orphaned_tasks_are_cancelled_where_the_provider_can(held):
    fake = FakeCancellableProvider(["task"])
    ctx = held(fake)
    job_id = new_job(ctx)
    job = pipeline._claim(ctx, job_id)
    with ctx.sessions.begin() as s:  # meanwhile the job timed out
        moves.fail(s, job_id, "timeout", "too slow", 60)
    pipeline._submitted(ctx, job, fake, fake.submit(ctx.operations["fake.render"], {}))
    assert fake.cancelled == ["fake-task-1"]


def test_replaying_a_journal_entry_twice_is_not_an_orphan(held):
    fake = FakeCancellableProvider(["task", "done"])
    ctx = held(fake)
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    tasks = row(ctx, job_id).upstream_tasks
    with ctx.sessions.begin() as s:
        assert moves.record_tasks(s, job_id, tasks)  # already there: the same ids
    assert fake.cancelled == []


def test_journal_survives_a_new_process(tmp_path):
    Journal(tmp_path / "j").write("abc123", [{"id": "t1"}])
    assert Journal(tmp_path / "j").entries() == [("abc123", [{"id": "t1"}])]
    with pytest.raises(ValueError):
        Journal(tmp_path / "j").write("../etc", [])


def test_lost_starts_say_whether_ids_are_recorded(held):
    ctx = held(FakeProvider(["task"]))
    job_id = new_job(ctx)
    with ctx.sessions.begin() as s:
        s.execute(update(Job).where(Job.id == job_id).values(
            status="RUNNING", upstream_tasks=[{"id": "x"}], lease_until=utcnow() - dt.timedelta(seconds=1)))
    with ctx.sessions() as s:
        assert sweeps.lost_starts(s, 10) == [(job_id, 0, True)]


def _die_at(point: str):
    def reached(p: str) -> None:
        if p == point:
            raise SystemExit
    return reached


def test_a_worker_killed_after_noting_the_ids_is_resumed_by_recovery(held, monkeypatch):
    """Killed between the upstream's answer and the database write: the note it left in the
    host's journal is read by the lost-start recovery, which polls the task: one submit, and
    the job is not counted as a possible duplicate."""
    fake = FakeProvider(["task", "done"])
    ctx = held(fake)
    ctx.holdings._healthy_since -= 10
    job_id = new_job(ctx)
    monkeypatch.setattr(pipeline.faultpoints, "reached", _die_at("after_note"))
    with pytest.raises(SystemExit):
        pipeline.start(ctx, job_id)
    assert row(ctx, job_id).upstream_tasks is None  # not in the row
    assert ctx.holdings.journal.get(job_id)[0]["id"] == "fake-task-1"  # but noted
    ctx.holdings.discard(job_id)
    expire_lease(ctx, job_id)
    assert sweeper.sweep(ctx)["recovered"] == 1
    job = row(ctx, job_id)
    assert job.status == "SUBMITTED" and job.uncertain_submits == 0
    assert job.upstream_tasks[0]["id"] == "fake-task-1" and ctx.holdings.journal.get(job_id) is None
    pipeline.poll(ctx, job_id)
    assert row(ctx, job_id).status == "COMPLETED"
    assert [c for c in fake.calls if c[0] == "submit"] == [("submit", "fake.render")]


def test_a_claim_reads_a_note_before_it_would_submit_again(held, monkeypatch):
    fake = FakeProvider(["task", "done"])
    ctx = held(fake)
    job_id = new_job(ctx)
    monkeypatch.setattr(pipeline.faultpoints, "reached", _die_at("after_note"))
    with pytest.raises(SystemExit):
        pipeline.start(ctx, job_id)
    monkeypatch.setattr(pipeline.faultpoints, "reached", lambda p: None)
    with ctx.sessions.begin() as s:  # requeued (say by a sweeper of another host), claimed here
        s.execute(update(Job).where(Job.id == job_id).values(status="QUEUED", run_at=utcnow(), lease_until=None))
    pipeline.start(ctx, job_id)
    assert row(ctx, job_id).status == "SUBMITTED" and ctx.holdings.journal.get(job_id) is None
    assert [c for c in fake.calls if c[0] == "submit"] == [("submit", "fake.render")]


def test_a_normal_start_leaves_no_note(held):
    ctx = held(FakeProvider(["task"]))
    job_id = new_job(ctx)
    pipeline.start(ctx, job_id)
    assert row(ctx, job_id).status == "SUBMITTED"
    assert not list((ctx.holdings.journal.folder).glob("*"))


def test_the_heartbeat_adopts_only_the_notes_of_dead_processes(held, tmp_path):
    ctx = held(FakeProvider(["done"]))
    dead, live = new_job(ctx), new_job(ctx)
    with ctx.sessions.begin() as s:
        s.execute(update(Job).where(Job.id.in_([dead, live])).values(status="RUNNING", attempts=1))
    journal = ctx.holdings.journal
    task = [{"id": "fake-task-7", "status_url": None, "done": False, "outputs": [], "meta": {}}]
    journal.note(live, task)  # this process: alive, its start thread is about to record it
    gone = _dead_pid()
    journal.folder.joinpath(f"{dead}.{gone}.note").write_text(json.dumps({"job_id": dead, "tasks": task}))
    journal.folder.joinpath(f"{dead}.{gone}.notetmp").write_text("{half")
    ctx.holdings.beat()
    assert row(ctx, dead).upstream_tasks[0]["id"] == "fake-task-7" and row(ctx, dead).status == "SUBMITTED"
    assert row(ctx, live).upstream_tasks is None  # left to its own (live) process
    assert sorted(p.name for p in journal.folder.iterdir()) == [f"{live}.{os.getpid()}.note"]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
