"""One job's whole life through HTTP, the real Celery worker, Postgres, Redis and the simulator."""

from __future__ import annotations

import datetime as dt
import io
import time

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select, update

from tests.integration.conftest import Client
from tests.integration.system import System, free_port

pytestmark = pytest.mark.integration

GEN = "/api/v1/bria/image/generation/generate-image"


def job_count() -> int:
    from core.db import session_factory
    from core.models import Job

    with session_factory()() as session:
        return session.scalar(select(func.count()).select_from(Job))


def job_row(job_id: str):
    from core.db import session_factory
    from core.models import Job

    with session_factory()() as session:
        return session.get(Job, job_id)


def download(url: str) -> httpx.Response:
    return httpx.get(url, timeout=30)


# --------------------------------------------------------------------------- happy paths
def test_submit_poll_complete_download(system: System, client: Client):
    system.sim("POST", "/_sim/config", json={"latency_seconds": 2.0})
    resp = client.generate({"prompt": "a red bicycle", "aspect_ratio": "16:9", "sync": False,
                            "num_results": 2, "seed": 1234})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "success"
    result = body["result"]
    assert result["status"] == "IN_PROGRESS"
    assert result["status_url"] == f"{system.api_url}/api/v1/bria/status/{result['request_id']}"

    first = httpx.get(result["status_url"], headers=client.http.headers).json()
    assert first == {"status": "IN_PROGRESS", "request_id": result["request_id"],
                     "result": None, "error": None}

    doc = client.wait(result["request_id"])
    assert doc["status"] == "COMPLETED", doc
    res = doc["result"]
    assert len(res["urls"]) == 2 and res["image_url"] == res["urls"][0]
    assert res["image_url"].startswith(system.api_url + "/files/")
    assert res["seed"] == 1234
    expires = dt.datetime.fromisoformat(res["expires_at"].replace("Z", "+00:00"))
    assert 3500 < (expires - dt.datetime.now(dt.UTC)).total_seconds() <= 3600

    images = []
    for url in res["urls"]:
        got = download(url)
        assert got.status_code == 200
        img = Image.open(io.BytesIO(got.content))
        assert img.format == "PNG"
        w, h = img.size
        assert abs((w / h) / (16 / 9) - 1) < 0.02
        assert 0.85e6 < w * h < 1.25e6
        images.append(got.content)
    assert images[0] != images[1]  # two results are two images

    # The same prompt and seed give the same bytes.
    again = client.generate({"prompt": "a red bicycle", "aspect_ratio": "16:9", "sync": False,
                             "seed": 1234})
    doc2 = client.wait(again.json()["result"]["request_id"])
    assert download(doc2["result"]["image_url"]).content == images[0]


def test_sync_true_waits_and_answers_200(system: System, client: Client):
    resp = client.generate({"prompt": "a green kettle on a table"})  # sync defaults to true
    assert resp.status_code == 200, resp.text
    result = resp.json()["result"]
    assert result["status"] == "COMPLETED"
    img = Image.open(io.BytesIO(download(result["image_url"]).content))
    assert img.size[0] == img.size[1]  # default aspect ratio 1:1
    assert client.status(result["request_id"]).json()["status"] == "COMPLETED"


def test_sync_past_deadline_answers_202(system: System, api_key: str):
    port = free_port()
    system.start("api-short", env={"VISIONGATE_SYNC_DEADLINE_SECONDS": "1"}, port=port)
    try:
        system.sim("POST", "/_sim/config", json={"latency_seconds": 4.0})
        slow = Client(f"http://127.0.0.1:{port}", api_key)
        started = time.monotonic()
        resp = slow.generate({"prompt": "a slow painting", "sync": True})
        assert resp.status_code == 202, resp.text
        assert 0.9 < time.monotonic() - started < 4
        assert slow.wait(resp.json()["result"]["request_id"])["status"] == "COMPLETED"
    finally:
        system.kill("api-short")


