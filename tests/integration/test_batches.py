"""Batches through the real system: upload, validation, bulk intake with held jobs started by
the sweeper within the tenant's concurrency, the real worker and the simulator, results,
cancel, credits and the batch webhook."""

from __future__ import annotations

import io
import json
import os
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from tests.integration.conftest import Client
from tests.integration.receiver import Receiver, wait_until
from tests.integration.system import System

pytestmark = pytest.mark.integration

GEN = "/api/v1/bria/image/generation/generate-image"
# The batch run to completion. At the worker's pace on a shared 2-core machine (~12 jobs/s) the
# issue's 10,000 lines take ~14 min, too long for every CI run, so the suite completes 1,000
# lines and separately accepts (and cancels) a 10,000-line batch; VG_BATCH_TEST_LINES=10000
# runs the full completion (measured: accepted in 5.5 s, completed in 837 s).
LINES = int(os.environ.get("VG_BATCH_TEST_LINES", "1000"))


def line(custom_id: str, body: dict[str, Any] | None = None, endpoint: str = GEN) -> dict[str, Any]:
    return {"custom_id": custom_id, "endpoint": endpoint,
            "body": body if body is not None else {"prompt": "a batch of red bicycles", "seed": 7}}


def jsonl(lines: list[Any]) -> bytes:
    """One request per line; strings are written as they are (to make broken lines)."""
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in lines).encode()


def upload(client: Client, lines: list[Any], **params: str) -> httpx.Response:
    return client.http.post("/api/v1/batches", params=params,
                            files={"file": ("batch.jsonl", io.BytesIO(jsonl(lines)), "application/jsonl")})


def tenant_setup(name: str, *, concurrency: int | None = None, grant: int = 0, plan: str = "pro") -> None:
    from core import credits
    from core.db import session_factory
    from core.models import Tenant
    from core.tenants import set_limits

    with session_factory().begin() as session:
        if concurrency is not None:
            set_limits(session, name, {"concurrency": concurrency})
        if grant:
            tenant = session.scalar(select(Tenant).where(Tenant.name == name))
            credits.grant(session, tenant.id, grant, "batch test")


def balance(name: str) -> int:
    from core.db import session_factory
    from core.models import Tenant

    with session_factory()() as session:
        return session.scalar(select(Tenant.credits).where(Tenant.name == name))


def ledger_consistent(name: str) -> bool:
    """grants − reserves + releases == balance (the credits ledger's invariant)."""
    from core.db import session_factory
    from core.models import CreditEntry, Tenant

    with session_factory()() as session:
        tenant = session.scalar(select(Tenant).where(Tenant.name == name))
        sums = dict(session.execute(select(CreditEntry.kind, func.sum(CreditEntry.amount))
                                    .where(CreditEntry.tenant_id == tenant.id).group_by(CreditEntry.kind)).all())
        return sums.get("grant", 0) - sums.get("reserve", 0) + sums.get("release", 0) == tenant.credits


def job_count() -> int:
    from core.db import session_factory
    from core.models import Job

    with session_factory()() as session:
        return session.scalar(select(func.count()).select_from(Job))


