"""core/batches.py: per-line validation of JSONL uploads, and (on a migrated SQLite file) bulk
creation with one credit reservation, cancel with credit release, and completion detection."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select

from core import batches, credits
from core.jobs import moves, sweeps
from core.models import Batch, CreditEntry, Job, Tenant, WebhookDelivery
from core.tenants import get_or_create_tenant
from providers.registry import OPERATIONS

GEN = "/api/v1/bria/image/generation/generate-image"


def jl(*items) -> io.BytesIO:
    return io.BytesIO("".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items).encode())


def ok(cid: str, **body) -> dict:
    return {"custom_id": cid, "endpoint": GEN, "body": {"prompt": "a red bicycle", **body}}


# --------------------------------------------------------------------------- validation
def test_every_bad_line_is_reported_with_its_number_and_errors():
    parsed = batches.parse_jsonl(jl(
        ok("a"),
        "{broken",
        "",  # blank lines are skipped but keep the numbering
        ok("a"),
        {"custom_id": "b", "endpoint": GEN, "body": {"prompt": "abc", "num_results": 9, "aspect_ratio": "7:3"}},
        {"custom_id": "c", "endpoint": "/api/v1/unknown", "body": {}},
        {"custom_id": "d", "endpoint": GEN, "method": "GET", "body": {"prompt": "a fine prompt"}},
        {"custom_id": "e", "endpoint": GEN, "body": "not an object"},
        {"endpoint": GEN, "body": {"prompt": "no id"}},
        [1, 2],
        {"custom_id": "x" * 201, "endpoint": GEN, "body": {"prompt": "a fine prompt"}},
        ok("f", seed=3),
    ), max_lines=100, operations=OPERATIONS)
    assert [(l.line, l.custom_id) for l in parsed.lines] == [(1, "a"), (12, "f")]
    assert parsed.lines[1].params["seed"] == 3 and parsed.lines[1].params["num_results"] == 1
    report = {e["line"]: e for e in parsed.errors}
    assert sorted(report) == [2, 4, 5, 6, 7, 8, 9, 10, 11]
    assert report[2]["errors"][0]["type"] == "json_invalid"
    assert report[4]["custom_id"] == "a" and report[4]["errors"][0]["type"] == "duplicate"
    assert {tuple(e["loc"]) for e in report[5]["errors"]} == {
        ("body", "prompt"), ("body", "num_results"), ("body", "aspect_ratio")}
    assert report[6]["errors"][0]["loc"] == ["endpoint"]
    assert report[7]["errors"][0]["loc"] == ["method"]
    assert report[8]["errors"][0]["loc"] == ["body"]
    assert report[9]["custom_id"] is None and report[9]["errors"][0]["loc"] == ["custom_id"]
    assert report[10]["errors"][0]["type"] == "object_type"
    assert report[11]["errors"][0]["type"] == "string_too_long"


def test_lines_go_through_the_same_media_and_alias_step_as_single_requests():
    parsed = batches.parse_requests([
        {"custom_id": "alias", "endpoint": "/api/v1/bria/image/editing/upscale-image",
         "body": {"image_url": "https://example.com/x.png"}},
        {"custom_id": "bad-b64", "endpoint": "/api/v1/bria/image/editing/remove-background",
         "body": {"image": "data:image/png;base64,AAAA"}},
    ], max_lines=10, operations=OPERATIONS)
    assert [(l.custom_id, l.op.name) for l in parsed.lines] == [("alias", "bria.upscale_image")]
    assert parsed.errors[0]["custom_id"] == "bad-b64" and parsed.errors[0]["errors"][0]["loc"] == ["body", "image"]


def test_requests_list_and_line_limit():
    parsed = batches.parse_requests([ok("a"), {"custom_id": "b"}], max_lines=10, operations=OPERATIONS)
    assert len(parsed.lines) == 1 and parsed.errors[0]["line"] == 2
    assert {tuple(e["loc"]) for e in parsed.errors[0]["errors"]} == {("endpoint",), ("body",)}
    with pytest.raises(batches.TooManyLines):
        batches.parse_jsonl(jl(*[ok(f"x{i}") for i in range(4)]), max_lines=3, operations=OPERATIONS)
    with pytest.raises(ValueError):
        batches.parse_requests({"not": "a list"}, max_lines=3, operations=OPERATIONS)


def test_batch_options():
    opts = batches.BatchOptions.model_validate({"on_invalid": "skip", "webhook_url": "https://e.com/h",
                                                "webhook_events": "started, completed, batch.completed"})
    assert opts.webhook_events == ["job.started", "job.completed"]
    with pytest.raises(Exception):
        batches.BatchOptions.model_validate({"on_invalid": "maybe"})
    with pytest.raises(Exception):
        batches.BatchOptions.model_validate({"webhook_url": "http://192.168.1.1/"})


# --------------------------------------------------------------------------- creation, cancel, close
@pytest.fixture
def sessions(db):
    return db[0]


def tenant(sessions, name="bt", plan="free"):
    with sessions.begin() as s:
        return get_or_create_tenant(s, name, plan).id  # free: 100 credits


def balance_and_ledger(sessions, tenant_id):
    with sessions() as s:
        bal = s.scalar(select(Tenant.credits).where(Tenant.id == tenant_id))
        sums = dict(s.execute(select(CreditEntry.kind, func.sum(CreditEntry.amount))
                              .where(CreditEntry.tenant_id == tenant_id).group_by(CreditEntry.kind)).all())
    return bal, sums.get("grant", 0) - sums.get("reserve", 0) + sums.get("release", 0)


def create(sessions, tenant_id, n, **options):
    parsed = batches.parse_requests([ok(f"l{i}", num_results=2) for i in range(n)], max_lines=1000,
                                    operations=OPERATIONS)
    with sessions.begin() as s:
        return batches.create(s, tenant_id=tenant_id, metered=True, parsed=parsed,
                              options=batches.BatchOptions(**options), base_url="http://api").id


def test_create_reserves_all_credits_at_once_and_holds_the_jobs(sessions):
    tid = tenant(sessions)
    batch_id = create(sessions, tid, 30)  # 2 credits per line
    bal, ledger = balance_and_ledger(sessions, tid)
    assert bal == 40 and ledger == 40
    with sessions() as s:
        rows = s.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.created_at)).all()
        assert [j.custom_id for j in rows] == [f"l{i}" for i in range(30)]  # line order = start order
        assert all(j.status == "QUEUED" and j.held_at and j.published_at is None and j.credit_cost == 2
                   for j in rows)
        assert s.scalar(select(func.count()).select_from(CreditEntry).where(CreditEntry.kind == "reserve")) == 30
    # Not enough for the next one: nothing is written.
    with pytest.raises(credits.InsufficientCredits) as err:
        create(sessions, tid, 21)
    assert err.value.cost == 42 and err.value.available == 40
    assert balance_and_ledger(sessions, tid) == (40, 40)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Batch)) == 1


def test_cancel_releases_unstarted_jobs_and_the_sweeper_closes_the_batch(sessions):
    tid = tenant(sessions)
    batch_id = create(sessions, tid, 5, webhook_url="https://hooks.example/b",
                      webhook_events=["failed", "cancelled"])
    with sessions() as s:
        ids = s.scalars(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.created_at)).all()
    with sessions.begin() as s:  # job 0 finished, job 1 is upstream
        for job_id in ids[:2]:
            s.get(Job, job_id).status = "RUNNING"
        moves.complete(s, ids[0], [], {}, 60)
    with sessions.begin() as s:
        assert batches.cancel(s, s.get(Batch, batch_id), 60) == 3
    with sessions.begin() as s:
        assert batches.cancel(s, s.get(Batch, batch_id), 60) == 0  # idempotent
        assert s.get(Batch, batch_id).status == "cancelling"  # job 1 still runs
        assert batches.close_finished(s, 10) == []
    bal, ledger = balance_and_ledger(sessions, tid)
    assert bal == ledger == 100 - 4  # two jobs keep their reservation (one done, one running)
    with sessions.begin() as s:
        moves.complete(s, ids[1], [], {}, 60)
    with sessions.begin() as s:
        assert batches.close_finished(s, 10) == [(batch_id, "cancelled")]
        doc = batches.batch_document(s, s.get(Batch, batch_id))
    assert doc["counts"] == {"total": 5, "queued": 0, "running": 0, "completed": 2, "failed": 0,
                                  "cancelled": 3, "expired": 0, "finished": 5, "invalid": 0}
    with sessions() as s:
        events = s.execute(select(WebhookDelivery.job_id, WebhookDelivery.batch_id)).all()
    assert len([e for e in events if e.job_id]) == 3  # job.failed for each cancelled job (asked for)
    assert [e.batch_id for e in events if e.job_id is None] == [batch_id]  # batch.cancelled
    with sessions() as s:
        page = batches.result_page(s, batch_id, None, 100)
        assert [j.custom_id for j in page] == [f"l{i}" for i in range(5)]
        from core.settings import Settings

        lines = [batches.result_line(j, Settings(), "http://api") for j in page]
    assert [l["status"] for l in lines] == ["COMPLETED", "COMPLETED", "ERROR", "ERROR", "ERROR"]
    assert lines[2]["error"]["code"] == "cancelled"


def test_waiting_batch_jobs_do_not_time_out_but_started_ones_do(sessions):
    import datetime as dt

    from core.models import utcnow

    tid = tenant(sessions, "slow")
    batch_id = create(sessions, tid, 2)
    long_ago = utcnow() - dt.timedelta(hours=4)
    with sessions.begin() as s:
        waiting, started = s.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.created_at)).all()
        waiting.created_at = started.created_at = long_ago
        started.status, started.started_at = "SUBMITTED", long_ago
        single = Job(tenant_id=tid, provider="bria", operation="bria.generate_image", params={}, sync=False,
                     status="QUEUED", created_at=long_ago)
        s.add(single)
        s.flush()
        ids = (waiting.id, started.id, single.id)
    with sessions() as s:
        assert set(sweeps.overdue(s, 3 * 3600, 100)) == {ids[1], ids[2]}
