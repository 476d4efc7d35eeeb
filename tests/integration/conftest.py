"""Integration tier: real PostgreSQL, real Redis, real Celery worker and beat processes, the
API under uvicorn and the Bria simulator, all started once per session.

Connection settings can be overridden with TEST_DATABASE_URL / TEST_REDIS_URL; ``make test``
(through scripts/ensure-services.sh) makes sure both servers are up and the database exists.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import psycopg
import pytest
import redis

from providers.simulator.app import paths as simulator_paths
from tests.integration.system import System, free_port

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("TEST_PG_DB", "visiongate_test")
DATABASE_URL = os.environ.get("TEST_DATABASE_URL",
                              f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# Short timings so recovery paths run in seconds; production defaults are in core.settings.
TIMINGS = {
    "VISIONGATE_POLL_INTERVAL_SECONDS": "0.3",
    "VISIONGATE_POLL_INTERVAL_MAX_SECONDS": "1",
    "VISIONGATE_SWEEP_INTERVAL_SECONDS": "0.5",
    "VISIONGATE_START_LEASE_SECONDS": "4",
    "VISIONGATE_POLL_LEASE_SECONDS": "5",
    "VISIONGATE_REQUEUE_AFTER_SECONDS": "4",
    "VISIONGATE_RETRY_BACKOFF_BASE_SECONDS": "0.2",
    "VISIONGATE_RETRY_BACKOFF_MAX_SECONDS": "1",
    "VISIONGATE_MAX_START_ATTEMPTS": "3",
    "VISIONGATE_MAX_POLL_FAILURES": "3",
    "VISIONGATE_SYNC_DEADLINE_SECONDS": "15",
    "VISIONGATE_UPSTREAM_TIMEOUT_SECONDS": "3",
    "VISIONGATE_AUTH_CACHE_SECONDS": "0",
    "SIM_LATENCY_SECONDS": "0.5",
    "SIM_OPENAI_LATENCY_SECONDS": "0.3",
    "SIM_GOOGLE_LATENCY_SECONDS": "0.1",
    # Input images in the Bria endpoint tests are served from 127.0.0.2 (127.0.0.1 stays refused).
    # Webhook receivers in the webhook/batch tests listen on 127.0.0.3.
    "VISIONGATE_OUTBOUND_ALLOW_HOSTS": "127.0.0.2,127.0.0.3",
    # Webhook retries in seconds instead of minutes/hours (8 attempts, like the real schedule).
    "VISIONGATE_WEBHOOK_RETRY_SCHEDULE": "0,0.3,0.5,1,1,1,1,1",
}


def _fresh_database() -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


@pytest.fixture(scope="session")
def system_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir = tmp_path_factory.mktemp("system")
    _fresh_database()
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISIONGATE_", "BRIA_"))}
    env.update(TIMINGS)
    env.update({
        "VISIONGATE_ENV": "test",
        "VISIONGATE_SECRET_KEY": "integration-secret-0123456789abcdefghijklmnop",
        "VISIONGATE_DATA_DIR": str(data_dir),
        "DATABASE_URL": DATABASE_URL,
        "BROKER_URL": REDIS_URL,
        "VISIONGATE_SIMULATOR_PORT": str(free_port()),
    })
    # This test process reads the same settings (to create keys and inspect rows).
    os.environ.update({k: v for k, v in env.items() if k.startswith(("VISIONGATE_", "DATABASE_", "BROKER_"))})
    from core.db import migrate, reset_engines
    from core.settings import reset_settings

    reset_settings()
    reset_engines()
    migrate()
    return env


@pytest.fixture(scope="session")
def system(system_env: dict[str, str], request: pytest.FixtureRequest):
    sys_ = System(system_env, Path(system_env["VISIONGATE_DATA_DIR"]))
    try:
        for name in ("simulator", "api", "worker", "beat"):
            sys_.start(name)
        yield sys_
    finally:
        if request.session.testsfailed:
            print(sys_.logs())
        sys_.stop()


def _settle(timeout: float = 30.0) -> None:
    """Let jobs an earlier test left running reach the upstream first, so this test's injected
    faults hit this test's requests (held jobs waiting for a slot do not count)."""
    from sqlalchemy import func, select

    from core.db import session_factory
    from core.models import Job

    deadline = time.time() + timeout
    while time.time() < deadline:
        with session_factory()() as session:
            busy = session.scalar(select(func.count()).select_from(Job).where(
                Job.status.in_(("QUEUED", "RUNNING")), Job.held_at.is_(None)))
        if not busy:
            return
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def _clean_simulator(request: pytest.FixtureRequest):
    if "system" in request.fixturenames:
        sys_: System = request.getfixturevalue("system")
        _settle()
        for base in simulator_paths().values():  # every registered provider's simulator
            sys_.sim("POST", f"{base}/_sim/reset").raise_for_status()
        sys_.sim("POST", "/_sim/config", json={"latency_seconds": 0.5}).raise_for_status()
    yield


@pytest.fixture(scope="session")
def make_key(system_env: dict[str, str]) -> Callable[..., str]:
    from core.db import session_factory
    from core.settings import get_settings
    from core.tenants import create_key, get_or_create_tenant

    def _make(tenant: str = "acme", plan: str = "starter") -> str:
        with session_factory().begin() as session:
            row = get_or_create_tenant(session, tenant, plan)
            _, key = create_key(session, get_settings().secret_key, row)
        return key

    return _make


@pytest.fixture(scope="session")
def api_key(make_key: Callable[..., str]) -> str:
    return make_key("acme", "pro")


class Client:
    """A Vision Studio client: submit, poll, download."""

    def __init__(self, base: str, key: str):
        self.http = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60)

    def generate(self, body: dict[str, Any]) -> httpx.Response:
        return self.http.post("/api/v1/bria/image/generation/generate-image", json=body)

    def status(self, request_id: str) -> httpx.Response:
        return self.http.get(f"/api/v1/bria/status/{request_id}")

    def wait(self, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            resp = self.status(request_id)
            assert resp.status_code == 200, resp.text
            doc = resp.json()
            if doc["status"] != "IN_PROGRESS":
                return doc
            time.sleep(0.2)
        raise TimeoutError(f"job {request_id} still IN_PROGRESS after {timeout}s")


@pytest.fixture
def client(system: System, api_key: str) -> Client:
    c = Client(system.api_url, api_key)
    yield c
    c.http.close()


# --------------------------------------------------------------------------- the Bria endpoint tests
@pytest.fixture(scope="session")
def files():  # noqa: ANN201 - an Iterator of tests.integration.bria_media.Files
    """Input images served on 127.0.0.2 (bria_media.py imports this module: imported here)."""
    from tests.integration.bria_media import Files

    server = Files()
    yield server
    server.close()


@pytest.fixture(scope="session")
def bria_key(make_key) -> str:
    return make_key("bria-endpoints", "enterprise")  # unmetered: dozens of jobs, no credit noise


@pytest.fixture
def bc(system: System, bria_key: str):  # noqa: ANN201 - an Iterator of Client
    system.sim("POST", "/_sim/config", json={"latency_seconds": 0.2}).raise_for_status()
    c = Client(system.api_url, bria_key)
    yield c
    c.http.close()


@pytest.fixture
def tenant_client(system, make_key):
    """A metered (pro) tenant of its own per test, and a client for it."""
    made = []

    def _make(name: str) -> Client:
        c = Client(system.api_url, make_key(name, "pro"))
        made.append(c)
        return c

    yield _make
    for c in made:
        c.http.close()
