"""Secrets: the secret key the system refuses to run with outside the embedded default, and the
webhook signing secrets kept encrypted in the database (core/secretbox.py, migration 0008)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker
from standardwebhooks import Webhook

from core import secretbox
from core.webhooks import endpoints, schemas, signing, tenant_secrets
from core.settings import DEV_SECRET, MIN_SECRET_LENGTH, ConfigurationError, Settings

ROOT = Path(__file__).resolve().parents[2]
PG = "postgresql+psycopg://nobody@127.0.0.1:1/nowhere"  # never reached: the refusal comes first
LONG = "k" * MIN_SECRET_LENGTH
HOWTO = "export VISIONGATE_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')"


def settings(**values: str) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# --------------------------------------------------------------------------- the secret key
@pytest.mark.parametrize("secret", [None, DEV_SECRET, "integration-secret", "x" * (MIN_SECRET_LENGTH - 1)])
def test_a_server_database_needs_a_real_secret(secret):
    values = {"DATABASE_URL": PG} if secret is None else {"DATABASE_URL": PG, "VISIONGATE_SECRET_KEY": secret}
    with pytest.raises(ConfigurationError) as err:
        settings(**values)
    message = str(err.value)
    assert "VISIONGATE_SECRET_KEY" in message and HOWTO in message
    assert "DATABASE_URL is a database server" in message
    assert ("not set" if secret in (None, DEV_SECRET) else "too short") in message
    if secret not in (None, DEV_SECRET):
        assert secret not in message  # the refusal never prints the secret


def test_the_embedded_default_needs_no_secret(tmp_path):
    for env in ("development", "test"):
        s = settings(VISIONGATE_ENV=env, VISIONGATE_DATA_DIR=str(tmp_path))
        assert s.secret_key == DEV_SECRET and s.is_sqlite and s.deployment_reasons() == []
    assert settings(BROKER_URL="memory://").deployment_reasons() == []
    assert settings(BROKER_URL="filesystem://").secret_key == DEV_SECRET


@pytest.mark.parametrize("values, reason", [
    ({"VISIONGATE_ENV": "production"}, "VISIONGATE_ENV=production"),
    ({"VISIONGATE_ENV": "staging"}, "VISIONGATE_ENV=staging"),
    ({"BROKER_URL": "redis://127.0.0.1:6379/0"}, "BROKER_URL is a broker server"),
    ({"VISIONGATE_ENV": "test", "DATABASE_URL": PG}, "DATABASE_URL is a database server"),  # tests too
])
def test_production_or_server_stores_refuse_the_default_secret(values, reason):
    with pytest.raises(ConfigurationError, match="not set") as err:
        settings(**values)
    assert reason in str(err.value) and HOWTO in str(err.value)
    with pytest.raises(ConfigurationError, match="too short"):
        settings(**values, VISIONGATE_SECRET_KEY="short-but-not-default")


def test_a_long_random_secret_is_accepted_everywhere():
    for values in ({"DATABASE_URL": PG}, {"VISIONGATE_ENV": "production"}, {"BROKER_URL": "redis://h:6379/0"},
                   {"VISIONGATE_ENV": "production", "DATABASE_URL": PG, "BROKER_URL": "redis://h:6379/0"}):
        assert settings(**values, VISIONGATE_SECRET_KEY=LONG).secret_key == LONG


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("VISIONGATE_", "BRIA_", "SIM_")) and k not in ("DATABASE_URL", "BROKER_URL", "REDIS_URL")}
    clean.update(VISIONGATE_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(args, cwd=tmp_path, env={**clean, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("component", ["api", "worker", "beat", "migrate"])
def test_the_cli_refuses_to_start_a_component_with_the_default_secret(component, tmp_path):
    proc = _run([sys.executable, "-m", "cli.main", component], tmp_path, DATABASE_URL=PG,
                BROKER_URL="redis://127.0.0.1:1/0")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "visiongate: refusing to start: VISIONGATE_SECRET_KEY is not set" in proc.stderr
    assert HOWTO in proc.stderr
    assert "Traceback" not in proc.stderr  # one clear message, not a stack


@pytest.mark.parametrize("entry", [
    "from api.app import create_app; create_app()",  # what uvicorn --factory calls in each API process
    "import workers.app",  # what every Celery worker and beat process imports
])
def test_api_and_worker_processes_refuse_the_default_secret(entry, tmp_path):
    proc = _run([sys.executable, "-c", entry + "; print('started')"], tmp_path, VISIONGATE_ENV="production")
    assert proc.returncode != 0 and "started" not in proc.stdout
    assert "ConfigurationError: VISIONGATE_SECRET_KEY is not set" in proc.stderr and HOWTO in proc.stderr
    ok = _run([sys.executable, "-c", entry + "; print('started')"], tmp_path, VISIONGATE_ENV="production",
              VISIONGATE_SECRET_KEY=LONG)
    assert ok.returncode == 0 and "started" in ok.stdout, ok.stderr


def test_the_celery_worker_command_refuses_the_default_secret(tmp_path):
    proc = _run([sys.executable, "-m", "celery", "-A", "workers.app:celery_app", "worker", "--pool", "solo"],
                tmp_path, DATABASE_URL=PG)
    assert proc.returncode != 0
    assert "VISIONGATE_SECRET_KEY is not set" in proc.stderr + proc.stdout


# --------------------------------------------------------------------------- webhook secrets at rest
def raw_secrets(sessions: sessionmaker, tenant_id: str) -> tuple[str, str | None]:
    with sessions() as s:
        return tuple(s.execute(text("SELECT secret, previous_secret FROM webhook_secrets WHERE tenant_id = :t"),
                               {"t": tenant_id}).one())


def make_tenant(sessions: sessionmaker, name: str = "acme") -> str:
    from core.tenants import get_or_create_tenant

    with sessions.begin() as s:
        return get_or_create_tenant(s, name, "pro").id


def signed(secrets: list[str], body: str = '{"type":"job.completed"}') -> tuple[str, dict[str, str]]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return body, signing.signed_headers(secrets, "msg_at_rest", now, body)


def test_webhook_secrets_are_stored_encrypted_and_still_sign(db):
    sessions, _ = db
    tenant_id = make_tenant(sessions)
    with sessions.begin() as s:  # the API's create-endpoint path
        endpoints.create_endpoint(s, tenant_id, schemas.EndpointIn.model_validate(
            {"url": "https://hooks.example.com/x"}, context={"allow_hosts": []}), "http://api")
    with sessions() as s:
        row = tenant_secrets.tenant_secret(s, tenant_id)
        plain, doc = row.secret, tenant_secrets.secret_document(row)
        keys = tenant_secrets.active_secrets(row)
    raw, previous = raw_secrets(sessions, tenant_id)
    assert plain.startswith("whsec_") and doc["secret"] == plain  # the client still sees the secret
    assert raw.startswith("v1:") and plain not in raw and plain[len("whsec_"):] not in raw
    assert previous is None
    assert secretbox.unseal(raw) == plain
    body, headers = signed(keys)
    assert Webhook(plain).verify(body, headers)["type"] == "job.completed"


def test_rotation_keeps_both_secrets_encrypted_and_signing(db):
    sessions, _ = db
    tenant_id = make_tenant(sessions)
    with sessions.begin() as s:
        old = tenant_secrets.tenant_secret(s, tenant_id).secret
    with sessions.begin() as s:
        doc = tenant_secrets.secret_document(tenant_secrets.rotate_secret(s, tenant_id, 3600))
    new = doc["secret"]
    assert new != old and doc["previous_secret_valid_until"]
    raw, previous = raw_secrets(sessions, tenant_id)
    assert raw.startswith("v1:") and previous.startswith("v1:")
    assert new not in raw and old not in previous
    assert (secretbox.unseal(raw), secretbox.unseal(previous)) == (new, old)
    with sessions() as s:  # a fresh read, as the worker's prepare() does
        keys = tenant_secrets.active_secrets(tenant_secrets.tenant_secret(s, tenant_id))
    assert keys == [new, old]
    body, headers = signed(keys)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(body, headers) == Webhook(old).verify(body, headers)
    # After the grace period only the new one signs.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    with sessions() as s:
        assert tenant_secrets.active_secrets(tenant_secrets.tenant_secret(s, tenant_id), later) == [new]


def test_sealing_format_and_key_derivation():
    a, b = secretbox.seal("whsec_abc", LONG), secretbox.seal("whsec_abc", LONG)
    assert a.startswith("v1:") and a != b  # a random IV each time
    assert secretbox.unseal(a, LONG) == secretbox.unseal(b, LONG) == "whsec_abc"
    assert secretbox.unseal("whsec_legacy", LONG) == "whsec_legacy"  # plaintext from before 0008
    with pytest.raises(secretbox.UndecryptableSecret, match="VISIONGATE_SECRET_KEY"):
        secretbox.unseal(a, "another-secret-key-of-enough-length")
    assert len(secretbox.seal(signing.generate_secret(), LONG)) < 200


# --------------------------------------------------------------------------- migration 0008
def _at_0007_with_plaintext(url: str) -> tuple[str, str, str]:
    from alembic import command

    from core.db import alembic_config

    command.upgrade(alembic_config(url), "0007")
    sessions = sessionmaker(create_engine(url))
    tenant_id = make_tenant(sessions)
    secret, previous = signing.generate_secret(), signing.generate_secret()
    with sessions.begin() as s:
        s.execute(text("INSERT INTO webhook_secrets (tenant_id, secret, previous_secret, previous_until, created_at)"
                       " VALUES (:t, :s, :p, :u, :c)"),
                  {"t": tenant_id, "s": secret, "p": previous,
                   "u": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(tzinfo=None),
                   "c": dt.datetime.now(dt.UTC).replace(tzinfo=None)})
    sessions.kw["bind"].dispose()
    return tenant_id, secret, previous


def test_migration_encrypts_existing_plaintext_secrets(tmp_path):
    from alembic import command

    from core.db import alembic_config, migrate

    url = f"sqlite:///{tmp_path / 'old.db'}"
    tenant_id, secret, previous = _at_0007_with_plaintext(url)
    engine = create_engine(url)
    sessions = sessionmaker(engine)
    assert raw_secrets(sessions, tenant_id) == (secret, previous)

    migrate(url)
    raw, raw_previous = raw_secrets(sessions, tenant_id)
    assert raw.startswith("v1:") and raw_previous.startswith("v1:")
    assert secret not in raw and previous not in raw_previous
    with sessions() as s:
        keys = tenant_secrets.active_secrets(tenant_secrets.tenant_secret(s, tenant_id))
    assert keys == [secret, previous]
    body, headers = signed(keys)
    assert Webhook(secret).verify(body, headers) == Webhook(previous).verify(body, headers)

    # Running it again changes nothing (already encrypted values are recognised by "v1:"). Only
    # 0008 runs again: the later revisions are in place and stay so.
    command.stamp(alembic_config(url), "0007")
    command.upgrade(alembic_config(url), "0008")  # 0008 only: later revisions' tables exist already
    assert raw_secrets(sessions, tenant_id) == (raw, raw_previous)

    # Downgrading gives the plaintext back.
    command.downgrade(alembic_config(url), "0007")
    assert raw_secrets(sessions, tenant_id) == (secret, previous)
    engine.dispose()


def test_migration_runs_on_an_empty_database(tmp_path):
    from core.db import migrate

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    sessions = sessionmaker(create_engine(url))
    tenant_id = make_tenant(sessions)
    with sessions.begin() as s:
        plain = tenant_secrets.tenant_secret(s, tenant_id).secret
    assert raw_secrets(sessions, tenant_id)[0].startswith("v1:") and plain.startswith("whsec_")