# --------------------------------------------------------------------------- upstream failures
def test_upstream_429_then_success(system: System, client: Client):
    system.faults({"on": "submit", "kind": "429", "times": 2, "retry_after": 1})
    resp = client.generate({"prompt": "a rate limited cat", "sync": False})
    job_id = resp.json()["result"]["request_id"]
    time.sleep(0.5)
    assert client.status(job_id).json()["status"] == "IN_PROGRESS"
    doc = client.wait(job_id)
    assert doc["status"] == "COMPLETED"
    assert system.sim_stats()["submit"] == 3
    assert job_row(job_id).attempts == 1  # rate limits do not spend attempts


def test_upstream_500_every_time_ends_in_error(system: System, client: Client):
    system.faults({"on": "submit", "kind": "500", "times": 10})
    job_id = client.generate({"prompt": "a broken upstream", "sync": False}).json()["result"]["request_id"]
    doc = client.wait(job_id)
    assert doc["status"] == "ERROR"
    assert doc["error"]["code"] == "upstream_500"
    assert "after 3 attempts" in doc["error"]["message"]
    assert system.sim_stats()["submit"] == 3


def test_status_check_failures_are_retried(system: System, client: Client):
    system.faults({"on": "status", "kind": "503", "times": 2})
    job_id = client.generate({"prompt": "a flaky status service", "sync": False}).json()["result"]["request_id"]
    assert client.wait(job_id)["status"] == "COMPLETED"
    assert job_row(job_id).poll_failures == 2


def test_upstream_error_status_ends_in_error_with_message(system: System, client: Client):
    system.faults({"on": "submit", "kind": "error", "code": "422",
                   "message": "Prompt flagged by content moderation"})
    job_id = client.generate({"prompt": "something not allowed", "sync": False}).json()["result"]["request_id"]
    doc = client.wait(job_id)
    assert doc["status"] == "ERROR"
    assert doc["error"]["message"] == "Prompt flagged by content moderation"
    assert doc["result"] is None


def test_sync_request_whose_job_fails_answers_502(system: System, client: Client):
    system.faults({"on": "submit", "kind": "error", "code": "500", "message": "model crashed"})
    resp = client.generate({"prompt": "rejected upstream", "sync": True})
    assert resp.status_code == 502, resp.text
    err = resp.json()
    assert err["status"] == "error" and err["error"]["request_id"]
    assert err["error"]["message"] == "model crashed"


# --------------------------------------------------------------------------- delivery guarantees
def test_duplicate_start_message_makes_one_upstream_call(system: System, client: Client):
    from core.settings import get_settings
    from workers.app import START_TASK, make_celery

    system.sim("POST", "/_sim/config", json={"latency_seconds": 1.0})
    job_id = client.generate({"prompt": "exactly once please", "sync": False}).json()["result"]["request_id"]
    celery = make_celery(get_settings())
    for _ in range(3):
        celery.send_task(START_TASK, args=[job_id], queue="bria")
    assert client.wait(job_id)["status"] == "COMPLETED"
    time.sleep(1.0)  # let the duplicates be consumed
    assert system.sim_stats()["submit"] == 1


def test_worker_killed_mid_submit_job_still_completes(system: System, client: Client):
    # The upstream takes 2.5 s to accept; the worker dies while waiting for it.
    system.faults({"on": "submit", "kind": "timeout", "delay": 2.5})
    job_id = client.generate({"prompt": "survive a crash", "sync": False}).json()["result"]["request_id"]
    deadline = time.time() + 10
    while job_row(job_id).status != "RUNNING" and time.time() < deadline:
        time.sleep(0.05)
    assert job_row(job_id).status == "RUNNING"
    system.kill("worker")
    system.start("worker")
    doc = client.wait(job_id, timeout=40)
    assert doc["status"] == "COMPLETED"
    assert job_row(job_id).attempts == 2


def test_publish_lost_is_reconciled(system: System, api_key: str):
    """A job committed but never published (the API died in between) still runs."""
    from core.db import session_factory
    from core.models import Job, Tenant, utcnow

    with session_factory().begin() as session:
        tenant = session.scalar(select(Tenant).where(Tenant.name == "acme"))
        job = Job(tenant_id=tenant.id, provider="bria", operation="bria.generate_image",
                  params={"prompt": "never published", "aspect_ratio": "1:1", "num_results": 1},
                  sync=False, status="QUEUED", run_at=utcnow(), published_at=utcnow())
        session.add(job)
        session.flush()
        job_id = job.id
    doc = Client(system.api_url, api_key).wait(job_id, timeout=30)
    assert doc["status"] == "COMPLETED"


