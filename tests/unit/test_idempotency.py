"""Idempotency keys (core/idempotency.py, api/idempotency.py): the key's rules, the request
fingerprint, claims on a migrated SQLite file (replay, reuse, busy, takeover of a dead claim,
expiry and the sweep), what the API stores and releases, and the migration agreeing with the
model."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from api import errors
from api import idempotency as api_idem
from api.errors import ApiError
from api.envelope import success_response
from api.strict import StrictRoute
from core import idempotency
from core.idempotency import Busy, Claimed, Replay, Reused
from core.models import IdempotencyKey, Tenant, utcnow
from core.settings import Settings

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


# --------------------------------------------------------------------------- key and fingerprint
@pytest.mark.parametrize("key", ["a", "5f0c7a4e-1b7d-4c51-9a43-2f8e1d0b6a19", "!~" * 10, "k" * 255])
def test_good_keys(key):
    assert idempotency.key_problem(key) is None


@pytest.mark.parametrize("key,kind", [("", "string_too_short"), ("k" * 256, "string_too_long"),
                                      ("two words", "string_pattern_mismatch"), ("tab\there", "string_pattern_mismatch"),
                                      ("clé", "string_pattern_mismatch"), ("nl\n", "string_pattern_mismatch")])
def test_bad_keys(key, kind):
    assert idempotency.key_problem(key)[0] == kind


def test_json_fingerprint_ignores_key_order_and_spacing_but_not_values():
    a = idempotency.fingerprint("POST /x", json.loads('{"prompt": "cat", "n": 1, "opts": {"b": 2, "a": [1, 2]}}'))
    b = idempotency.fingerprint("POST /x", json.loads('{"opts":{"a":[1,2],"b":2},"n":1,"prompt":"cat"}'))
    assert a == b and len(a) == 64
    assert a != idempotency.fingerprint("POST /x", {"prompt": "cat", "n": 2, "opts": {"b": 2, "a": [1, 2]}})
    assert a != idempotency.fingerprint("POST /x", {"prompt": "cat", "n": 1, "opts": {"b": 2, "a": [2, 1]}})
    assert a != idempotency.fingerprint("POST /y", {"prompt": "cat", "n": 1, "opts": {"b": 2, "a": [1, 2]}})
    assert idempotency.fingerprint("POST /x", {"n": 1}) != idempotency.fingerprint("POST /x", {"n": 1.0})
    assert idempotency.fingerprint("POST /x", {"t": "\u00e9"}) == idempotency.fingerprint("POST /x", {"t": "é"})


def test_fingerprint_of_bytes_and_files_and_parts():
    raw = b'{"custom_id":"1"}\n{"custom_id":"2"}\n'
    stream = io.BytesIO(raw)
    stream.read(5)  # wherever the file stands, the whole of it is hashed, and it is left rewound
    assert idempotency.fingerprint("POST /b", {}, stream) == idempotency.fingerprint("POST /b", {}, raw)
    assert stream.tell() == 0
    assert idempotency.fingerprint("POST /b", {}, raw) != idempotency.fingerprint("POST /b", {}, raw + b"\n")
    # options are a part of their own: the same file with other options is another request
    assert idempotency.fingerprint("POST /b", {"on_invalid": "skip"}, raw) != idempotency.fingerprint("POST /b", {}, raw)
    # a part's bytes cannot run into the next one's
    assert idempotency.fingerprint("POST /b", b"ab", b"c") != idempotency.fingerprint("POST /b", b"a", b"bc")
    # bytes and the JSON string of the same text are different parts
    assert idempotency.fingerprint("POST /b", b"x") != idempotency.fingerprint("POST /b", "x")


# --------------------------------------------------------------------------- claims on SQLite
@pytest.fixture
def sessions(db):
    return db[0]


@pytest.fixture
def tenant_id(sessions):
    from core.tenants import get_or_create_tenant

    with sessions.begin() as s:
        return get_or_create_tenant(s, "idem", "pro").id


def claim(sessions, tenant_id, key="k1", print_="f1", now=NOW, lock=75.0, ttl=86400.0):
    with sessions.begin() as s:
        return idempotency.claim(s, tenant_id, key, print_, "POST /x", ttl=ttl, lock_seconds=lock, now=now)


def test_claim_finish_replay(sessions, tenant_id):
    first = claim(sessions, tenant_id)
    assert isinstance(first, Claimed)
    assert claim(sessions, tenant_id, now=NOW + dt.timedelta(seconds=1)) == Busy()
    assert claim(sessions, tenant_id, print_="other") == Reused("POST /x")
    with sessions.begin() as s:
        assert idempotency.finish(s, tenant_id, "k1", first.token, status_code=202, body='{"a":1}',
                                  headers={"x-h": "v"}, request_id="job1")
        assert not idempotency.finish(s, tenant_id, "k1", first.token, status_code=500, body="{}")  # only once
    again = claim(sessions, tenant_id, now=NOW + dt.timedelta(hours=23))
    assert again == Replay(202, '{"a":1}', {"x-h": "v"}, "job1")
    assert claim(sessions, tenant_id, print_="other") == Reused("POST /x")
    # keys are per tenant: the same key is free for another tenant
    from core.tenants import get_or_create_tenant

    with sessions.begin() as s:
        other = get_or_create_tenant(s, "idem-2", "pro").id
    assert isinstance(claim(sessions, other, print_="other"), Claimed)


def test_release_frees_the_key_and_only_the_holder_can(sessions, tenant_id):
    first = claim(sessions, tenant_id)
    with sessions.begin() as s:
        assert not idempotency.release(s, tenant_id, "k1", "not-the-token")
        assert idempotency.release(s, tenant_id, "k1", first.token)
    second = claim(sessions, tenant_id, print_="another body")  # a released key takes any request
    assert isinstance(second, Claimed)


def test_a_dead_claim_is_taken_over_after_its_lock(sessions, tenant_id):
    first = claim(sessions, tenant_id, lock=75.0)
    assert claim(sessions, tenant_id, now=NOW + dt.timedelta(seconds=74)) == Busy()
    second = claim(sessions, tenant_id, now=NOW + dt.timedelta(seconds=76))
    assert isinstance(second, Claimed) and second.token != first.token
    with sessions.begin() as s:  # the first holder, back too late, can neither store nor release
        assert not idempotency.finish(s, tenant_id, "k1", first.token, status_code=202, body="{}")
        assert not idempotency.release(s, tenant_id, "k1", first.token)
        assert idempotency.finish(s, tenant_id, "k1", second.token, status_code=202, body='{"b":2}')
    assert claim(sessions, tenant_id, now=NOW + dt.timedelta(seconds=80)).body == '{"b":2}'


def test_a_dead_claim_that_created_its_job_is_adopted_with_the_job(sessions, tenant_id):
    """``link`` records the job in the creating transaction; a retry after the holder died
    answers from that job (``request_id``) and the key keeps its first expiry."""
    first = claim(sessions, tenant_id, lock=75.0, ttl=3600)
    with sessions.begin() as s:
        assert s.execute(idempotency.link(tenant_id, "k1", "not-the-token", "job-x")).rowcount == 0
        assert s.execute(idempotency.link(tenant_id, "k1", first.token, "job-1")).rowcount == 1
    assert claim(sessions, tenant_id, now=NOW + dt.timedelta(seconds=74)) == Busy()  # maybe still running
    adopted = claim(sessions, tenant_id, now=NOW + dt.timedelta(seconds=76), ttl=9999)
    assert isinstance(adopted, Claimed) and adopted.request_id == "job-1" and adopted.token != first.token
    with sessions() as s:
        assert s.get(IdempotencyKey, (tenant_id, "k1")).expires_at == NOW + dt.timedelta(seconds=3600)
    # past its expiry the key is new again, whatever it once created
    fresh = claim(sessions, tenant_id, now=NOW + dt.timedelta(seconds=3601))
    assert isinstance(fresh, Claimed) and fresh.request_id is None


def test_an_expired_key_is_a_new_key_and_the_sweep_deletes_it(sessions, tenant_id):
    first = claim(sessions, tenant_id, ttl=3600)
    with sessions.begin() as s:
        idempotency.finish(s, tenant_id, "k1", first.token, status_code=202, body="{}")
    claim(sessions, tenant_id, key="k2", ttl=7200)
    later = NOW + dt.timedelta(seconds=3601)
    # past its expiry the key answers nothing stored, whatever the body
    assert isinstance(claim(sessions, tenant_id, key="k1", print_="new body", now=later, ttl=7200), Claimed)
    claim(sessions, tenant_id, key="k3", ttl=60)
    with sessions.begin() as s:
        assert idempotency.sweep(s, now=later) == 1  # k3
        assert idempotency.sweep(s, now=NOW + dt.timedelta(seconds=7201)) == 1  # k2 (k1 lives again)
        left = s.scalars(select(IdempotencyKey.key)).all()
    assert left == ["k1"]


def test_sweep_is_bounded(sessions, tenant_id):
    for i in range(5):
        claim(sessions, tenant_id, key=f"k{i}", ttl=1)
    with sessions.begin() as s:
        assert idempotency.sweep(s, limit=3, now=NOW + dt.timedelta(seconds=2)) == 3
        assert idempotency.sweep(s, limit=3, now=NOW + dt.timedelta(seconds=2)) == 2
        assert idempotency.sweep(s, limit=3, now=NOW + dt.timedelta(seconds=2)) == 0


def test_the_expiry_task_sweeps_keys(sessions, tenant_id):
    from types import SimpleNamespace

    from workers import sweeper

    claim(sessions, tenant_id, key="old", now=utcnow() - dt.timedelta(days=2))
    claim(sessions, tenant_id, key="new", now=utcnow())
    ctx = SimpleNamespace(sessions=sessions, settings=Settings(), storage=None)
    sweeper.expire(ctx)
    with sessions() as s:
        assert s.scalars(select(IdempotencyKey.key)).all() == ["new"]


# --------------------------------------------------------------------------- what the API stores
@pytest.fixture
def api(db, tenant_id):
    """A route guarded like the job routes, whose work the test scripts."""
    app = FastAPI()
    app.router.route_class = StrictRoute
    errors.install(app)
    app.state.sessions = db[1]
    app.state.settings = Settings()
    app.state.script = {}
    calls = []

    @app.post("/make")
    async def make(request: Request):
        key = api_idem.key_of(request)
        body = await request.json()

        async def work(created):
            calls.append(body)
            how = app.state.script.get("how", "ok")
            if how == "refuse":  # e.g. not enough credits: nothing made
                raise ApiError(406, "no credits", code="insufficient_credits")
            if how == "plain-4xx":  # an answer (not an exception) before anything is made
                return success_response({"nothing": True}, 400)
            created(f"job{len(calls)}", success_response({"request_id": f"job{len(calls)}"}, 202))
            if how == "fail-after":  # the job exists, then the wait fails: the job's 202 is stored
                raise ApiError(502, "upstream failed", code="upstream_error", request_id=f"job{len(calls)}")
            if how == "crash-after":
                raise RuntimeError("the notification channel broke")
            return {"status": "success", "result": {"request_id": f"job{len(calls)}", "n": len(calls)}}

        if key is None:
            return await work(lambda *a: None)
        async def recover(request_id):
            calls.append({"recovered": request_id})
            return success_response({"request_id": request_id, "recovered": True}, 202)

        return await api_idem.guarded(request, tenant_id, key, idempotency.fingerprint("POST /make", body), work,
                                      lock_seconds=60, recover=recover)

    client = TestClient(app, raise_server_exceptions=False)
    client.calls = calls
    client.app_ = app
    return client


def post(api, body, key="key-1"):
    return api.post("/make", json=body, headers={"Idempotency-Key": key} if key else {})


def test_api_replays_the_stored_answer(api):
    first = post(api, {"a": 1})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    again = post(api, {"a": 1})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content and len(api.calls) == 1
    reused = post(api, {"a": 2})
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert len(api.calls) == 1
    assert post(api, {"a": 2}, key=None).status_code == 200 and len(api.calls) == 2  # no key: no check


def test_api_releases_the_key_when_nothing_was_made(api):
    api.app_.state.script["how"] = "refuse"
    assert post(api, {"a": 1}).status_code == 406
    api.app_.state.script["how"] = "plain-4xx"
    assert post(api, {"a": 1}).status_code == 400
    api.app_.state.script["how"] = "ok"  # the retry after topping up runs, and is the one stored
    assert post(api, {"a": 1}).json()["result"]["n"] == 3
    assert post(api, {"a": 1}).json()["result"]["n"] == 3 and len(api.calls) == 3


def test_api_stores_an_error_given_after_the_job_was_made(api):
    api.app_.state.script["how"] = "fail-after"
    first = post(api, {"a": 1})
    assert first.status_code == 502 and first.json()["error"]["request_id"] == "job1"
    api.app_.state.script["how"] = "ok"
    again = post(api, {"a": 1})
    assert again.status_code == 502 and again.content == first.content and len(api.calls) == 1


def test_api_stores_the_fallback_when_the_request_breaks_after_the_job_was_made(api):
    api.app_.state.script["how"] = "crash-after"
    assert post(api, {"a": 1}).status_code == 500
    api.app_.state.script["how"] = "ok"
    again = post(api, {"a": 1})
    assert again.status_code == 202 and again.json()["result"]["request_id"] == "job1"
    assert again.headers["Idempotent-Replayed"] == "true" and len(api.calls) == 1


def test_api_answers_409_while_the_first_request_runs(api, db, tenant_id):
    with db[0].begin() as s:  # a claim held by a request still running
        idempotency.claim(s, tenant_id, "key-1", idempotency.fingerprint("POST /make", {"a": 1}), "POST /make",
                          ttl=3600, lock_seconds=60)
    busy = post(api, {"a": 1})
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
    assert busy.json()["error"]["code"] == "idempotency_in_progress" and not api.calls


@pytest.mark.parametrize("key", ["k" * 256, "has space", ""])
def test_api_refuses_a_bad_key_naming_the_header(api, key):
    resp = api.post("/make", json={"a": 1}, headers={"Idempotency-Key": key})
    assert resp.status_code == 422 and not api.calls
    assert resp.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


# --------------------------------------------------------------------------- schema
def test_the_migrations_match_the_models(tmp_path):
    """``alembic revision --autogenerate`` on a database at head finds nothing to change (core's
    tables and the plug-ins'; a plug-in table's database-only key to a host table excepted, as
    migrations/env.py does)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from core.db import migrate
    from core.models import Base
    from providers.registry import PLUGINS

    plugin_metadata = [p.metadata for p in PLUGINS if p.metadata is not None]
    plugin_tables = {name for m in plugin_metadata for name in m.tables}

    def include(obj, name, type_, reflected, compare_to):  # noqa: ANN001, ANN202 - migrations/env.py's rule
        if type_ == "foreign_key_constraint" and reflected and compare_to is None:
            return not (obj.table.name in plugin_tables and obj.elements[0].target_fullname.split(".")[-2]
                        in Base.metadata.tables)
        return True

    url = f"sqlite:///{tmp_path / 'schema.db'}"
    migrate(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": include})
        diff = compare_metadata(context, [Base.metadata, *plugin_metadata])
    engine.dispose()
    assert diff == []
    assert "idempotency_keys" in Base.metadata.tables


def test_tenant_deletion_takes_its_keys(sessions, tenant_id):
    claim(sessions, tenant_id)
    with sessions.begin() as s:
        s.delete(s.get(Tenant, tenant_id))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_api_answers_from_the_job_a_dead_holder_created(api, db, tenant_id):
    """The holder linked its job, then died before storing the answer: after the lock, the
    retry answers from that job (``recover``), runs no work, and the answer is stored."""
    print_ = idempotency.fingerprint("POST /make", {"p": 1})
    with db[0].begin() as s:
        held = idempotency.claim(s, tenant_id, "dead-1", print_, "POST /make", ttl=3600, lock_seconds=60)
        s.execute(idempotency.link(tenant_id, "dead-1", held.token, "job-made"))
    headers = {"Idempotency-Key": "dead-1"}
    assert api.post("/make", json={"p": 1}, headers=headers).status_code == 409  # within its lock
    with db[0].begin() as s:  # ... a minute later
        s.get(IdempotencyKey, (tenant_id, "dead-1")).locked_until = utcnow() - dt.timedelta(seconds=1)
    retry = api.post("/make", json={"p": 1}, headers=headers)
    assert retry.status_code == 202 and retry.headers[idempotency.REPLAYED_HEADER] == "true"
    assert retry.json()["result"] == {"request_id": "job-made", "recovered": True}
    again = api.post("/make", json={"p": 1}, headers=headers)
    assert again.json() == retry.json() and again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert api.calls == [{"recovered": "job-made"}]  # no work ran; recovered once, then stored


def test_a_linked_claim_is_never_released(db, tenant_id):
    with db[0].begin() as s:
        held = idempotency.claim(s, tenant_id, "linked", "f", "POST /x", ttl=3600, lock_seconds=60)
        s.execute(idempotency.link(tenant_id, "linked", held.token, "job-1"))
        assert not idempotency.release(s, tenant_id, "linked", held.token)
