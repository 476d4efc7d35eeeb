"""Webhooks through the real system: API, Celery worker and beat (the sweeper dispatches due
deliveries), Postgres, Redis, the simulator, and a receiver on 127.0.0.3 that verifies every
signature with the ``standardwebhooks`` package, as a client's receiver would.

The system runs with a shrunk retry schedule (conftest TIMINGS: 0, 0.3, 0.5, 1, 1, 1, 1, 1 s)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from tests.integration.conftest import Client
from tests.integration.receiver import Receiver, Reply, free_port, wait_until
from tests.integration.system import System

pytestmark = pytest.mark.integration

GEN = "/api/v1/bria/image/generation/generate-image"


def job_count() -> int:
    from core.db import session_factory
    from core.models import Job

    with session_factory()() as session:
        return session.scalar(select(func.count()).select_from(Job))


def secret(client: Client) -> str:
    resp = client.http.get("/api/v1/webhooks/secret")
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]["secret"]


def verify(secret_: str, message) -> dict[str, Any]:
    """What a client's receiver does: the standardwebhooks package checks the signature."""
    return Webhook(secret_).verify(message.body, message.headers)


def submit(client: Client, **extra: Any) -> str:
    resp = client.generate({"prompt": "a webhook lighthouse", "sync": False, **extra})
    assert resp.status_code == 202, resp.text
    return resp.json()["result"]["request_id"]


def deliveries(client: Client, job_id: str) -> list[dict[str, Any]]:
    resp = client.http.get(f"/api/v1/jobs/{job_id}/deliveries")
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]


def settled(client: Client, job_id: str, count: int = 1, status: str | None = None):
    """Poll the delivery log until ``count`` deliveries are no longer pending (or have ``status``)."""
    def check():
        rows = deliveries(client, job_id)
        done = [d for d in rows if (d["status"] == status if status else d["status"] != "pending")]
        return rows if len(done) >= count else None
    return wait_until(check, timeout=40, what=f"deliveries of {job_id}")


@pytest.fixture
def hooks(system: System, make_key) -> Client:
    c = Client(system.api_url, make_key("hooks", "pro"))
    yield c
    c.http.close()


# --------------------------------------------------------------------------- signed job events
def test_job_events_are_signed_and_carry_the_status_document(system: System, hooks: Client):
    key = secret(hooks)
    assert key.startswith("whsec_")
    with Receiver() as rx:
        job_id = submit(hooks, webhook_url=rx.url("/a"), webhook_events=["started", "job.completed"])
        got = rx.wait_for(2)
        payloads = [verify(key, m) for m in got]
        assert [p["type"] for p in payloads] == ["job.started", "job.completed"]
        assert len({m.headers["webhook-id"] for m in got}) == 2
        done = payloads[1]
        assert done["data"]["request_id"] == job_id and done["data"]["status"] == "COMPLETED"
        status = hooks.status(job_id).json()
        assert set(done["data"]) == set(status) and done["data"]["result"]["seed"] == status["result"]["seed"]
        dt.datetime.fromisoformat(done["timestamp"].replace("Z", "+00:00"))
        # The result URL in the payload was signed at send time and downloads.
        assert httpx.get(done["data"]["result"]["image_url"], timeout=10).status_code == 200

        log = settled(hooks, job_id, 2, "succeeded")
        assert {d["event_type"] for d in log} == {"job.started", "job.completed"}
        attempt = log[0]["attempts"][0]
        assert attempt["status_code"] == 200 and attempt["response_body"] == "ok"
        assert attempt["trigger"] == "initial" and attempt["latency_ms"] >= 0


def test_bad_webhook_fields_are_422_and_create_no_job(system: System, hooks: Client):
    before = job_count()
    for url in ("ftp://example.com/hook", "http://127.0.0.1:9/hook", "http://169.254.169.254/latest",
                "http://[::1]/hook", "http://localhost/hook", "not a url", ""):
        resp = hooks.generate({"prompt": "a refused hook", "sync": False, "webhook_url": url})
        assert resp.status_code == 422, (url, resp.text)
        assert ["body", "webhook_url"] in [d["loc"] for d in resp.json()["detail"]], resp.text
    resp = hooks.generate({"prompt": "a refused hook", "sync": False, "webhook_url": "https://example.com/h",
                           "webhook_events": ["finished"]})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"][:2] == ["body", "webhook_events"]
    assert job_count() == before