def get_batch(client: Client, batch_id: str) -> dict[str, Any]:
    resp = client.http.get(f"/api/v1/batches/{batch_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]


def wait_batch(client: Client, batch_id: str, statuses: tuple[str, ...], timeout: float) -> dict[str, Any]:
    return wait_until(lambda: (doc := get_batch(client, batch_id))["status"] in statuses and doc,
                      timeout=timeout, interval=0.5, what=f"batch {batch_id} to be {statuses}")


def results(client: Client, batch_id: str) -> list[dict[str, Any]]:
    resp = client.http.get(f"/api/v1/batches/{batch_id}/results")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/jsonl")
    return [json.loads(x) for x in resp.text.splitlines()]


# --------------------------------------------------------------------------- the big one
@pytest.fixture
def bulk_workers(system: System):
    """More worker processes for the 10k batch (a worker process is bound to one core), without
    our own upstream rate limit (1,000 rpm by default); the normal worker is back afterwards."""
    env = {"VISIONGATE_UPSTREAM_LIMITS": '{"bria": {"rpm": null, "concurrency": null}}'}
    system.kill("worker")
    system.start("worker", env=env)
    system.start("worker-bulk", env=env, args=("--pool", "prefork", "--concurrency", "2"))
    try:
        yield
    finally:
        system.kill("worker-bulk")
        system.kill("worker")
        system.start("worker")


@pytest.mark.timeout(1800)  # ~10 jobs/s on a shared 2-core machine; see bench/results/
def test_ten_thousand_line_batch_runs_to_completion(system: System, make_key, bulk_workers):
    client = Client(system.api_url, make_key("bulk", "pro"))
    tenant_setup("bulk", concurrency=100, grant=5_000)  # pro starts with 10,000 credits
    start_balance = balance("bulk")
    system.sim("POST", "/_sim/config", json={"latency_seconds": 0})
    key = client.http.get("/api/v1/webhooks/secret").json()["result"]["secret"]
    lines = [line(f"item-{i:05d}") for i in range(LINES)]
    with Receiver() as rx:
        t0 = time.monotonic()
        resp = upload(client, lines, webhook_url=rx.url("/batch"))
        accepted_in = time.monotonic() - t0
        assert resp.status_code == 202, resp.text
        doc = resp.json()["result"]
        assert doc["status"] == "in_progress" and doc["counts"]["total"] == LINES
        assert doc["credit_cost"] == LINES and balance("bulk") == start_balance - LINES
        t1 = time.monotonic()
        done = wait_batch(client, doc["id"], ("completed",), timeout=1700)
        completed_in = time.monotonic() - t1
        print(f"\n{LINES}-line batch: accepted in {accepted_in:.2f} s, completed in {completed_in:.1f} s")
        assert done["counts"]["completed"] == LINES and done["progress"] == 1.0
        assert done["started_at"] and done["finished_at"]

        rows = results(client, doc["id"])
        assert [r["custom_id"] for r in rows] == [f"item-{i:05d}" for i in range(LINES)]  # line order
        assert all(r["status"] == "COMPLETED" and r["result"]["image_url"] for r in rows)
        assert len({r["request_id"] for r in rows}) == LINES
        assert httpx.get(rows[-1]["result"]["image_url"], timeout=10).status_code == 200

        [event] = rx.wait_for(1)
        payload = Webhook(key).verify(event.body, event.headers)
        assert payload["type"] == "batch.completed" and payload["data"]["id"] == doc["id"]
        assert payload["data"]["counts"]["completed"] == LINES
    assert balance("bulk") == start_balance - LINES and ledger_consistent("bulk")
    client.http.close()


def test_ten_thousand_lines_are_accepted_in_bulk_and_cancelled(system: System, make_key):
    """The issue's 10,000 lines: validated, inserted and reserved in one request, then cancelled
    (jobs not started are cancelled and refunded; nothing already finished is lost)."""
    client = Client(system.api_url, make_key("bulk10k", "pro"))
    tenant_setup("bulk10k", concurrency=2, grant=5_000)
    start_balance = balance("bulk10k")
    lines = [line(f"big-{i:05d}") for i in range(10_000)]
    resp = upload(client, lines)
    assert resp.status_code == 202, resp.text
    doc = resp.json()["result"]
    assert doc["counts"]["total"] == 10_000 and balance("bulk10k") == start_balance - 10_000
    cancelled = client.http.post(f"/api/v1/batches/{doc['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    done = wait_batch(client, doc["id"], ("cancelled",), timeout=120)
    counts = done["counts"]
    assert counts["cancelled"] >= 10_000 - 10 and counts["cancelled"] + counts["completed"] + counts.get("failed", 0) == 10_000
    # Every cancelled job's credits came back; the ones that ran were charged.
    assert balance("bulk10k") == start_balance - (10_000 - counts["cancelled"])
    assert ledger_consistent("bulk10k")
    client.http.close()


# --------------------------------------------------------------------------- validation
def test_invalid_lines_reject_the_batch_or_are_skipped(system: System, make_key):
    client = Client(system.api_url, make_key("batch-validate", "pro"))
    lines: list[Any] = [
        line("ok-1"),
        "{not json",
        line("ok-1"),  # duplicate custom_id
        line("bad-body", {"prompt": "abc", "num_results": 9}),
        line("bad-endpoint", endpoint="/api/v1/nope"),
        {"endpoint": GEN, "body": {"prompt": "no custom id here"}},
        line("ok-2", {"prompt": "a second valid line", "seed": 3}),
    ]
    before, start_balance = job_count(), balance("batch-validate")
    resp = upload(client, lines)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert [d["line"] for d in detail] == [2, 3, 4, 5, 6]
    by_line = {d["line"]: d for d in detail}
    assert by_line[2]["errors"][0]["type"] == "json_invalid"
    assert by_line[3]["custom_id"] == "ok-1" and by_line[3]["errors"][0]["loc"] == ["custom_id"]
    assert {tuple(e["loc"]) for e in by_line[4]["errors"]} == {("body", "prompt"), ("body", "num_results")}
    assert by_line[5]["errors"][0]["loc"] == ["endpoint"]
    assert by_line[6]["custom_id"] is None and by_line[6]["errors"][0]["loc"] == ["custom_id"]
    assert all(d["loc"] == ["body", "file", d["line"]] for d in detail)
    assert job_count() == before and balance("batch-validate") == start_balance

    # The same lines as JSON, skipping the invalid ones: the two valid lines run.
    resp = client.http.post("/api/v1/batches", json={"requests": lines[:1] + lines[2:], "on_invalid": "skip"})
    assert resp.status_code == 202, resp.text
    doc = resp.json()["result"]
    assert doc["counts"]["total"] == 2 and doc["counts"]["invalid"] == 4
    assert [e["line"] for e in doc["errors"]] == [2, 3, 4, 5]
    errors = client.http.get(f"/api/v1/batches/{doc['id']}/errors")
    assert [json.loads(x)["custom_id"] for x in errors.text.splitlines()] == ["ok-1", "bad-body", "bad-endpoint", None]
    assert job_count() == before + 2
    done = wait_batch(client, doc["id"], ("completed",), timeout=60)
    assert done["counts"]["completed"] == 2
    assert sorted(r["custom_id"] for r in results(client, doc["id"])) == ["ok-1", "ok-2"]

    # Nothing valid in skip mode: a failed batch record, no jobs; empty or malformed uploads: 422.
    failed = upload(client, ["[1]"], on_invalid="skip").json()["result"]
    assert failed["status"] == "failed" and failed["counts"]["invalid"] == 1 and failed["counts"]["total"] == 0
    assert upload(client, []).status_code == 422
    assert client.http.post("/api/v1/batches", json={"nope": 1}).status_code == 422
    bad_hook = upload(client, [line("x")], webhook_url="http://169.254.169.254/")
    assert bad_hook.status_code == 422 and bad_hook.json()["detail"][0]["loc"] == ["query", "webhook_url"]
    client.http.close()


def test_limits_credits_and_listing(system: System, make_key):
    client = Client(system.api_url, make_key("batch-small", "free"))  # 100 credits
    before = job_count()
    resp = upload(client, [line(f"c-{i}") for i in range(101)])
    assert resp.status_code == 406 and resp.json()["error"]["code"] == "insufficient_credits"
    assert resp.json()["error"]["credit_cost"] == 101
    assert job_count() == before and balance("batch-small") == 100 and ledger_consistent("batch-small")

    too_many = upload(client, [line(f"l-{i}", {"prompt": "tiny line"}) for i in range(50_001)])
    assert too_many.status_code == 413 and job_count() == before

    # Batches have their own body cap: a 33 MiB upload is read (and refused for its content),
    # where a single request of that size is cut off at the 32 MiB limit.
    big = line("big", {"prompt": "a fine prompt", "negative_prompt": "x" * (33 * 1024 * 1024), "num_results": 9})
    resp = upload(client, [big])
    assert resp.status_code == 422, resp.text[:300]
    assert [e["loc"] for e in resp.json()["detail"][0]["errors"]] == [["body", "num_results"]]

    # Batch jobs count against credits and concurrency, not the per-minute request limit: 15
    # jobs of a free tenant (10 requests/min per endpoint) all run, from one request.
    tenant_setup("batch-small", concurrency=8)
    fifteen = upload(client, [line(f"f-{i}") for i in range(15)])
    assert fifteen.status_code == 202, fifteen.text
    done = wait_batch(client, fifteen.json()["result"]["id"], ("completed",), timeout=90)
    assert done["counts"]["completed"] == 15 and balance("batch-small") == 85

    ids = [upload(client, [line(f"p-{n}")], on_invalid="skip").json()["result"]["id"] for n in range(3)]
    page1 = client.http.get("/api/v1/batches", params={"limit": 2}).json()["result"]
    assert page1["has_more"] is True and [b["id"] for b in page1["data"]] == ids[::-1][:2]
    page2 = client.http.get("/api/v1/batches", params={"limit": 2, "after": page1["next_cursor"]}).json()["result"]
    assert [b["id"] for b in page2["data"]] == [ids[0], done["id"]] and page2["has_more"] is False
    for batch_id in ids:
        wait_batch(client, batch_id, ("completed",), timeout=60)
    listed = client.http.get("/api/v1/batches", params={"status": "completed"}).json()["result"]["data"]
    assert {b["id"] for b in listed} == set(ids) | {done["id"]}
    assert client.http.get("/api/v1/batches", params={"status": "in_progress"}).json()["result"]["data"] == []
    other = Client(system.api_url, make_key("batch-stranger", "pro"))
    assert other.http.get(f"/api/v1/batches/{ids[0]}").status_code == 404
    assert other.http.get(f"/api/v1/batches/{ids[0]}/results").status_code == 404
    client.http.close()
    other.http.close()


# --------------------------------------------------------------------------- cancel
def test_cancel_midway_keeps_finished_results_and_releases_credits(system: System, make_key):
    client = Client(system.api_url, make_key("batch-cancel", "pro"))
    tenant_setup("batch-cancel", concurrency=2)
    start_balance = balance("batch-cancel")
    system.sim("POST", "/_sim/config", json={"latency_seconds": 0.5})
    key = client.http.get("/api/v1/webhooks/secret").json()["result"]["secret"]
    with Receiver() as rx:
        resp = upload(client, [line(f"c-{i:02d}") for i in range(30)], webhook_url=rx.url("/c"),
                      webhook_events="completed")
        assert resp.status_code == 202
        batch_id = resp.json()["result"]["id"]
        wait_until(lambda: get_batch(client, batch_id)["counts"]["completed"] >= 3, timeout=60,
                   what="three finished jobs")
        cancel = client.http.post(f"/api/v1/batches/{batch_id}/cancel")
        assert cancel.status_code == 200, cancel.text
        doc = cancel.json()["result"]
        assert doc["status"] in ("cancelling", "cancelled") and doc["jobs_cancelled"] > 0
        assert doc["cancelled_at"]
        done = wait_batch(client, batch_id, ("cancelled",), timeout=60)
        c = done["counts"]
        assert c["cancelled"] == doc["jobs_cancelled"] and c["completed"] + c["cancelled"] == 30
        assert c["queued"] == c["running"] == 0
        # Idempotent: a second cancel changes nothing.
        again = client.http.post(f"/api/v1/batches/{batch_id}/cancel").json()["result"]
        assert again["jobs_cancelled"] == 0 and again["status"] == "cancelled"

        rows = {r["custom_id"]: r for r in results(client, batch_id)}
        assert len(rows) == 30
        finished = [r for r in rows.values() if r["status"] == "COMPLETED"]
        assert len(finished) == c["completed"] >= 3
        assert all(httpx.get(r["result"]["image_url"], timeout=10).status_code == 200 for r in finished)
        cancelled = [r for r in rows.values() if r["state"] == "CANCELLED"]
        assert len(cancelled) == c["cancelled"] and all(r["error"]["code"] == "cancelled" for r in cancelled)

        # Only the jobs that ran cost credits; the ledger still balances.
        assert balance("batch-cancel") == start_balance - c["completed"]
        assert ledger_consistent("batch-cancel")

        # Webhooks: job.completed per finished job (asked for), then one batch.cancelled.
        msgs = rx.wait_for(c["completed"] + 1)
        payloads = [Webhook(key).verify(m.body, m.headers) for m in msgs]
        types = [p["type"] for p in payloads]
        assert types.count("job.completed") == c["completed"] and types.count("batch.cancelled") == 1
        [final] = [p for p in payloads if p["type"] == "batch.cancelled"]
        assert final["data"]["status"] == "cancelled" and final["data"]["counts"]["cancelled"] == c["cancelled"]
        job_msgs = [p for p in payloads if p["type"] == "job.completed"]
        assert {p["custom_id"] for p in job_msgs} == {r["custom_id"] for r in finished}
        assert all(p["batch_id"] == batch_id for p in job_msgs)
    client.http.close()
