"""Idempotent creates through the real system: a retry with the same ``Idempotency-Key``
replays the first answer and creates and charges nothing; another body is 422; keys are per
tenant; real requests sent at once with one key make one job; a bad key is 422; answers given
before anything was created are not kept; batches; dead claims; the sweep on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from tests.integration.conftest import Client
from tests.integration.system import System

pytestmark = pytest.mark.integration

GEN = "/api/v1/bria/image/generation/generate-image"
REPLAYED = "Idempotent-Replayed"


def new_key() -> str:
    return str(uuid.uuid4())


def state(tenant: str):
    """The tenant's credits, jobs, credit reservations and batches, read from the database."""
    from core.db import session_factory
    from core.models import Batch, CreditEntry, Job, Tenant

    with session_factory()() as s:
        row = s.scalar(select(Tenant).where(Tenant.name == tenant))
        jobs = s.scalars(select(Job.id).where(Job.tenant_id == row.id).order_by(Job.created_at)).all()
        reserves = s.scalar(select(func.count()).select_from(CreditEntry).where(
            CreditEntry.tenant_id == row.id, CreditEntry.kind == "reserve"))
        batches = s.scalars(select(Batch.id).where(Batch.tenant_id == row.id)).all()
        return row.credits, list(jobs), reserves, list(batches)


def key_row(tenant: str, key: str):
    from core.db import session_factory
    from core.models import IdempotencyKey, Tenant
    with session_factory()() as s:
        tenant_id = s.scalar(select(Tenant.id).where(Tenant.name == tenant))
        return s.get(IdempotencyKey, (tenant_id, key))


def set_credits(tenant: str, amount: int) -> None:
    from core import credits
    from core.db import session_factory
    from core.models import Tenant
    with session_factory().begin() as s:
        row = s.scalar(select(Tenant).where(Tenant.name == tenant))
        credits.grant(s, row.id, amount - row.credits, "idempotency test")


def post(client: Client, body: dict, key: str | None, path: str = GEN, **kw) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.http.post(path, json=body, headers=headers, **kw)