# --------------------------------------------------------------------------- retries and the log
def test_receiver_down_then_up_is_delivered_and_every_attempt_is_logged(system: System, hooks: Client):
    key = secret(hooks)
    port = free_port()
    job_id = submit(hooks, webhook_url=f"http://127.0.0.3:{port}/down")
    # Nobody listens yet: attempts fail and are scheduled again; the job itself is unaffected.
    wait_until(lambda: (deliveries(hooks, job_id) or [{}])[0].get("attempt_count", 0) >= 2,
               timeout=30, what="two failed attempts")
    assert hooks.wait(job_id)["status"] == "COMPLETED"
    with Receiver(port=port) as rx:
        [delivery] = settled(hooks, job_id, 1)
        assert delivery["status"] == "succeeded"
        attempts = delivery["attempts"]
        assert len(attempts) == delivery["attempt_count"] >= 3
        assert all(a["status_code"] is None and a["error"] for a in attempts[:-1])
        assert attempts[-1]["status_code"] == 200 and attempts[-1]["error"] is None
        assert [a["trigger"] for a in attempts] == ["initial"] + ["retry"] * (len(attempts) - 1)
        [msg] = rx.messages()
        assert msg.headers["webhook-id"] == delivery["event_id"]
        assert verify(key, msg)["type"] == "job.completed"

        # Redelivery: the same event (same webhook-id) again, logged as a manual attempt.
        resp = hooks.http.post(f"/api/v1/jobs/{job_id}/deliveries/redeliver")
        assert resp.status_code == 200 and resp.json()["result"]["redelivered"] == [delivery["id"]]
        second = rx.wait_for(2)[1]
        assert second.headers["webhook-id"] == delivery["event_id"] and verify(key, second)
        wait_until(lambda: deliveries(hooks, job_id)[0]["attempt_count"] == len(attempts) + 1
                   and deliveries(hooks, job_id)[0]["status"] == "succeeded", what="manual attempt logged")
        assert deliveries(hooks, job_id)[0]["attempts"][-1]["trigger"] == "manual"

        # One delivery by id; an unknown one is 404.
        one = hooks.http.post(f"/api/v1/jobs/{job_id}/deliveries/{delivery['id']}/redeliver")
        assert one.status_code == 200
        rx.wait_for(3)
        assert hooks.http.post(f"/api/v1/jobs/{job_id}/deliveries/{'0' * 32}/redeliver").status_code == 404


def test_failing_receiver_exhausts_the_schedule_and_never_changes_the_job(system: System, hooks: Client):
    with Receiver() as rx:
        rx.default = Reply(500, b"receiver exploded: " + b"x" * 3000)
        job_id = submit(hooks, webhook_url=rx.url("/broken"))
        [delivery] = settled(hooks, job_id, 1)
        assert delivery["status"] == "failed" and "gave up after 8 attempts" in delivery["last_error"]
        assert [a["status_code"] for a in delivery["attempts"]] == [500] * 8  # the schedule's length
        assert all(len(a["response_body"]) == 1024 for a in delivery["attempts"])  # first 1 KiB kept
        assert len(rx.messages()) == 8
    assert hooks.status(job_id).json()["status"] == "COMPLETED"


def test_retry_after_is_honoured_and_410_disables_the_endpoint(system: System, make_key):
    client = Client(system.api_url, make_key("hooks-410", "pro"))
    with Receiver() as rx:
        rx.script = [Reply(429, b"slow down", {"Retry-After": "2"})]
        ep = client.http.post("/api/v1/webhooks/endpoints", json={"url": rx.url("/tenant")})
        assert ep.status_code == 201, ep.text
        ep_id = ep.json()["result"]["id"]
        job_id = submit(client)
        [delivery] = settled(client, job_id, 1)
        assert delivery["status"] == "succeeded" and delivery["endpoint_id"] == ep_id
        first, second = delivery["attempts"]
        assert first["status_code"] == 429 and second["status_code"] == 200
        gap = (dt.datetime.fromisoformat(second["attempted_at"].replace("Z", "+00:00"))
               - dt.datetime.fromisoformat(first["attempted_at"].replace("Z", "+00:00"))).total_seconds()
        assert gap >= 2.0  # Retry-After: 2 postponed the schedule's 0.3 s

        rx.default = Reply(410, b"gone")
        job2 = submit(client)
        [gone] = settled(client, job2, 1)
        assert gone["status"] == "failed" and len(gone["attempts"]) == 1 and "410" in gone["last_error"]
        endpoint = client.http.get(f"/api/v1/webhooks/endpoints/{ep_id}").json()["result"]
        assert endpoint["enabled"] is False and "410" in endpoint["disabled_reason"]
        # Disabled: the next job makes no delivery for it (the event is recorded as the job finishes).
        job3 = submit(client)
        client.wait(job3)
        assert deliveries(client, job3) == []
        # Re-enabled by its owner, it receives again.
        rx.default = Reply(200)
        assert client.http.patch(f"/api/v1/webhooks/endpoints/{ep_id}", json={"enabled": True}).json()[
            "result"]["disabled_reason"] is None
        job4 = submit(client)
        assert settled(client, job4, 1)[0]["status"] == "succeeded"
    client.http.close()


