"""Engines and sessions: a sync engine for workers and the CLI, an async one for the API.

Both come from the one ``DATABASE_URL`` (``postgresql+psycopg://`` in production, a SQLite file
in the embedded default). SQLite runs in WAL mode with a busy timeout so the API, the worker and
beat can share the file.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from core.settings import Settings, ensure_dirs, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


_IDLE_SINCE = "visiongate_idle_since"


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections idle ``idle_seconds`` or longer only.

    A connection checked in less than that ago is handed out unpinged: under load every checkout
    is such a one, and the ping was a round trip per transaction. One that died in that short
    while fails its statement as a disconnect, which invalidates the pool; callers already retry
    failed work (the worker requeues, the API answers 503).
    """
    pool, dialect = engine.pool, engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_conn, record) -> None:  # noqa: ANN001
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_conn, record, _proxy) -> None:  # noqa: ANN001
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # a fresh connection, or one in use a moment ago
        try:
            alive = dialect.do_ping(dbapi_conn)
        except Exception as error:
            if not dialect.is_disconnect(error, dbapi_conn, None):
                raise
            alive = False
        if not alive:  # the pool drops this connection and checks out another
            raise exc.DisconnectionError("a pooled connection was closed by the server")


def make_engine(settings: Settings) -> Engine:
    ensure_dirs(settings)
    if settings.is_sqlite:
        engine = create_engine(settings.db_url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(settings.db_url, pool_size=settings.db_pool_size,
                           max_overflow=settings.db_max_overflow)
    ping_when_idle(engine, settings.db_ping_idle_seconds)
    return engine


def make_async_engine(settings: Settings) -> AsyncEngine:
    ensure_dirs(settings)
    if settings.is_sqlite:
        engine = create_async_engine(settings.async_db_url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(settings.async_db_url, pool_size=settings.db_pool_size,
                                 max_overflow=settings.db_max_overflow)
    ping_when_idle(engine.sync_engine, settings.db_ping_idle_seconds)
    return engine


@functools.lru_cache(maxsize=1)
def sync_engine() -> Engine:
    return make_engine(get_settings())


@functools.lru_cache(maxsize=1)
def session_factory() -> sessionmaker:
    return sessionmaker(sync_engine(), expire_on_commit=False)


def async_session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def reset_engines() -> None:
    """Drop cached engines (after a fork, or when tests switch databases)."""
    if sync_engine.cache_info().currsize:
        sync_engine().dispose()
    sync_engine.cache_clear()
    session_factory.cache_clear()


def alembic_config(url: str | None = None):  # noqa: ANN201 - alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().db_url).replace("%", "%%"))
    return cfg


def migrate(url: str | None = None) -> None:
    """Bring the schema to the newest revision (Alembic is the only way tables are made)."""
    from alembic import command

    ensure_dirs(get_settings())
    command.upgrade(alembic_config(url), "head")