# --------------------------------------------------------------------------- replay
def test_async_retry_replays_202_with_one_job_and_one_charge(tenant_client):
    client = tenant_client("idem-replay")
    before, _, _, _ = state("idem-replay")
    key = new_key()
    body = {"prompt": "a retried lighthouse", "sync": False, "aspect_ratio": "16:9"}
    first = post(client, body, key)
    assert first.status_code == 202, first.text
    assert REPLAYED not in first.headers
    request_id = first.json()["result"]["request_id"]
    cost = first.json()["result"]["credit_cost"]
    assert cost > 0

    # the same request twice more, the second with its keys in another order and other spacing
    again = post(client, body, key)
    shuffled = client.http.post(GEN, content=b'{ "aspect_ratio":"16:9","sync":false,  "prompt":"a retried lighthouse"}',
                                headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    for replay in (again, shuffled):
        assert replay.status_code == 202, replay.text
        assert replay.headers[REPLAYED] == "true"
        assert replay.json() == first.json()  # same request_id, same receipt
        assert replay.json()["result"]["request_id"] == request_id

    credits, jobs, reserves, _ = state("idem-replay")
    assert jobs == [request_id] and reserves == 1
    assert credits == before - cost
    assert client.wait(request_id)["status"] == "COMPLETED"
    row = key_row("idem-replay", key)
    assert row.state == "done" and row.status_code == 202 and row.request_id == request_id
    assert dt.timedelta(hours=23, minutes=59) < row.expires_at - row.created_at <= dt.timedelta(hours=24)


def test_sync_retry_replays_200_with_working_urls(tenant_client):
    client = tenant_client("idem-sync")
    key = new_key()
    body = {"prompt": "a synchronous retried cat", "sync": True}
    first = post(client, body, key)
    assert first.status_code == 200, first.text
    result = first.json()["result"]
    assert result["status"] == "COMPLETED" and result["image_url"]

    again = post(client, body, key)
    assert again.status_code == 200 and again.headers[REPLAYED] == "true"
    replayed = again.json()["result"]
    assert replayed["request_id"] == result["request_id"]
    assert {k: v for k, v in replayed.items() if k not in ("image_url", "urls", "expires_at")} == \
        {k: v for k, v in result.items() if k not in ("image_url", "urls", "expires_at")}
    download = httpx.get(replayed["image_url"], timeout=10)  # signed afresh at the replay
    assert download.status_code == 200 and download.content[:4] == b"\x89PNG"
    _, jobs, reserves, _ = state("idem-sync")
    assert jobs == [result["request_id"]] and reserves == 1


def test_sync_job_failure_is_replayed_not_rerun(system: System, tenant_client):
    client = tenant_client("idem-fail")
    system.faults({"on": "submit", "kind": "error", "code": "500", "message": "model crashed"})
    key = new_key()
    body = {"prompt": "a failing retried request", "sync": True}
    first = post(client, body, key)
    assert first.status_code == 502, first.text
    request_id = first.json()["error"]["request_id"]
    again = post(client, body, key)
    assert again.status_code == 502 and again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    _, jobs, _, _ = state("idem-fail")
    assert jobs == [request_id]


# --------------------------------------------------------------------------- refusals
def test_the_same_key_with_another_body_is_422_and_creates_nothing(tenant_client):
    client = tenant_client("idem-reuse")
    key = new_key()
    first = post(client, {"prompt": "first body", "sync": False}, key)
    assert first.status_code == 202
    other = post(client, {"prompt": "second body", "sync": False}, key)
    assert other.status_code == 422, other.text
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused" and GEN in error["message"]
    # another endpoint with the same key and body is another request too
    elsewhere = post(client, {"prompt": "first body", "sync": False}, key,
                     path="/api/v1/bria/image/generation/generate-image-hd")
    assert elsewhere.status_code == 422 and elsewhere.json()["error"]["code"] == "idempotency_key_reused"
    _, jobs, reserves, _ = state("idem-reuse")
    assert jobs == [first.json()["result"]["request_id"]] and reserves == 1


def test_keys_are_per_tenant(tenant_client):
    one, two = tenant_client("idem-tenant-1"), tenant_client("idem-tenant-2")
    key = new_key()
    body = {"prompt": "the same key, two tenants", "sync": False}
    a, b = post(one, body, key), post(two, body, key)
    assert a.status_code == b.status_code == 202
    assert REPLAYED not in a.headers and REPLAYED not in b.headers
    assert a.json()["result"]["request_id"] != b.json()["result"]["request_id"]
    assert len(state("idem-tenant-1")[1]) == 1 and len(state("idem-tenant-2")[1]) == 1


@pytest.mark.parametrize("key,kind", [("k" * 256, "string_too_long"), ("two words", "string_pattern_mismatch"),
                                      ("caf\u00e9", "string_pattern_mismatch")])
def test_a_bad_key_is_422_naming_the_header(tenant_client, key, kind):
    client = tenant_client(f"idem-bad-key-{len(key)}")
    resp = client.http.post(GEN, json={"prompt": "a bad key", "sync": False},
                            headers={"Idempotency-Key": key.encode("latin-1")})
    assert resp.status_code == 422, resp.text
    item = resp.json()["detail"][0]
    assert item["loc"] == ["header", "Idempotency-Key"] and item["type"] == kind
    assert state(f"idem-bad-key-{len(key)}")[1] == []
    assert post(client, {"prompt": "a long key", "sync": False}, "k" * 254 + "~").status_code == 202  # 255: fine


def test_no_credits_is_not_kept_so_the_retry_after_topping_up_runs(tenant_client):
    client = tenant_client("idem-credits")
    set_credits("idem-credits", 0)
    key = new_key()
    body = {"prompt": "paid for later", "sync": False}
    refused = post(client, body, key)
    assert refused.status_code == 406 and refused.json()["error"]["code"] == "insufficient_credits"
    assert key_row("idem-credits", key) is None  # released, not stored
    set_credits("idem-credits", 100)
    paid = post(client, body, key)
    assert paid.status_code == 202 and REPLAYED not in paid.headers
    assert post(client, body, key).headers[REPLAYED] == "true"
    credits, jobs, reserves, _ = state("idem-credits")
    assert len(jobs) == 1 and reserves == 1 and credits == 100 - paid.json()["result"]["credit_cost"]


def test_a_validation_error_is_not_kept(tenant_client):
    client = tenant_client("idem-invalid")
    key = new_key()
    bad = post(client, {"prompt": "a fine prompt", "sync": False, "aspect_ratio": "7:3"}, key)
    assert bad.status_code == 422 and "detail" in bad.json()
    assert key_row("idem-invalid", key) is None
    good = post(client, {"prompt": "a fine prompt", "sync": False}, key)  # the key is still free for the fixed body
    assert good.status_code == 202 and REPLAYED not in good.headers


# --------------------------------------------------------------------------- concurrency
def test_two_requests_at_once_make_one_job(system: System, tenant_client):
    """Two real requests with one key, sent at the same moment, twice: a synchronous one (the
    first holds its key while it waits for the result) and an asynchronous one. Exactly one job
    each time; the other request is refused with 409 and Retry-After, or replays the answer."""
    client = tenant_client("idem-race")
    api_key = client.http.headers["X-API-Key"]
    system.sim("POST", "/_sim/config", json={"latency_seconds": 1.0}).raise_for_status()

    async def pair(body: dict, key: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=system.api_url, headers={"X-API-Key": api_key},
                                     timeout=60) as http:
            await http.get("/health")  # both connections warm, so the two posts leave together
            return await asyncio.gather(*[http.post(GEN, json=body, headers={"Idempotency-Key": key})
                                          for _ in range(2)])

    for n, body in enumerate(({"prompt": "a raced sync request", "sync": True},
                              {"prompt": "a raced async request", "sync": False})):
        key = new_key()
        responses = asyncio.run(pair(body, key))
        codes = sorted(r.status_code for r in responses)
        winners = [r for r in responses if r.status_code in (200, 202) and REPLAYED not in r.headers]
        assert len(winners) == 1, [(r.status_code, r.headers.get(REPLAYED), r.text[:200]) for r in responses]
        other = next(r for r in responses if r is not winners[0])
        if other.status_code == 409:
            assert other.headers["Retry-After"] == "1"
            assert other.json()["error"]["code"] == "idempotency_in_progress"
        else:
            assert other.headers[REPLAYED] == "true", codes
            assert other.json()["result"]["request_id"] == winners[0].json()["result"]["request_id"]
        jobs = state("idem-race")[1]
        assert len(jobs) == n + 1, jobs
        if body["sync"]:  # the loser of a synchronous race waited for nothing: 409 at once
            assert other.status_code == 409
            later = post(client, body, key)  # and its retry, once the first is done, replays
            assert later.status_code == 200 and later.headers[REPLAYED] == "true"
    assert state("idem-race")[2] == 2


def test_many_requests_at_once_make_one_job(system: System, tenant_client):
    client = tenant_client("idem-storm")
    api_key = client.http.headers["X-API-Key"]
    key = new_key()

    async def storm() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=system.api_url, headers={"X-API-Key": api_key}, timeout=60,
                                     limits=limits) as http:
            return await asyncio.gather(*[http.post(GEN, json={"prompt": "a storm", "sync": False},
                                                    headers={"Idempotency-Key": key}) for _ in range(20)])

    responses = asyncio.run(storm())
    assert {r.status_code for r in responses} <= {202, 409}, [r.text[:200] for r in responses]
    accepted = [r for r in responses if r.status_code == 202]
    assert len([r for r in accepted if REPLAYED not in r.headers]) == 1
    assert len({r.json()["result"]["request_id"] for r in accepted}) == 1
    _, jobs, reserves, _ = state("idem-storm")
    assert len(jobs) == 1 and reserves == 1


