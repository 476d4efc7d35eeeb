"""core/webhooks/ without servers: Standard Webhooks signing (checked with the reference
``standardwebhooks`` package), the published retry schedule, answer classification, options
validation; then events, dispatch and the delivery log on a migrated SQLite file."""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from core.webhooks import delivery, retry, schemas, signing, tenant_secrets
from core.jobs import moves
from core.models import Job, JobWebhook, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent, utcnow
from core.settings import Settings
from core.tenants import get_or_create_tenant

PUBLISHED = [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


# --------------------------------------------------------------------------- signing
def test_secret_format():
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[len("whsec_"):])) >= 24
    assert signing.generate_secret() != secret
    assert len(base64.b64decode(signing.generate_secret(8)[6:])) == 24  # never under 24 bytes


def test_signature_verifies_with_standardwebhooks():
    secret = signing.generate_secret()
    body = json.dumps({"type": "job.completed", "data": {"request_id": "abc", "status": "COMPLETED"}})
    now = int(utcnow().timestamp())
    headers = signing.signed_headers([secret], "msg_1", now, body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers)["data"]["request_id"] == "abc"
    assert Webhook(secret).sign("msg_1", dt.datetime.fromtimestamp(now, dt.UTC), body) == \
        signing.sign(secret, "msg_1", now, body)


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "secret"])
def test_tampering_breaks_the_signature(tamper):
    secret = signing.generate_secret()
    body = '{"type":"job.failed"}'
    now = int(utcnow().timestamp())
    headers = signing.signed_headers([secret], "msg_2", now, body)
    if tamper == "body":
        body = '{"type":"job.completed"}'
    elif tamper == "id":
        headers["webhook-id"] = "msg_3"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(now + 1)
    else:
        secret = signing.generate_secret()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_rotation_sends_both_signatures_each_verifies():
    old, new = signing.generate_secret(), signing.generate_secret()
    body = '{"type":"job.completed"}'
    headers = signing.signed_headers([new, old], "msg_4", int(utcnow().timestamp()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


# --------------------------------------------------------------------------- schedule
def test_default_schedule_is_the_published_one():
    assert Settings().webhook_retry_schedule == PUBLISHED
    assert retry.schedule(Settings(VISIONGATE_WEBHOOK_RETRY_SCHEDULE="0,0.5,1")) == [0.0, 0.5, 1.0]
    assert retry.schedule(Settings(VISIONGATE_WEBHOOK_RETRY_SCHEDULE="[]")) == [0.0]


def test_next_delay_follows_the_schedule_then_stops():
    no_jitter = dict(jitter=0.0)
    assert [retry.next_delay(PUBLISHED, n, **no_jitter) for n in range(1, 8)] == PUBLISHED[1:]
    assert retry.next_delay(PUBLISHED, 8) is None  # eight attempts, then the delivery fails
    # Jitter only ever adds, at most 10 %.
    delays = [retry.next_delay(PUBLISHED, 2, rng=random.Random(i)) for i in range(50)]
    assert all(300 <= d <= 330 for d in delays) and len(set(delays)) > 1


def test_retry_after_postpones_but_never_hurries_and_is_capped():
    assert retry.next_delay(PUBLISHED, 1, retry_after=60, jitter=0) == 60
    assert retry.next_delay(PUBLISHED, 2, retry_after=1, jitter=0) == 300
    assert retry.next_delay(PUBLISHED, 1, retry_after=10**9, max_retry_after=36000, jitter=0) == 36000
    assert retry.next_delay(PUBLISHED, 8, retry_after=5) is None


def test_parse_retry_after():
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert retry.parse_retry_after("120") == 120
    assert retry.parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30
    assert retry.parse_retry_after("soon") is None and retry.parse_retry_after(None) is None


@pytest.mark.parametrize("status, headers, kind, after", [
    (200, {}, "success", None), (204, {}, "success", None), (299, {}, "success", None),
    (301, {}, "retry", None), (400, {}, "retry", None), (500, {}, "retry", None),
    (410, {}, "gone", None), (429, {"retry-after": "7"}, "retry", 7.0), (503, {"retry-after": "3"}, "retry", 3.0),
    (429, {}, "retry", None), (None, {}, "retry", None)])
def test_classify(status, headers, kind, after):
    assert retry.classify(status, headers) == retry.Outcome(kind, after)


# --------------------------------------------------------------------------- options
def test_job_options():
    ctx = {"allow_hosts": ["127.0.0.3"]}
    opts = schemas.JobOptions.model_validate(
        {"prompt": "ignored", "webhook_url": "http://127.0.0.3:9/h", "webhook_events": ["started", "job.failed"]},
        context=ctx)
    assert opts.events() == ["job.started", "job.failed"]
    assert schemas.JobOptions.model_validate({"webhook_url": "https://e.com/h"}, context=ctx).events() == \
        ["job.completed", "job.failed", "job.cancelled"]
    for bad in ({"webhook_url": "http://127.0.0.1/h"}, {"webhook_url": "gopher://e.com"},
                {"webhook_url": "https://e.com", "webhook_events": ["done"]},
                {"webhook_events": ["completed"]}):
        with pytest.raises(ValidationError):
            schemas.JobOptions.model_validate(bad, context=ctx)


# --------------------------------------------------------------------------- events and the log
@pytest.fixture
def sessions(db):
    return db[0]


@pytest.fixture
def settings():
    return Settings(VISIONGATE_WEBHOOK_RETRY_SCHEDULE="0,10,20", VISIONGATE_OUTBOUND_ALLOW_HOSTS="127.0.0.1",
                    VISIONGATE_PUBLIC_URL="https://gw.example")


def make_job(sessions, tenant="t", webhook: dict | None = None, status="RUNNING") -> tuple[str, str]:
    with sessions.begin() as s:
        t = get_or_create_tenant(s, tenant)
        job = Job(tenant_id=t.id, provider="bria", operation="bria.generate_image",
                  params={"prompt": "a hook"}, sync=False, status=status)
        s.add(job)
        s.flush()
        if webhook:
            s.add(JobWebhook(job_id=job.id, base_url="http://api", **webhook))
        return job.id, t.id


def deliveries(sessions, job_id):
    with sessions() as s:
        return list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)))


