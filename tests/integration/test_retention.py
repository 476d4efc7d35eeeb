"""Per-request retention through the real system: ``retention_seconds`` on a job request and on
a batch, the ``expires_at`` it gives the job (finish time + retention) in every status document,
webhook payload and batch result line, re-minted URLs before it, and 404 ``expired`` after it
(status routes, the job view, file URLs; other tenants still get a plain 404)."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from standardwebhooks import Webhook

from tests.integration.conftest import Client
from tests.integration.receiver import Receiver, wait_until
from tests.integration.system import System, free_port
from tests.integration.test_batches import line, results, upload, wait_batch

pytestmark = pytest.mark.integration

GEN = "/api/v1/bria/image/generation/generate-image"
OPENAI_GEN = "/api/v1/openai/image/generation/generate-image"
DEFAULT_RETENTION = 72 * 3600
MAX_RETENTION = 7 * 24 * 3600


def job_row(job_id: str):  # noqa: ANN201 - a core.models.Job
    from core.db import session_factory
    from core.models import Job

    with session_factory()() as session:
        return session.get(Job, job_id)


def job_count() -> int:
    from core.db import session_factory
    from core.models import Job

    with session_factory()() as session:
        return session.scalar(select(func.count()).select_from(Job))


def iso(value: dt.datetime) -> str:
    from core.results import iso as iso_

    return iso_(value)


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def retention_of(job_id: str) -> dt.timedelta:
    row = job_row(job_id)
    return row.expires_at - row.finished_at


def expire_now(job_id: str) -> None:
    """The job's retention ends now (as if its time had come)."""
    from core.db import session_factory
    from core.models import Job, utcnow

    with session_factory().begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(expires_at=utcnow() - dt.timedelta(seconds=1)))


def run_expiry(job_id: str) -> None:
    """Run the expiry task on the real worker and wait for it to reach the job."""
    from core.settings import get_settings
    from workers.app import EXPIRE_TASK, make_celery

    make_celery(get_settings()).send_task(EXPIRE_TASK, queue="maintenance")
    wait_until(lambda: job_row(job_id).status == "EXPIRED", timeout=20, what=f"job {job_id} to expire")


def submit(client: Client, path: str = GEN, **extra: Any) -> str:
    resp = client.http.post(path, json={"prompt": "a kept lighthouse", "sync": False, **extra})
    assert resp.status_code == 202, resp.text
    return resp.json()["result"]["request_id"]


def view(client: Client, job_id: str) -> httpx.Response:
    return client.http.get(f"/api/v1/jobs/{job_id}")


def assert_expired(resp: httpx.Response, job_id: str, expires_at: dt.datetime) -> None:
    assert resp.status_code == 404, resp.text
    error = resp.json()["error"]
    assert error["code"] == "expired" and error["request_id"] == job_id
    assert error["expired_at"] == iso(expires_at) and f"expired at {iso(expires_at)}" in error["message"]


@pytest.fixture
def keeper(system: System, make_key) -> Client:
    c = Client(system.api_url, make_key("retain", "pro"))
    yield c
    c.http.close()


# --------------------------------------------------------------------------- expires_at everywhere
def test_a_jobs_own_retention_sets_expires_at_in_every_document(system: System, keeper: Client):
    secret = keeper.http.get("/api/v1/webhooks/secret").json()["result"]["secret"]
    with Receiver() as rx:
        job_id = submit(keeper, retention_seconds=60, webhook_url=rx.url("/kept"))
        first = keeper.status(job_id).json()
        if first["status"] == "IN_PROGRESS":  # not known until the job finishes
            assert "expires_at" not in first  # Bria's document stays the reference's meanwhile
            running = view(keeper, job_id).json()["result"]
            assert running["expires_at"] is None and running["retention_seconds"] == 60
        doc = keeper.wait(job_id)
        assert doc["status"] == "COMPLETED"
        row = job_row(job_id)
        assert row.retention_seconds == 60 and row.expires_at - row.finished_at == dt.timedelta(seconds=60)
        expires = iso(row.expires_at)

        # The Bria status document and the provider-neutral job view.
        assert doc["expires_at"] == expires
        job = view(keeper, job_id).json()["result"]
        assert job["expires_at"] == job["retained_until"] == expires and job["retention_seconds"] == 60
        assert parse(job["expires_at"]) - parse(job["finished_at"]) == dt.timedelta(seconds=60)
        # The URLs of a read never outlive the job: here they end with it (60 s < the URL TTL).
        assert doc["result"]["expires_at"] == iso(dt.datetime.fromtimestamp(math.floor(row.expires_at.timestamp()), dt.UTC))

        # The webhook payload is the status document.
        [message] = rx.wait_for(1)
        payload = Webhook(secret).verify(message.body, message.headers)
        assert payload["type"] == "job.completed" and payload["data"]["expires_at"] == expires

    # Without the option: the server's default, and the column stays null.
    plain = submit(keeper)
    done = keeper.wait(plain)
    assert job_row(plain).retention_seconds is None and retention_of(plain) == dt.timedelta(seconds=DEFAULT_RETENTION)
    assert done["expires_at"] == iso(job_row(plain).expires_at)
    assert view(keeper, plain).json()["result"]["retention_seconds"] == DEFAULT_RETENTION


