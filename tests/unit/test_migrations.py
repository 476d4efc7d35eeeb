"""The migrations build what the models declare: on a freshly migrated database, what
``alembic revision --autogenerate`` would write is empty (the same comparison, with
migrations/env.py's rules: core's tables and every plug-in's own)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from core.db import migrate
from core.models import Base
from providers.registry import PLUGINS

PLUGIN_METADATA = [p.metadata for p in PLUGINS if p.metadata is not None]
TARGET = [Base.metadata, *PLUGIN_METADATA]
_PLUGIN_TABLES = {name for metadata in PLUGIN_METADATA for name in metadata.tables}


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """migrations/env.py's: a plug-in table's database foreign key to a host table is not a diff."""
    if type_ == "foreign_key_constraint" and reflected and compare_to is None:
        referred = obj.elements[0].target_fullname.split(".")[-2]
        return not (obj.table.name in _PLUGIN_TABLES and referred in Base.metadata.tables)
    return True


def autogenerate_diff(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"include_object": include_object,
                                                                   "target_metadata": TARGET})
            return compare_metadata(context, TARGET)
    finally:
        engine.dispose()


def test_a_migrated_database_matches_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    assert autogenerate_diff(url) == []
