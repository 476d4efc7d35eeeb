"""Alembic environment: the URL comes from visiongate's settings unless the caller set one.

The tables compared with the database (``alembic revision --autogenerate``) are core's and every
provider plug-in's own (``Plugin.metadata``). A plug-in's tables keep their foreign keys to the
host's tables (``tenant_id`` → ``tenants``) in the database only: they live on the plug-in's own
metadata, which cannot name a host table, so those keys are not taken for keys to drop.
"""

from typing import Any

from alembic import context
from sqlalchemy import create_engine, pool

from core.models import Base
from core.settings import ensure_dirs, get_settings
from providers.registry import PLUGINS

config = context.config
PLUGIN_METADATA = [p.metadata for p in PLUGINS if p.metadata is not None]
target_metadata = [Base.metadata, *PLUGIN_METADATA]
_PLUGIN_TABLES = {name for metadata in PLUGIN_METADATA for name in metadata.tables}
_HOST_TABLES = set(Base.metadata.tables)


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Everything but a database foreign key from a plug-in's table to a host table."""
    if type_ == "foreign_key_constraint" and reflected and compare_to is None:
        referred = obj.elements[0].target_fullname.split(".")[-2]
        return not (obj.table.name in _PLUGIN_TABLES and referred in _HOST_TABLES)
    return True


def _url() -> str:
    ensure_dirs(get_settings())
    return config.get_main_option("sqlalchemy.url") or get_settings().db_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite", include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