def test_a_failed_job_keeps_its_retention_too(system: System, keeper: Client):
    system.faults({"on": "submit", "kind": "error", "code": "422", "message": "refused by the simulator"})
    job_id = submit(keeper, retention_seconds=120)
    doc = keeper.wait(job_id)
    assert doc["status"] == "ERROR" and doc["expires_at"] == iso(job_row(job_id).expires_at)
    assert retention_of(job_id) == dt.timedelta(seconds=120)


def test_other_providers_jobs_take_the_option_too(system: System, keeper: Client):
    """OpenAI's endpoints answer with the result (always sync); their status is the job view."""
    resp = keeper.http.post(OPENAI_GEN, json={"prompt": "a glass teapot on a table", "retention_seconds": 300})
    assert resp.status_code in (200, 202), resp.text
    job_id = resp.json()["result"]["request_id"]
    job = wait_until(lambda: (d := view(keeper, job_id).json()["result"])["state"] == "COMPLETED" and d,
                     timeout=30, what="the OpenAI job")
    assert job["retention_seconds"] == 300 and job["expires_at"] == iso(job_row(job_id).expires_at)
    assert retention_of(job_id) == dt.timedelta(seconds=300)


# --------------------------------------------------------------------------- bad values
def test_a_bad_retention_is_422_and_creates_no_job(system: System, keeper: Client):
    before = job_count()
    cases = [(59, "greater_than_equal"), (0, "greater_than_equal"), (-60, "greater_than_equal"),
             (MAX_RETENTION + 1, "less_than_equal"), (10**30, "less_than_equal"), ("3600", "int_type"),
             (3600.5, "int_type"), (3600.0, "int_type"), (True, "int_type"), ([60], "int_type"),
             ({"seconds": 60}, "int_type")]
    for path in (GEN, OPENAI_GEN):
        for value, type_ in cases:
            resp = keeper.http.post(path, json={"prompt": "a refused lighthouse", "retention_seconds": value})
            assert resp.status_code == 422, (path, value, resp.text)
            [item] = resp.json()["detail"]
            assert item["loc"] == ["body", "retention_seconds"] and item["type"] == type_, (value, item)
    over = keeper.generate({"prompt": "a refused lighthouse", "retention_seconds": MAX_RETENTION + 1}).json()
    assert over["detail"][0]["ctx"] == {"le": MAX_RETENTION}
    assert job_count() == before
    # The maximum itself is fine.
    assert keeper.generate({"prompt": "a long kept lighthouse", "sync": False,
                            "retention_seconds": MAX_RETENTION}).status_code == 202


# --------------------------------------------------------------------------- batches
def test_a_batch_gives_its_retention_to_every_job(system: System, make_key):
    client = Client(system.api_url, make_key("retain-batch", "pro"))
    resp = client.http.post("/api/v1/batches", json={"requests": [line("a"), line("b")], "retention_seconds": 120})
    assert resp.status_code == 202, resp.text
    batch_id = resp.json()["result"]["id"]
    wait_batch(client, batch_id, ("completed",), timeout=60)
    rows = results(client, batch_id)
    assert [r["custom_id"] for r in rows] == ["a", "b"]
    for r in rows:
        row = job_row(r["request_id"])
        assert row.retention_seconds == 120 and row.expires_at - row.finished_at == dt.timedelta(seconds=120)
        assert r["expires_at"] == iso(row.expires_at)
        assert parse(r["result"]["expires_at"]) <= parse(r["expires_at"])

    # A form field (multipart upload) and a query parameter.
    by_form = client.http.post("/api/v1/batches", data={"retention_seconds": "90"},
                               files={"file": ("b.jsonl", io.BytesIO(json.dumps(line("f")).encode()), "application/jsonl")})
    assert by_form.status_code == 202, by_form.text
    by_query = upload(client, [line("q")], retention_seconds="75")
    assert by_query.status_code == 202, by_query.text
    for resp, kept in ((by_form, 90), (by_query, 75)):
        batch = resp.json()["result"]["id"]
        wait_batch(client, batch, ("completed",), timeout=60)
        [r] = results(client, batch)
        assert job_row(r["request_id"]).retention_seconds == kept and retention_of(r["request_id"]).total_seconds() == kept

    # Bad values: 422 naming where the field came from, nothing created.
    before = job_count()
    bad = client.http.post("/api/v1/batches", json={"requests": [line("x")], "retention_seconds": 30})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "retention_seconds"], bad.text
    bad = client.http.post("/api/v1/batches", json={"requests": [line("x")], "retention_seconds": MAX_RETENTION + 1})
    assert bad.status_code == 422 and bad.json()["detail"][0]["type"] == "less_than_equal", bad.text
    bad = upload(client, [line("x")], retention_seconds="soon")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "retention_seconds"], bad.text
    assert job_count() == before
    client.http.close()


