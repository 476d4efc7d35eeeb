"""DELETE /api/v1/jobs/{id} through HTTP, the real worker and Bria's simulator (which, like
Bria, cannot cancel a task: the credits of a running job are kept, the job is no longer polled)."""

from __future__ import annotations

import json
import threading
import time

from sqlalchemy import select

from core.db import session_factory
from core.models import Job
from tests.integration.conftest import Client
from tests.integration.receiver import Receiver


def submit(c: Client, **extra) -> str:
    resp = c.generate({"prompt": "a job to cancel", "sync": False, **extra})
    assert resp.status_code == 202, resp.text
    return resp.json()["result"]["request_id"]


def wait_state(c: Client, job_id: str, states: set[str], timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = c.http.get(f"/api/v1/jobs/{job_id}").json()["result"]
        if doc["state"] in states:
            return doc
        time.sleep(0.1)
    raise TimeoutError(f"{job_id} never reached {states}")


def test_cancel_a_running_job(system, client, make_key):
    system.sim("POST", "/_sim/config", json={"latency_seconds": 4}).raise_for_status()
    with Receiver() as rx:
        job_id = submit(client, webhook_url=rx.url("/c"))
        wait_state(client, job_id, {"SUBMITTED"})
        resp = client.http.delete(f"/api/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        doc = resp.json()["result"]
        assert doc["state"] == "CANCELLED" and doc["cancelled_from"] == "SUBMITTED"
        assert doc["credits_captured"] is True  # Bria cannot stop the task: it bills regardless
        assert doc["expires_at"] is not None
        event = json.loads(rx.wait_for(1)[0].body)
        assert event["type"] == "job.cancelled" and event["data"]["error"]["code"] == "cancelled"

    bria = client.status(job_id).json()  # Bria's dialect: ERROR with code cancelled
    assert bria["status"] == "ERROR" and bria["error"]["code"] == "cancelled"
    time.sleep(5)  # the upstream task finishes meanwhile: the job stays cancelled
    assert client.http.get(f"/api/v1/jobs/{job_id}").json()["result"]["state"] == "CANCELLED"

    again = client.http.delete(f"/api/v1/jobs/{job_id}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    assert again.json()["error"]["state"] == "CANCELLED"
    other = Client(system.api_url, make_key("someone-else", "pro"))
    assert other.http.delete(f"/api/v1/jobs/{job_id}").status_code == 404
    assert client.http.delete("/api/v1/jobs/0123456789abcdef").status_code == 404


def test_a_finished_job_answers_409_with_its_state(system, client):
    job_id = submit(client)
    assert client.wait(job_id)["status"] == "COMPLETED"
    resp = client.http.delete(f"/api/v1/jobs/{job_id}")
    assert resp.status_code == 409 and resp.json()["error"]["state"] == "COMPLETED"


def test_a_synchronous_caller_gets_its_answer_when_the_job_is_cancelled(system, client):
    system.sim("POST", "/_sim/config", json={"latency_seconds": 8}).raise_for_status()
    answer: dict = {}

    def sync_call() -> None:
        resp = client.generate({"prompt": "a sync job to cancel", "sync": True})
        answer["resp"] = resp

    caller = threading.Thread(target=sync_call)
    caller.start()
    deadline = time.time() + 10
    job_id = None
    while job_id is None and time.time() < deadline:  # the sync request's job, once started
        with session_factory()() as s:
            job_id = s.scalar(select(Job.id).where(Job.sync.is_(True), Job.status.in_(("RUNNING", "SUBMITTED")))
                              .order_by(Job.created_at.desc()).limit(1))
        time.sleep(0.1)
    assert job_id is not None
    assert client.http.delete(f"/api/v1/jobs/{job_id}").status_code == 200
    caller.join(6)  # long before the upstream's 8 s
    assert not caller.is_alive()
    resp = answer["resp"]
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "cancelled"