# --------------------------------------------------------------------------- tenant endpoints
def test_tenant_default_endpoints_crud_and_final_events(system: System, make_key):
    client = Client(system.api_url, make_key("hooks-crud", "pro"))
    other = Client(system.api_url, make_key("hooks-other", "pro"))
    key = secret(client)
    with Receiver() as rx:
        bad = client.http.post("/api/v1/webhooks/endpoints", json={"url": "http://10.0.0.1/x"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "url"]
        created = client.http.post("/api/v1/webhooks/endpoints",
                                   json={"url": rx.url("/all"), "description": "everything final"})
        assert created.status_code == 201
        ep = created.json()["result"]
        assert ep["events"] == ["job.completed", "job.failed", "job.cancelled", "batch.completed",
                                "batch.cancelled"]
        assert [e["id"] for e in client.http.get("/api/v1/webhooks/endpoints").json()["result"]] == [ep["id"]]
        assert other.http.get(f"/api/v1/webhooks/endpoints/{ep['id']}").status_code == 404

        ok_job = submit(client)  # no webhook_url: the tenant's endpoint still gets the final event
        client.wait(ok_job)  # submitted upstream before the fault below is armed
        system.faults({"on": "submit", "kind": "error", "code": "422", "message": "flagged"})
        bad_job = submit(client)
        got = rx.wait_for(2)
        events = {verify(key, m)["data"]["request_id"]: verify(key, m) for m in got}
        assert events[ok_job]["type"] == "job.completed"
        assert events[bad_job]["type"] == "job.failed"
        assert events[bad_job]["data"]["error"]["message"] == "flagged"
        assert other.http.get(f"/api/v1/jobs/{ok_job}/deliveries").status_code == 404

        # Only failures from now on: a completed job makes no delivery.
        patched = client.http.patch(f"/api/v1/webhooks/endpoints/{ep['id']}", json={"events": ["failed"]})
        assert patched.json()["result"]["events"] == ["job.failed"]
        quiet = submit(client)
        client.wait(quiet)
        assert deliveries(client, quiet) == []

        assert client.http.delete(f"/api/v1/webhooks/endpoints/{ep['id']}").status_code == 204
        assert client.http.get("/api/v1/webhooks/endpoints").json()["result"] == []
    client.http.close()
    other.http.close()


def test_secret_rotation_sends_both_signatures_during_the_grace_period(system: System, make_key):
    client = Client(system.api_url, make_key("hooks-rotate", "pro"))
    old = secret(client)
    rotated = client.http.post("/api/v1/webhooks/secret/rotate", json={})
    assert rotated.status_code == 200
    new = rotated.json()["result"]["secret"]
    assert new != old and rotated.json()["result"]["previous_secret_valid_until"]
    with Receiver() as rx:
        submit(client, webhook_url=rx.url("/rot"))
        [msg] = rx.wait_for(1)
        assert len(msg.headers["webhook-signature"].split(" ")) == 2
        assert verify(old, msg)["type"] == verify(new, msg)["type"] == "job.completed"
        # No grace: only the new secret signs.
        newest = client.http.post("/api/v1/webhooks/secret/rotate", json={"grace_seconds": 0}).json()["result"]
        submit(client, webhook_url=rx.url("/rot2"))
        [msg2] = rx.wait_for(1, lambda m: m.path == "/rot2")
        assert len(msg2.headers["webhook-signature"].split(" ")) == 1
        verify(newest["secret"], msg2)
        with pytest.raises(Exception):
            verify(new, msg2)
    client.http.close()
