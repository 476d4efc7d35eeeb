"""Per-request retention (core/retention.py): the option's checks, the finishing moves' expires_at
(computed by the UPDATE, on a migrated SQLite file), what the documents show, expiry."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from core import batches
from core.jobs import claims, moves, states
from core.models import Batch, Job, utcnow
from core.results import job_document, status_document
from core.settings import Settings
from core.statuscache import StatusEntry
from core.tenants import get_or_create_tenant
from core.webhooks.schemas import JobOptions
from providers.registry import OPERATIONS

GEN = "/api/v1/bria/image/generation/generate-image"


# --------------------------------------------------------------------------- the option
def errors(model, value, **context):
    with pytest.raises(ValidationError) as exc:
        model.model_validate({"retention_seconds": value}, context=context or None)
    return [(e["loc"], e["type"]) for e in exc.value.errors(include_url=False)]


def test_retention_option_is_an_integer_from_60_to_the_server_limit():
    assert JobOptions.model_validate({"retention_seconds": 60}).retention_seconds == 60
    assert JobOptions.model_validate({}).retention_seconds is None
    limit = Settings().retention_limit
    assert limit == 7 * 24 * 3600
    assert JobOptions.model_validate({"retention_seconds": limit}).retention_seconds == limit
    assert errors(JobOptions, limit + 1) == [(("retention_seconds",), "less_than_equal")]
    assert errors(JobOptions, 59) == [(("retention_seconds",), "greater_than_equal")]
    for wrong in ("3600", 3600.0, True, [60], {"s": 60}):  # a JSON integer, nothing else
        assert errors(JobOptions, wrong) == [(("retention_seconds",), "int_type")], wrong
    assert errors(JobOptions, 10**40) == [(("retention_seconds",), "less_than_equal")]
    # The API passes its settings' limit.
    assert errors(JobOptions, 120, max_retention=100) == [(("retention_seconds",), "less_than_equal")]
    # Retention alone needs no webhook.
    assert JobOptions.model_validate({"retention_seconds": 600}).webhook_url is None


def test_batch_retention_may_come_as_form_or_query_text():
    assert batches.BatchOptions.model_validate({"retention_seconds": "3600"}).retention_seconds == 3600
    assert batches.BatchOptions.model_validate({"retention_seconds": 90}).retention_seconds == 90
    assert errors(batches.BatchOptions, "an hour") == [(("retention_seconds",), "int_type")]
    assert errors(batches.BatchOptions, "30") == [(("retention_seconds",), "greater_than_equal")]
    assert errors(batches.BatchOptions, "99999999") == [(("retention_seconds",), "less_than_equal")]


def test_the_limit_is_never_below_the_default(monkeypatch):
    monkeypatch.setenv("VISIONGATE_RETENTION_SECONDS", str(30 * 24 * 3600))
    monkeypatch.setenv("VISIONGATE_MAX_RETENTION_SECONDS", "3600")
    assert Settings().retention_limit == 30 * 24 * 3600
    monkeypatch.setenv("VISIONGATE_MAX_RETENTION_SECONDS", str(90 * 24 * 3600))
    assert Settings().retention_limit == 90 * 24 * 3600


# --------------------------------------------------------------------------- the moves
def _job(sessions, retention: int | None = None, **kw) -> str:
    with sessions.begin() as s:
        tenant = get_or_create_tenant(s, "t")
        job = Job(tenant_id=tenant.id, provider="bria", operation="bria.generate_image", params={},
                  sync=False, retention_seconds=retention, **kw)
        s.add(job)
        s.flush()
        return job.id


def _row(sessions, job_id: str) -> Job:
    with sessions() as s:
        return s.get(Job, job_id)


def test_finishing_sets_expires_at_from_the_jobs_own_retention(db):
    sessions, _ = db
    own, default, failed, failed_default = (_job(sessions, 60), _job(sessions), _job(sessions, 120), _job(sessions))
    with sessions.begin() as s:
        for job_id in (own, default):
            claims.claim_start(s, job_id, 30)
            assert moves.complete(s, job_id, [{"key": "k"}], {}, 3600)
        assert moves.fail(s, failed, "x", "failed", 3600)
        assert moves.fail(s, failed_default, "x", "failed", 3600)
    for job_id, kept in ((own, 60), (default, 3600), (failed, 120), (failed_default, 3600)):
        row = _row(sessions, job_id)
        assert row.expires_at - row.finished_at == dt.timedelta(seconds=kept), job_id
        assert row.expires_at.tzinfo is not None


def test_the_finishing_statements_stay_cached(db):
    sessions, _ = db
    ids = [_job(sessions, r) for r in (60, None, 300)]
    with sessions.begin() as s:
        claims.claim_start(s, ids[0], 30)
        moves.complete(s, ids[0], [], {}, 3600)
        before = len(moves._MOVES)
        for job_id in ids[1:]:
            claims.claim_start(s, job_id, 30)
            moves.complete(s, job_id, [], {}, 3600)
    assert len(moves._MOVES) == before  # one statement for every complete, whatever the retention


def test_expiry_sql_on_both_dialects():
    stmt = moves.expiry(utcnow(), 3600)
    pg = str(stmt.compile(dialect=postgresql.dialect()))
    assert "coalesce(jobs.retention_seconds" in pg and "INTERVAL '1 second'" in pg
    lite = str(stmt.compile(dialect=sqlite.dialect()))
    assert "strftime(" in lite and "substr(" in lite


def test_a_cancelled_batch_job_keeps_the_batchs_retention(db):
    sessions, _ = db
    parsed = batches.parse_requests([{"custom_id": f"l{i}", "endpoint": GEN, "body": {"prompt": "a red bicycle"}}
                                     for i in range(2)], max_lines=10, operations=OPERATIONS)
    with sessions.begin() as s:
        tenant_id = get_or_create_tenant(s, "bt", "pro").id
        batch = batches.create(s, tenant_id=tenant_id, metered=False, parsed=parsed,
                               options=batches.BatchOptions(retention_seconds=90), base_url="http://api")
        batch_id = batch.id
    with sessions.begin() as s:
        assert batches.cancel(s, s.get(Batch, batch_id), 3600) == 2
    with sessions() as s:
        rows = s.scalars(select(Job).where(Job.batch_id == batch_id)).all()
        assert [r.retention_seconds for r in rows] == [90, 90]
        assert all(r.expires_at - r.finished_at == dt.timedelta(seconds=90) for r in rows)
        line = batches.result_line(rows[0], Settings(), "http://api")
    assert line["expires_at"] == rows[0].expires_at.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- documents, expiry
def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _fake(status: str, expires_at: dt.datetime | None, retention: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(id="j1", tenant_id="t1", provider="bria", operation="bria.generate_image",
                           status=status, outputs=[{"key": "t1/j1/0.png", "content_type": "image/png"}],
                           result_meta={}, error_code=None, error_message=None, expires_at=expires_at,
                           retention_seconds=retention, progress=None, attempts=1, created_at=utcnow(),
                           started_at=None, finished_at=None)


def test_status_documents_carry_expires_at_once_known():
    settings = Settings()
    running = status_document(_fake("RUNNING", None), settings, "http://api")
    assert running == {"status": "IN_PROGRESS", "request_id": "j1", "result": None, "error": None}  # the reference's
    assert job_document(_fake("RUNNING", None), settings, "http://api")["expires_at"] is None
    end = utcnow() + dt.timedelta(seconds=60)
    done = status_document(_fake("COMPLETED", end), settings, "http://api")
    assert done["expires_at"] == end.isoformat().replace("+00:00", "Z")
    # The URLs of this read expire with the job at the latest.
    assert parse(done["result"]["expires_at"]) <= parse(done["expires_at"])
    view = job_document(_fake("COMPLETED", end, 60), settings, "http://api")
    assert view["expires_at"] == view["retained_until"] == done["expires_at"]
    assert view["retention_seconds"] == 60
    assert job_document(_fake("QUEUED", None), settings, "http://api")["retention_seconds"] == settings.retention_seconds


def test_expired_means_marked_or_past_expires_at():
    now = utcnow()
    assert states.is_expired(_fake("EXPIRED", None))
    assert states.is_expired(_fake("COMPLETED", now - dt.timedelta(seconds=1)))
    assert not states.is_expired(_fake("COMPLETED", now + dt.timedelta(seconds=60)))
    assert not states.is_expired(_fake("RUNNING", None))
    assert not states.is_visible(_fake("COMPLETED", now - dt.timedelta(seconds=1)), "t1")
    assert not states.is_visible(_fake("COMPLETED", now + dt.timedelta(seconds=60)), "t2")
    # A cached final entry goes with its job's retention.
    entry = StatusEntry("j1", "t1", "bria", "COMPLETED", None, None, None, None, now - dt.timedelta(seconds=1))
    assert not entry.visible_to("t1", "bria")


def test_a_running_status_document_shows_progress_and_place_in_line_when_known():
    settings = Settings()
    job = _fake("SUBMITTED", None)
    job.progress = 0.4
    assert status_document(job, settings, "http://api") == {
        "status": "IN_PROGRESS", "request_id": "j1", "result": None, "error": None, "progress": 0.4}
    held = status_document(_fake("QUEUED", None), settings, "http://api", queue_position=3)
    assert held["queue_position"] == 3 and "progress" not in held
    done = _fake("COMPLETED", utcnow() + dt.timedelta(seconds=60))
    done.progress = 1.0
    assert "progress" not in status_document(done, settings, "http://api", queue_position=None)
