"""Alembic environment: the URL comes from visiongate's settings unless the caller set one."""

from alembic import context
from sqlalchemy import create_engine, pool

from core.models import Base
from core.settings import ensure_dirs, get_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    ensure_dirs(get_settings())
    return config.get_main_option("sqlalchemy.url") or get_settings().db_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
