"""Status reads through the fast path and the status cache (``api.routes.status``,
``core.statuscache``), on a second API process whose cache would keep an unfinished job for an
hour: only the job-finished messages can make it answer anything else."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from tests.integration.conftest import Client
from tests.integration.receiver import wait_until
from tests.integration.system import System, free_port
from tests.integration.test_batches import line, tenant_setup, upload
from tests.integration.test_plans import tenant_db

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cached_api(system: System):
    port = free_port()
    # The suite's other API process has no auth cache (keys are re-checked on every request),
    # which turns the fast path off; this one keeps keys like the product default does.
    system.start("api-cached", env={"VISIONGATE_STATUS_CACHE_SECONDS": "3600",
                                    "VISIONGATE_AUTH_CACHE_SECONDS": "60"}, port=port)
    yield f"http://127.0.0.1:{port}"
    system.kill("api-cached")


def job_state(job_id: str) -> str:
    from core.db import session_factory
    from core.models import Job

    with session_factory()() as s:
        return s.scalar(select(Job.status).where(Job.id == job_id))


def read(base: str, key: str, job_id: str) -> httpx.Response:
    return httpx.get(f"{base}/api/v1/bria/status/{job_id}", headers={"X-API-Key": key})


def test_a_finish_reaches_a_cached_unfinished_read(system: System, cached_api: str, make_key):
    key = make_key("cache-finish", "pro")
    system.sim("POST", "/_sim/config", json={"latency_seconds": 1.5})
    job_id = Client(system.api_url, key).generate({"prompt": "a slow lighthouse", "sync": False}).json()[
        "result"]["request_id"]
    for _ in range(3):  # the first read fills the cache, the others are answered from it
        assert read(cached_api, key, job_id).json()["status"] == "IN_PROGRESS"
    wait_until(lambda: job_state(job_id) == "COMPLETED", timeout=30, what="the job to complete")
    # The cached entry would live an hour; the job-finished message drops it.
    doc = wait_until(lambda: (d := read(cached_api, key, job_id).json())["status"] != "IN_PROGRESS" and d,
                     timeout=5, what="the cached read to see the finish")
    assert doc["status"] == "COMPLETED" and doc["result"]["image_url"].startswith(f"{cached_api}/files/")


def test_fast_path_answers_like_the_route(system: System, cached_api: str, make_key):
    key = make_key("cache-alike", "pro")
    system.sim("POST", "/_sim/config", json={"latency_seconds": 0})
    job_id = Client(system.api_url, key).generate({"prompt": "a quick pear", "sync": False}).json()[
        "result"]["request_id"]
    wait_until(lambda: job_state(job_id) == "COMPLETED", timeout=30, what="the job to complete")
    # This API process has not seen the key: the first read goes through the route (which
    # authenticates and fills the caches), the second is served by the fast path.
    by_route, by_fast_path = read(cached_api, key, job_id), read(cached_api, key, job_id)
    for resp in (by_route, by_fast_path):
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
        assert resp.headers["RateLimit-Policy"] == '"reads";q=10000;w=60'
        assert resp.headers["RateLimit"].startswith('"reads";r=')
    one, two = by_route.json(), by_fast_path.json()
    assert one.keys() == two.keys() and one["result"].keys() == two["result"].keys()
    assert one["status"] == two["status"] == "COMPLETED" and one["request_id"] == two["request_id"]
    assert one["result"]["image_url"].split("?")[0] == two["result"]["image_url"].split("?")[0]
    assert httpx.get(two["result"]["image_url"]).status_code == 200  # a freshly signed, working link
    assert json.loads(by_fast_path.content) == two  # compact JSON, like the route's

    # Everything else is the route's: unknown job, another tenant's job, no key, bad key.
    other = make_key("cache-alike-other", "pro")
    for resp, code in ((read(cached_api, key, "f" * 32), 404), (read(cached_api, other, job_id), 404),
                       (httpx.get(f"{cached_api}/api/v1/bria/status/{job_id}"), 401),
                       (read(cached_api, "vg_wrong", job_id), 401)):
        assert resp.status_code == code, resp.text
        assert resp.json()["status"] == "error" and resp.json()["error"]["message"]


def test_a_batch_cancel_reaches_cached_reads(system: System, cached_api: str, make_key):
    key = make_key("cache-cancel", "pro")
    tenant_setup("cache-cancel", concurrency=1)
    system.sim("POST", "/_sim/config", json={"latency_seconds": 2.0})
    client = Client(system.api_url, key)
    resp = upload(client, [line(f"q-{i}") for i in range(6)])
    assert resp.status_code == 202, resp.text
    batch_id = resp.json()["result"]["id"]
    queued = wait_until(lambda: [j.id for j in tenant_db("cache-cancel")[1] if j.status == "QUEUED"][-3:],
                        timeout=30, what="queued batch jobs")
    for job_id in queued:
        assert read(cached_api, key, job_id).json()["status"] == "IN_PROGRESS"
    cancel = client.http.post(f"/api/v1/batches/{batch_id}/cancel")
    assert cancel.status_code == 200 and cancel.json()["result"]["jobs_cancelled"] >= 1
    cancelled = [j for j in queued if job_state(j) == "CANCELLED"]
    assert cancelled
    for job_id in cancelled:
        doc = wait_until(lambda: (d := read(cached_api, key, job_id).json())["status"] != "IN_PROGRESS" and d,
                         timeout=5, what="the cached read to see the cancel")
        assert doc["status"] == "ERROR" and doc["error"]["code"] == "cancelled"
    client.http.close()
