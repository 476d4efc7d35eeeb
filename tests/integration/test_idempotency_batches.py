"""Idempotency-Key on batch create (api/routes/batches.py): the whole upload is one request,
replayed whatever its form; an invalid upload keeps nothing; a batch whose first request died
before answering is answered from the batch."""

from __future__ import annotations

import datetime as dt
import io
import json

import httpx
import pytest
from sqlalchemy import select

from tests.integration.test_idempotency import GEN, REPLAYED, key_row, new_key, state

pytestmark = pytest.mark.integration


def _lines(n: int, prompt: str = "a batch of retried bicycles") -> list[dict]:
    return [{"custom_id": f"line-{i}", "endpoint": GEN, "body": {"prompt": prompt, "seed": i}} for i in range(n)]


def test_batch_create_replays_and_keys_the_whole_upload(tenant_client):
    client = tenant_client("idem-batch")
    before = state("idem-batch")[0]
    key = new_key()
    first = client.http.post("/api/v1/batches", json={"requests": _lines(3)}, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    batch_id = first.json()["result"]["id"]
    again = client.http.post("/api/v1/batches", json={"requests": _lines(3)}, headers={"Idempotency-Key": key})
    assert again.status_code == 202 and again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    other = client.http.post("/api/v1/batches", json={"requests": _lines(4)}, headers={"Idempotency-Key": key})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    # options are part of the request: the same lines with another option are another request
    skip = client.http.post("/api/v1/batches", json={"requests": _lines(3)}, params={"on_invalid": "skip"},
                            headers={"Idempotency-Key": key})
    assert skip.status_code == 422 and skip.json()["error"]["code"] == "idempotency_key_reused"
    credits, jobs, reserves, batches = state("idem-batch")
    assert batches == [batch_id] and len(jobs) == 3 and reserves == 3
    assert credits == before - first.json()["result"]["credit_cost"]


def test_batch_file_upload_replays_whatever_the_multipart_boundary(tenant_client):
    client = tenant_client("idem-batch-file")
    key = new_key()
    content = "".join(json.dumps(line) + "\n" for line in _lines(2)).encode()

    def upload(data: bytes) -> httpx.Response:  # httpx draws a new boundary for every request
        return client.http.post("/api/v1/batches", headers={"Idempotency-Key": key},
                                files={"file": ("batch.jsonl", io.BytesIO(data), "application/jsonl")})

    first = upload(content)
    assert first.status_code == 202, first.text
    again = upload(content)
    assert again.status_code == 202 and again.headers[REPLAYED] == "true"
    assert again.json()["result"]["id"] == first.json()["result"]["id"]
    changed = upload(content.replace(b"line-1", b"line-X"))
    assert changed.status_code == 422 and changed.json()["error"]["code"] == "idempotency_key_reused"
    # a raw JSONL body is keyed by its bytes
    raw_key = new_key()
    raw = [client.http.post("/api/v1/batches", content=content,
                            headers={"Idempotency-Key": raw_key, "Content-Type": "application/jsonl"}) for _ in range(2)]
    assert [r.status_code for r in raw] == [202, 202] and raw[1].headers[REPLAYED] == "true"
    assert raw[0].json()["result"]["id"] == raw[1].json()["result"]["id"]
    assert len(state("idem-batch-file")[3]) == 2


def test_an_invalid_batch_is_not_kept(tenant_client):
    client = tenant_client("idem-batch-invalid")
    key = new_key()
    bad = _lines(2) + [{"custom_id": "bad", "endpoint": GEN, "body": {"prompt": ""}}]
    refused = client.http.post("/api/v1/batches", json={"requests": bad}, headers={"Idempotency-Key": key})
    assert refused.status_code == 422 and refused.json()["detail"][0]["type"] == "invalid_line"
    assert key_row("idem-batch-invalid", key) is None
    fixed = client.http.post("/api/v1/batches", json={"requests": _lines(2)}, headers={"Idempotency-Key": key})
    assert fixed.status_code == 202 and REPLAYED not in fixed.headers


def test_a_batch_whose_first_request_died_before_answering_is_answered_from_the_batch(tenant_client):
    """The batch is linked to its key in the transaction that creates it: when the API died
    before storing the answer (here: the stored answer is taken back, as if never written), the
    retry after the lock answers the batch as it stands and creates nothing."""
    from core.db import session_factory
    from core.models import IdempotencyKey, Tenant, utcnow

    client = tenant_client("idem-batch-dead")
    key = new_key()
    first = client.http.post("/api/v1/batches", json={"requests": _lines(2, "batch, then a crash")},
                             headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    batch_id = first.json()["result"]["id"]
    with session_factory().begin() as s:
        tenant_id = s.scalar(select(Tenant.id).where(Tenant.name == "idem-batch-dead"))
        row = s.get(IdempotencyKey, (tenant_id, key))
        assert row.request_id == batch_id
        row.state, row.status_code, row.response_body = "in_progress", None, None
        row.locked_until = utcnow() - dt.timedelta(seconds=1)
    retry = client.http.post("/api/v1/batches", json={"requests": _lines(2, "batch, then a crash")},
                             headers={"Idempotency-Key": key})
    assert retry.status_code == 202 and retry.headers[REPLAYED] == "true", retry.text
    assert retry.json()["result"]["id"] == batch_id
    assert state("idem-batch-dead")[3] == [batch_id] and len(state("idem-batch-dead")[1]) == 2