def test_an_expired_batch_job_reads_expired_in_the_results(system: System, make_key):
    client = Client(system.api_url, make_key("retain-batch-expiry", "pro"))
    resp = upload(client, [line("gone")], retention_seconds="60")
    batch_id = resp.json()["result"]["id"]
    wait_batch(client, batch_id, ("completed",), timeout=60)
    [r] = results(client, batch_id)
    expire_now(r["request_id"])
    run_expiry(r["request_id"])
    [after] = results(client, batch_id)
    expires = job_row(r["request_id"]).expires_at
    assert after["status"] == "EXPIRED" and after["result"] is None and after["expires_at"] == iso(expires)
    assert after["error"]["code"] == "expired" and iso(expires) in after["error"]["message"]
    client.http.close()


# --------------------------------------------------------------------------- URLs and expiry
def test_rereading_the_status_mints_a_fresh_url_until_the_job_expires(system: System, keeper: Client, make_key):
    from core.settings import get_settings
    from core.signing import sign_url

    job_id = submit(keeper, retention_seconds=7200)  # longer than the URL TTL (3600 s)
    first = keeper.wait(job_id)["result"]
    time.sleep(1.1)
    second = keeper.status(job_id).json()["result"]
    assert second["image_url"] != first["image_url"] and parse(second["expires_at"]) > parse(first["expires_at"])
    for url in (first["image_url"], second["image_url"]):
        assert httpx.get(url, timeout=10).status_code == 200
    # A link that ran out while the job is kept: 410, and a re-read gives a working one.
    key = first["image_url"].split("/files/")[1].split("?")[0]
    old = sign_url(get_settings().secret_key, system.api_url, key, int(time.time()) - 5)
    stale = httpx.get(old, timeout=10)
    assert stale.status_code == 410 and stale.json()["error"]["code"] == "link_expired"
    assert httpx.get(keeper.status(job_id).json()["result"]["image_url"], timeout=10).status_code == 200

    # Past expires_at (even before the sweeper deletes anything) every read says expired, and
    # so do the links: the one handed out before, and one that ran out with the job.
    expire_now(job_id)
    expires = job_row(job_id).expires_at
    assert_expired(keeper.status(job_id), job_id, expires)
    assert_expired(view(keeper, job_id), job_id, expires)
    assert_expired(httpx.get(old, timeout=10), job_id, expires)
    run_expiry(job_id)
    assert_expired(keeper.status(job_id), job_id, expires)
    assert_expired(view(keeper, job_id), job_id, expires)
    for url in (first["image_url"], second["image_url"]):
        assert_expired(httpx.get(url, timeout=10), job_id, expires)
        assert httpx.head(url, timeout=10).status_code == 404

    # Another tenant, an unknown id, a tampered link: plain answers, nothing about the job.
    other = Client(system.api_url, make_key("retain-other", "pro"))
    for resp in (other.status(job_id), other.http.get(f"/api/v1/jobs/{job_id}"), keeper.status("0" * 32)):
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found", resp.text
        assert "expired" not in resp.json()["error"]["message"]
    assert httpx.get(first["image_url"].replace("signature=", "signature=0"), timeout=10).status_code == 403
    other.http.close()


def test_the_status_fast_path_hands_expired_jobs_to_the_route(system: System, make_key):
    """On an API process whose fast path is on (keys cached), an expired job's read is still
    404 ``expired``, not a cached COMPLETED document."""
    port = free_port()
    system.start("api-retain", env={"VISIONGATE_STATUS_CACHE_SECONDS": "3600",
                                    "VISIONGATE_AUTH_CACHE_SECONDS": "60"}, port=port)
    try:
        base = f"http://127.0.0.1:{port}"
        key = make_key("retain-fast", "pro")
        client = Client(system.api_url, key)
        job_id = submit(client, retention_seconds=60)
        client.wait(job_id)
        headers = {"X-API-Key": key}
        reads = [httpx.get(f"{base}/api/v1/bria/status/{job_id}", headers=headers) for _ in range(2)]
        expires = iso(job_row(job_id).expires_at)
        assert [r.json()["expires_at"] for r in reads] == [expires, expires]  # the route's, then the fast path's
        other = Client(system.api_url, key)
        other_job = submit(other, retention_seconds=60)
        other.wait(other_job)
        expire_now(other_job)  # never read by this process: the fast path must find it expired
        for _ in range(2):
            assert_expired(httpx.get(f"{base}/api/v1/bria/status/{other_job}", headers=headers), other_job,
                           job_row(other_job).expires_at)
        client.http.close()
        other.http.close()
    finally:
        system.kill("api-retain")


def test_a_migrated_postgres_matches_the_models(system_env: dict[str, str]):
    """What ``alembic revision --autogenerate`` would write against the suite's database: nothing."""
    from core.settings import get_settings
    from tests.unit.test_migrations import autogenerate_diff

    assert autogenerate_diff(get_settings().db_url) == []