def test_a_claim_whose_holder_died_is_taken_over(tenant_client):
    """A claim left in progress (its API process was killed) blocks the key until its lock
    passes; then a retry runs the request."""
    from core import idempotency
    from core.db import session_factory
    from core.models import IdempotencyKey, Tenant, utcnow

    client = tenant_client("idem-dead")
    key = new_key()
    body = {"prompt": "after a crash", "sync": False}
    with session_factory().begin() as s:
        tenant_id = s.scalar(select(Tenant.id).where(Tenant.name == "idem-dead"))
        print_ = idempotency.fingerprint(f"POST {GEN}", body)
        assert isinstance(idempotency.claim(s, tenant_id, key, print_, f"POST {GEN}", ttl=3600, lock_seconds=60),
                          idempotency.Claimed)
    busy = post(client, body, key)
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
    with session_factory().begin() as s:  # ... a minute later
        s.get(IdempotencyKey, (tenant_id, key)).locked_until = utcnow() - dt.timedelta(seconds=1)
    taken = post(client, body, key)
    assert taken.status_code == 202 and REPLAYED not in taken.headers
    assert post(client, body, key).headers[REPLAYED] == "true"
    assert len(state("idem-dead")[1]) == 1


# --------------------------------------------------------------------------- OpenAPI, sweep
def test_openapi_documents_the_header_on_every_creating_route(system: System):
    from providers.base import Kind
    from providers.registry import TABLES

    doc = httpx.get(f"{system.api_url}/openapi.json", timeout=10).json()
    creating = [(op.path, op.method.lower()) for table in TABLES.values() for op in table if op.kind is Kind.JOB]
    creating.append(("/api/v1/batches", "post"))
    assert len(creating) > 40
    for path, method in creating:
        operation = doc["paths"][path][method]
        header = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert len(header) == 1 and header[0]["in"] == "header" and header[0]["example"], path
        assert header[0]["schema"]["maxLength"] == 255
        assert "409" in operation["responses"] and "422" in operation["responses"], path
        assert REPLAYED in operation["responses"]["202"]["headers"], path
        assert "idempotency_key_reused" in operation["responses"]["422"]["content"]["application/json"]["examples"]


def test_sweep_deletes_expired_keys_on_postgres(tenant_client):
    from core import idempotency
    from core.db import session_factory
    from core.models import IdempotencyKey, Tenant, utcnow

    tenant_client("idem-sweep")
    with session_factory().begin() as s:
        tenant_id = s.scalar(select(Tenant.id).where(Tenant.name == "idem-sweep"))
        long_ago = utcnow() - dt.timedelta(days=2)
        for key, now in (("old-1", long_ago), ("old-2", long_ago), ("fresh", utcnow())):
            idempotency.claim(s, tenant_id, key, "f", "POST /x", ttl=86400, lock_seconds=60, now=now)
    with session_factory().begin() as s:
        assert idempotency.sweep(s, limit=1) == 1
        assert idempotency.sweep(s) >= 1
    with session_factory()() as s:
        left = s.scalars(select(IdempotencyKey.key).where(IdempotencyKey.tenant_id == tenant_id)).all()
    assert left == ["fresh"]