# --------------------------------------------------------------------------- tenants and results
def test_tenants_see_only_their_jobs(system: System, client: Client, make_key):
    job_id = client.generate({"prompt": "private work", "sync": False}).json()["result"]["request_id"]
    other = Client(system.api_url, make_key("globex"))
    for path in (f"/api/v1/bria/status/{job_id}", f"/api/v1/jobs/{job_id}"):
        resp = other.http.get(path)
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == "not_found"
    assert client.http.get(f"/api/v1/jobs/{job_id}").status_code == 200
    assert client.status("0" * 32).status_code == 404


def test_signed_urls_tamper_expiry_and_retention(system: System, client: Client):
    from core.settings import get_settings
    from core.signing import sign_url
    from workers.app import EXPIRE_TASK, make_celery

    job_id = client.generate({"prompt": "a signed result", "sync": False}).json()["result"]["request_id"]
    url = client.wait(job_id)["result"]["image_url"]
    assert download(url).status_code == 200
    assert download(url.replace("signature=", "signature=0")).status_code == 403
    assert download(url.replace("/0.png", "/1.png")).status_code == 403
    key = url.split("/files/")[1].split("?")[0]
    past = sign_url(get_settings().secret_key, system.api_url, key, int(time.time()) - 5)
    assert download(past).status_code == 410

    # Past retention the files go and the job reads as 404.
    from core.db import session_factory
    from core.models import Job, utcnow

    with session_factory().begin() as session:
        session.execute(update(Job).where(Job.id == job_id)
                        .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    make_celery(get_settings()).send_task(EXPIRE_TASK, queue="maintenance")
    deadline = time.time() + 15
    while job_row(job_id).status != "EXPIRED" and time.time() < deadline:
        time.sleep(0.2)
    assert job_row(job_id).status == "EXPIRED"
    assert client.status(job_id).status_code == 404
    assert download(url).status_code == 404


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_and_creates_no_job(system: System, client: Client):
    before = job_count()
    bad = client.generate({"prompt": "abc", "num_results": 9, "aspect_ratio": "21:9"})
    assert bad.status_code == 422
    locs = {tuple(d["loc"]) for d in bad.json()["detail"]}
    assert {("body", "prompt"), ("body", "num_results"), ("body", "aspect_ratio")} <= locs

    assert client.http.post(GEN, content=b'{"prompt": ', headers={"Content-Type": "application/json"}).status_code == 422
    assert client.http.post(GEN, content=b"[1,2]").status_code == 422

    anon = httpx.post(f"{system.api_url}{GEN}", json={"prompt": "a valid prompt"})
    assert anon.status_code == 401
    assert anon.json() == {"status": "error", "error": {
        "code": "unauthorized", "message": "missing API key: send it in the X-API-Key header"}}
    wrong = httpx.post(f"{system.api_url}{GEN}", json={"prompt": "a valid prompt"},
                       headers={"X-API-Key": "vg_nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"

    huge = client.http.post(GEN, content=b'{"prompt": "' + b"x" * (33 * 1024 * 1024) + b'"}',
                            headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "payload_too_large"

    assert client.http.get("/api/v1/nope").status_code == 404
    assert client.http.delete(GEN).status_code == 405
    assert job_count() == before


def test_curl_style_form_content_type_is_read_as_json(system: System, client: Client):
    resp = client.http.post(GEN, content=b'{"prompt":"a red bicycle","sync":false}',
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 202, resp.text


def test_health_and_readiness(system: System):
    assert httpx.get(f"{system.api_url}/health").json()["status"] == "success"
    ready = httpx.get(f"{system.api_url}/ready")
    assert ready.status_code == 200
    assert ready.json()["result"] == {"database": "ok", "broker": "ok"}