def test_finishing_a_job_records_its_event_in_the_same_transaction(sessions, settings):
    job_id, tenant_id = make_job(sessions, webhook={"url": "http://127.0.0.1:1/own",
                                                    "events": ["job.started", "job.completed"]})
    with sessions.begin() as s:
        s.add(WebhookEndpoint(tenant_id=tenant_id, url="http://127.0.0.1:1/tenant",
                              events=["job.completed", "job.failed"], base_url=""))
    with sessions.begin() as s:
        assert moves.complete(s, job_id, [{"key": "k/0.png", "content_type": "image/png"}], {}, 60)
    got = deliveries(sessions, job_id)
    # Completed without a SUBMITTED step (inline outputs): job.started first, then completed.
    with sessions() as s:
        types = {d.url: sorted(s.get(WebhookEvent, x.event_id).type for x in got if x.url == d.url)
                 for d in got}
    assert types == {"http://127.0.0.1:1/own": ["job.completed", "job.started"],
                     "http://127.0.0.1:1/tenant": ["job.completed"]}
    assert all(d.status == "pending" and d.next_attempt_at is not None for d in got)

    # A job nobody listens to records nothing.
    quiet, _ = make_job(sessions, tenant="quiet")
    with sessions.begin() as s:
        moves.fail(s, quiet, "x", "y", 60)
    assert deliveries(sessions, quiet) == []


