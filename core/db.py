"""Engines and sessions: a sync engine for workers and the CLI, an async one for the API.

Both come from the one ``DATABASE_URL`` (``postgresql+psycopg://`` in production, a SQLite file
in the embedded default). SQLite runs in WAL mode with a busy timeout so the API, the worker and
beat can share the file.
"""

from __future__ import annotations

import functools
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
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


def make_engine(settings: Settings) -> Engine:
    ensure_dirs(settings)
    if settings.is_sqlite:
        engine = create_engine(settings.db_url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(settings.db_url, pool_pre_ping=True,
                         pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)


def make_async_engine(settings: Settings) -> AsyncEngine:
    ensure_dirs(settings)
    if settings.is_sqlite:
        engine = create_async_engine(settings.async_db_url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(settings.async_db_url, pool_pre_ping=True,
                               pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)


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
