"""Webhook signing secrets at rest, through the real system (API, Celery worker and beat,
PostgreSQL): the table holds only ``v1:`` ciphertext, the client still gets its ``whsec_…``
secret, and deliveries still verify with the ``standardwebhooks`` package, during a rotation
with both secrets. Then migration 0008 on PostgreSQL: a plaintext row written at revision 0007
is encrypted by the upgrade and keeps signing."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import sessionmaker
from standardwebhooks import Webhook

from tests.integration.conftest import DATABASE_URL, DB_NAME, PG_ADMIN, Client
from tests.integration.receiver import Receiver
from tests.integration.system import System

pytestmark = pytest.mark.integration


def stored(tenant: str, url: str | None = None) -> tuple[str, str | None]:
    """The raw columns, as a database reader (a dump, a replica) sees them."""
    engine = create_engine(url or DATABASE_URL)
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(text(
                "SELECT s.secret, s.previous_secret FROM webhook_secrets s JOIN tenants t ON t.id = s.tenant_id"
                " WHERE t.name = :name"), {"name": tenant}).one())
    finally:
        engine.dispose()


def test_webhook_secrets_are_encrypted_at_rest_and_deliveries_still_verify(system: System, make_key):
    client = Client(system.api_url, make_key("secrets-at-rest", "pro"))
    with Receiver() as rx:
        created = client.http.post("/api/v1/webhooks/endpoints", json={"url": rx.url("/at-rest")})
        assert created.status_code == 201, created.text
        got = client.http.get("/api/v1/webhooks/secret")
        assert got.status_code == 200
        old = got.json()["result"]["secret"]
        assert old.startswith("whsec_")
        raw, raw_previous = stored("secrets-at-rest")
        assert raw.startswith("v1:") and old not in raw and old[len("whsec_"):] not in raw
        assert raw_previous is None

        rotated = client.http.post("/api/v1/webhooks/secret/rotate", json={})
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["result"]["secret"]
        assert new.startswith("whsec_") and new != old
        raw, raw_previous = stored("secrets-at-rest")
        assert raw.startswith("v1:") and raw_previous.startswith("v1:")
        assert all(s not in r for s in (old, new) for r in (raw, raw_previous))

        resp = client.generate({"prompt": "a sealed envelope", "sync": False})
        assert resp.status_code == 202, resp.text
        [msg] = rx.wait_for(1, lambda m: m.path == "/at-rest")
        assert len(msg.headers["webhook-signature"].split(" ")) == 2
        assert Webhook(new).verify(msg.body, msg.headers)["type"] == "job.completed"
        assert Webhook(old).verify(msg.body, msg.headers)["type"] == "job.completed"
    client.http.close()


@pytest.fixture
def old_database(system_env: dict[str, str]):
    """An empty database of its own, dropped afterwards."""
    name = f"{DB_NAME}_mig0008"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migration_encrypts_plaintext_secrets_on_postgres(old_database: str):
    from alembic import command

    from core.db import alembic_config, migrate
    from core.webhooks import signing, tenant_secrets
    from core.tenants import get_or_create_tenant

    command.upgrade(alembic_config(old_database), "0007")
    engine = create_engine(old_database)
    sessions = sessionmaker(engine)
    secret, previous = signing.generate_secret(), signing.generate_secret()
    with sessions.begin() as s:
        tenant_id = get_or_create_tenant(s, "migrated", "pro").id
        s.execute(text("INSERT INTO webhook_secrets (tenant_id, secret, previous_secret, previous_until, created_at)"
                       " VALUES (:t, :s, :p, :u, now())"),
                  {"t": tenant_id, "s": secret, "p": previous,
                   "u": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)})
    try:
        migrate(old_database)
        raw, raw_previous = stored("migrated", old_database)
        assert raw.startswith("v1:") and raw_previous.startswith("v1:")
        assert secret not in raw and previous not in raw_previous
        with sessions() as s:
            keys = tenant_secrets.active_secrets(tenant_secrets.tenant_secret(s, tenant_id))
        assert keys == [secret, previous]
        now = int(dt.datetime.now(dt.UTC).timestamp())
        body = '{"type":"job.completed"}'
        headers = signing.signed_headers(keys, "msg_migrated", now, body)
        assert Webhook(secret).verify(body, headers) == Webhook(previous).verify(body, headers)
        migrate(old_database)  # at head already: nothing changes
        assert stored("migrated", old_database) == (raw, raw_previous)
    finally:
        engine.dispose()
