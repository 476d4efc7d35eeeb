"""Pooled PostgreSQL connections are pinged only after sitting idle (``db_ping_idle_seconds``):
one the server dropped meanwhile is replaced without the caller seeing an error, and one used a
moment ago is handed out without the extra round trip."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from sqlalchemy import text

from core.db import make_async_engine, make_engine
from core.settings import get_settings
from tests.integration.conftest import PG_ADMIN

IDLE = 0.3


def _settings():
    return get_settings().model_copy(update={"db_ping_idle_seconds": IDLE})


def _terminate(pid: int) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        for _ in range(50):  # wait until the server has let go of it
            if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                return
            time.sleep(0.05)


@pytest.fixture
def engine(system_env):
    engine = make_engine(_settings())
    yield engine
    engine.dispose()


def _count_pings(engine, monkeypatch) -> list[int]:
    calls: list[int] = []
    real = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: calls.append(1) or real(conn))
    return calls


def test_connection_used_a_moment_ago_is_not_pinged(engine, monkeypatch):
    pings = _count_pings(engine, monkeypatch)
    for _ in range(5):
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    assert pings == []
    time.sleep(IDLE + 0.2)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert pings == [1]


def test_idle_connection_the_server_dropped_is_replaced(engine, monkeypatch):
    pings = _count_pings(engine, monkeypatch)
    with engine.connect() as conn:
        old = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    _terminate(old)
    time.sleep(IDLE + 0.2)
    with engine.connect() as conn:  # no error: the ping found it dead, the pool reconnected
        new = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    assert new != old
    assert pings == [1]


def test_async_engine_replaces_a_dropped_idle_connection(system_env):
    async def scenario() -> tuple[int, int]:
        engine = make_async_engine(_settings())
        try:
            async with engine.connect() as conn:
                old = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            _terminate(old)
            await asyncio.sleep(IDLE + 0.2)
            async with engine.connect() as conn:
                new = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            return old, new
        finally:
            await engine.dispose()

    old, new = asyncio.run(scenario())
    assert new != old