def test_dispatch_send_retry_and_log(sessions, settings):
    """claim_due → prepare → record_attempt, with a local receiver that fails once."""
    replies = [500, 200]
    received: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(({k.lower(): v for k, v in self.headers.items()},
                             self.rfile.read(int(self.headers["content-length"]))))
            status = replies.pop(0)
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"no" if status >= 400 else b"ok")

        def log_message(self, *_a) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    from workers import webhooks as worker_hooks

    try:
        job_id, tenant_id = make_job(sessions, webhook={"url": f"http://127.0.0.1:{srv.server_address[1]}/x",
                                                        "events": ["job.failed"]})
        with sessions.begin() as s:
            moves.fail(s, job_id, "upstream_500", "boom", 60)
        client = worker_hooks.make_client(settings)
        published: list[str] = []
        assert worker_hooks.dispatch(sessions, settings, published.append) == 1
        assert worker_hooks.dispatch(sessions, settings, published.append) == 0  # leased
        assert worker_hooks.deliver(sessions, settings, client, published[0]) == "pending"
        [d] = deliveries(sessions, job_id)
        assert d.attempts == 1 and d.last_status_code == 500
        with sessions() as s:
            attempted_at = s.scalar(select(WebhookAttempt.attempted_at).where(WebhookAttempt.delivery_id == d.id))
        assert 10 <= (d.next_attempt_at - attempted_at).total_seconds() <= 11  # schedule[1] + ≤10 % jitter
        with sessions.begin() as s:  # make it due now
            s.get(WebhookDelivery, d.id).next_attempt_at = utcnow()
        assert worker_hooks.dispatch(sessions, settings, published.append) == 1
        assert worker_hooks.deliver(sessions, settings, client, published[1]) == "succeeded"
        assert worker_hooks.deliver(sessions, settings, client, published[1]) is None  # duplicate message

        with sessions() as s:
            secret = tenant_secrets.tenant_secret(s, tenant_id).secret
            log = delivery.list_deliveries(s, tenant_id, job_id=job_id)
        assert [(a["status_code"], a["trigger"], a["response_body"]) for a in log[0]["attempts"]] == \
            [(500, "initial", "no"), (200, "retry", "ok")]
        headers, body = received[-1]
        payload = Webhook(secret).verify(body, headers)
        assert payload["type"] == "job.failed" and payload["data"]["error"] == {"code": "upstream_500",
                                                                                 "message": "boom"}
        assert received[0][0]["webhook-id"] == received[1][0]["webhook-id"] == log[0]["event_id"]

        # Redelivery re-arms it: a new round, a manual attempt.
        with sessions.begin() as s:
            assert delivery.redeliver(s, tenant_id, job_id=job_id) == [log[0]["id"]]
        replies.append(200)
        ids: list[str] = []
        worker_hooks.dispatch(sessions, settings, ids.append)
        assert worker_hooks.deliver(sessions, settings, client, ids[0]) == "succeeded"
        with sessions() as s:
            assert s.scalars(select(WebhookAttempt.trigger).order_by(WebhookAttempt.id)).all()[-1] == "manual"
        client.close()
    finally:
        srv.shutdown()
        srv.server_close()


def _attempt(status: int, headers: dict | None = None, error: str | None = None, blocked: bool = False):
    return delivery.AttemptResult(status, 5, "x", error, headers or {}, blocked)


def test_exhaustion_410_and_blocked(sessions, settings):
    job_id, tenant_id = make_job(sessions)
    with sessions.begin() as s:
        ep = WebhookEndpoint(tenant_id=tenant_id, url="https://hooks.example/a", events=["job.failed"], base_url="")
        s.add(ep)
        s.flush()
        ep_id = ep.id
        moves.fail(s, job_id, "e", "m", 60)
    other, _ = make_job(sessions)
    with sessions.begin() as s:
        moves.fail(s, other, "e", "m", 60)
    [d1], [d2] = deliveries(sessions, job_id), deliveries(sessions, other)

    def attempt(delivery_id, result):
        with sessions.begin() as s:
            prepared = delivery.prepare(s, delivery_id, settings)
            assert isinstance(prepared, delivery.Prepared)
            assert prepared.url == "https://hooks.example/a"
            return delivery.record_attempt(s, prepared, result, settings)

    # 500 three times: the three-entry schedule is spent.
    assert [attempt(d1.id, _attempt(500)) for _ in range(3)] == ["pending", "pending", "failed"]
    # 410: the endpoint is disabled and its other pending deliveries stop.
    with sessions.begin() as s:
        delivery.redeliver(s, tenant_id, job_id=job_id)
    assert attempt(d1.id, _attempt(410)) == "failed"
    with sessions() as s:
        assert s.get(WebhookEndpoint, ep_id).enabled is False
        assert s.get(WebhookDelivery, d2.id).status == "failed"
        assert isinstance(delivery.prepare(s, d2.id, settings), type(None))
    # A blocked destination is not retried.
    with sessions.begin() as s:
        s.get(WebhookEndpoint, ep_id).enabled = True
        delivery.redeliver(s, tenant_id, job_id=other)
    assert attempt(d2.id, _attempt(None, error="blocked: private", blocked=True)) == "failed"
