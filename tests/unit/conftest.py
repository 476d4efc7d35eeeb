"""Unit tier: no servers. A SQLite file migrated with Alembic stands in for the database where
the code under test needs SQL (the same migrations production runs)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from core.db import _sqlite_pragmas, migrate
from sqlalchemy import create_engine, event


@pytest.fixture(autouse=True)
def _default_environment(monkeypatch):
    """Unit tests see the defaults, whatever the integration tier (which shares the pytest
    process and sets VISIONGATE_*/DATABASE_URL/BROKER_URL for its servers) left in os.environ."""
    import os

    from core.settings import reset_settings

    for name in list(os.environ):
        if name.startswith(("VISIONGATE_", "SIM_")) or name in ("DATABASE_URL", "BROKER_URL", "REDIS_URL"):
            monkeypatch.delenv(name)
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'unit.db'}"
    migrate(url)
    engine = create_engine(url)
    event.listen(engine, "connect", _sqlite_pragmas)
    aengine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'unit.db'}")
    yield sessionmaker(engine, expire_on_commit=False), async_sessionmaker(aengine, expire_on_commit=False)
    engine.dispose()
