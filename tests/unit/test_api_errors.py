"""One error rule: every failure answers in a documented shape; error items never echo more than
a short prefix of a long input; an unexpected exception is a 500 in the error shape, logged once
with a request id; a backing service that is down is a 503 with Retry-After."""

from __future__ import annotations

import logging
import math

import psycopg
import pytest
from sqlalchemy import exc as sa_exc
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from api import errors
from api.strict import StrictRoute, bad_text_errors, loads
from core.signing import Verdict, verify
from core.webhooks.retry import parse_retry_after


class Body(BaseModel):
    name: str
    count: int = 1


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    app.router.route_class = StrictRoute
    errors.install(app)

    @app.post("/echo")
    async def echo(body: Body) -> dict:
        return {"name": body.name}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    @app.get("/redis-down")
    async def redis_down() -> None:
        raise redis.ConnectionError("connection refused")

    @app.get("/db-going-down")
    async def db_going_down() -> None:  # what a shutting-down PostgreSQL raised under a wrapper
        try:
            raise psycopg.OperationalError("terminating connection due to administrator command")
        except psycopg.OperationalError as exc:
            raise RuntimeError("the status read failed") from exc

    @app.get("/db-interface")
    async def db_interface() -> None:
        raise sa_exc.InterfaceError("SELECT 1", {}, Exception("connection is closed"))

    return TestClient(app, raise_server_exceptions=False)


def test_unexpected_error_is_500_in_the_error_shape_with_a_request_id(client: TestClient, caplog):
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        resp = client.get("/boom")
    assert resp.status_code == 500
    error = resp.json()["error"]
    assert resp.json()["status"] == "error" and error["code"] == "internal_error"
    assert error["request_id"].startswith("req_") and resp.headers["X-Request-ID"] == error["request_id"]
    assert "secret internal detail" not in resp.text
    logged = [r for r in caplog.records if error["request_id"] in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info


def test_redis_down_is_503_with_retry_after(client: TestClient):
    resp = client.get("/redis-down")
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    assert resp.json()["error"]["code"] == "service_unavailable"


@pytest.mark.parametrize("path", ["/db-going-down", "/db-interface"])
def test_a_database_going_away_is_503_whatever_wraps_it(client: TestClient, path: str):
    resp = client.get(path)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5", resp.text
    assert resp.json()["error"]["code"] == "service_unavailable"


def test_a_missing_field_beside_a_huge_value_answers_a_short_422(client: TestClient):
    huge = "A" * 8_000_000
    resp = client.post("/echo", json={"count": huge})
    assert resp.status_code == 422
    assert len(resp.content) < 4_000
    assert "(8000000 characters)" in resp.text


def test_clip_keeps_short_values_and_summarises_long_ones():
    assert errors.clip("short") == "short"
    assert errors.clip(5) == 5 and errors.clip(None) is None and errors.clip(True) is True
    assert errors.clip(math.nan) == "nan" and errors.clip(math.inf) == "inf"
    long = errors.clip("x" * 1000)
    assert long.endswith("(1000 characters)") and len(long) < 80
    assert errors.clip("a\ud800b") == "a\\ud800b"
    nested = errors.clip({"image": "B" * 10_000, "n": 1, "deep": {"a": {"b": {"c": {"d": 1}}}}})
    assert nested["n"] == 1 and nested["image"].endswith("(10000 characters)")
    assert len(str(errors.clip({str(i): "y" * 60 for i in range(1000)}))) < 3_000
    assert errors.clip(b"\x00" * 10) == "<10 bytes>"


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_strict_loads_refuses_non_finite_numbers(text: str):
    with pytest.raises(ValueError, match="JSON number|finite"):
        loads(f'{{"x": {text}}}'.encode())


def test_strict_loads_keeps_ordinary_json():
    assert loads(b'{"a": [1, 2.5, -3e10, "\\u00e9", null, true]}') == {"a": [1, 2.5, -3e10, "é", None, True]}


def test_bad_text_errors_name_the_field():
    errs = bad_text_errors({"prompt": "a\x00", "list": ["ok", "\ud800"], "k\x00": 1})
    assert [(e["type"], e["loc"]) for e in errs] == [
        ("string_nul", ("body", "prompt")), ("string_unicode", ("body", "list", 1)), ("string_nul", ("body", "k\x00"))]
    assert bad_text_errors({"fine": "😀 é \u2028"}) == []


@pytest.mark.parametrize("expires, signature", [
    ("²", "ab"), ("٣٣", "ab"), ("9999999999", "éé"), ("9" * 30, "ab"), ("-1", "ab"), ("", "ab"), ("10", None)])
def test_malformed_signed_links_are_invalid_not_errors(expires, signature):
    assert verify("k" * 40, "GET", "/files/x", expires, signature) is Verdict.INVALID


@pytest.mark.parametrize("value, expected", [
    ("120", 120.0), ("1.5", 1.5), ("²", None), ("٣", None), ("nan", None), ("inf", None), ("-3", None),
    ("1e400", None), ("", None), (None, None), ("Wed, 21 Oct 99999 07:28:00 GMT", None)])
def test_retry_after_reads_only_what_http_allows(value, expected):
    assert parse_retry_after(value) == expected
