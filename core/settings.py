"""One settings object for every process (API, worker, beat, simulator, CLI).

Values come from environment variables (prefix-free names such as ``DATABASE_URL``
and ``BROKER_URL`` as well as ``VISIONGATE_*``) or a ``.env`` file. The embedded
default needs nothing: a SQLite file, kombu's filesystem transport and a local
result folder, all under ``VISIONGATE_DATA_DIR`` (default ``./.visiongate``).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.plans import PlanLimits, plan_grid
from providers.plugin import UpstreamDefaults

DEV_SECRET = "dev-insecure-secret-change-me"
# Outside the embedded default the secret key must be at least this long (and not DEV_SECRET).
MIN_SECRET_LENGTH = 32
# The embedded default: one of these environments, SQLite, and a broker inside the process's
# reach (kombu's filesystem or in-memory transport). Anything else is a deployment.
EMBEDDED_ENVIRONMENTS = ("development", "test")
LOCAL_BROKERS = ("filesystem://", "memory://")
SECRET_KEY_HOWTO = "export VISIONGATE_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')"


class ConfigurationError(Exception):
    """Settings no process may start with (the message says what to change).

    Not a ``ValueError`` on purpose: pydantic would wrap one in a ``ValidationError`` whose text
    repeats every input value, the secret key included."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    environment: str = Field("development", alias="VISIONGATE_ENV")
    data_dir: Path = Field(Path(".visiongate"), alias="VISIONGATE_DATA_DIR")

    # Storage of record and broker. Empty means "embedded default" (derived from data_dir).
    database_url: str = Field("", alias="DATABASE_URL")
    broker_url: str = Field("", alias="BROKER_URL")
    # Connections per process (the API, each worker process). Postgres' default
    # max_connections is 100: keep processes × (pool + overflow) under it.
    db_pool_size: int = Field(8, alias="VISIONGATE_DB_POOL_SIZE")
    db_max_overflow: int = Field(4, alias="VISIONGATE_DB_MAX_OVERFLOW")
    # A pooled connection idle this long is pinged (SELECT 1) before it is handed out, so one
    # the server dropped meanwhile is replaced unseen. One used more recently is handed out as it
    # is: pinging every checkout cost a round trip per transaction. 0 pings every checkout.
    db_ping_idle_seconds: float = Field(10.0, alias="VISIONGATE_DB_PING_IDLE_SECONDS")
    # Redis for sync-wait notifications (and, later, rate limits). Derived from BROKER_URL
    # when that is redis://; empty in the embedded mode (the API then polls the database).
    redis_url: str = Field("", alias="REDIS_URL")
    results_dir: Path | None = Field(None, alias="VISIONGATE_RESULTS_DIR")

    # Secret for API-key hashing, URL signing and the encryption of webhook signing secrets
    # (core/secretbox.py). Outside the embedded default it must be set, to a random value of at
    # least MIN_SECRET_LENGTH characters, the same in every process and kept across restarts.
    secret_key: str = Field(DEV_SECRET, alias="VISIONGATE_SECRET_KEY")
    # Public base URL used in status_url / image_url. Empty: taken from the request.
    public_base_url: str = Field("", alias="VISIONGATE_PUBLIC_URL")

    # Intake
    # API processes in the deployment (all hosts): while Redis is away each one admits this
    # share of every rate limit by itself (``visiongate api`` starts this many uvicorn workers).
    api_processes: int = Field(1, ge=1, alias="VISIONGATE_API_PROCESSES")
    max_body_bytes: int = Field(32 * 1024 * 1024, alias="VISIONGATE_MAX_BODY_BYTES")
    sync_deadline_seconds: float = Field(60.0, alias="VISIONGATE_SYNC_DEADLINE_SECONDS")
    auth_cache_seconds: float = Field(10.0, alias="VISIONGATE_AUTH_CACHE_SECONDS")
    # Status reads: how long an API process may answer from memory for an unfinished job whose
    # finish notification was lost (finishes are announced; 0 = always read the database).
    status_cache_seconds: float = Field(5.0, alias="VISIONGATE_STATUS_CACHE_SECONDS")
    # How long an Idempotency-Key replays its first answer (core/idempotency.py); the sweeper
    # deletes keys past it.
    idempotency_ttl_seconds: float = Field(24 * 3600, alias="VISIONGATE_IDEMPOTENCY_TTL_SECONDS")

    # Results
    url_ttl_seconds: int = Field(3600, alias="VISIONGATE_URL_TTL_SECONDS")
    # How long a finished job and its files are kept: the server's default, and the most a job
    # request may ask for in its ``retention_seconds`` (see ``retention_limit``).
    retention_seconds: int = Field(72 * 3600, alias="VISIONGATE_RETENTION_SECONDS")
    max_retention_seconds: int = Field(7 * 24 * 3600, alias="VISIONGATE_MAX_RETENTION_SECONDS")

    # Job machinery
    # A claimed job's lease; the worker holding it extends it every third of it (its heartbeat),
    # so a dead worker's jobs are recovered about a lease after it died.
    start_lease_seconds: float = Field(15.0, alias="VISIONGATE_START_LEASE_SECONDS")
    poll_lease_seconds: float = Field(20.0, alias="VISIONGATE_POLL_LEASE_SECONDS")
    # An unclaimed job's start message counts as lost after this long when its queue is empty
    # (a Redis broker says so; with other brokers after ten times this).
    requeue_after_seconds: float = Field(30.0, alias="VISIONGATE_REQUEUE_AFTER_SECONDS")
    poll_interval_seconds: float = Field(1.0, alias="VISIONGATE_POLL_INTERVAL_SECONDS")
    poll_interval_max_seconds: float = Field(15.0, alias="VISIONGATE_POLL_INTERVAL_MAX_SECONDS")
    # The start task asks for the first status check this soon after the upstream accepted the
    # job (a short image job is often done by then); later checks follow next_poll_delay.
    first_poll_seconds: float = Field(0.1, alias="VISIONGATE_FIRST_POLL_SECONDS")
    # Due status checks travel in messages of up to this many jobs, and one worker task makes
    # up to poll_concurrency upstream status requests at once (a shared pool per process).
    poll_batch: int = Field(50, alias="VISIONGATE_POLL_BATCH")
    poll_concurrency: int = Field(16, alias="VISIONGATE_POLL_CONCURRENCY")
    sweep_interval_seconds: float = Field(1.0, alias="VISIONGATE_SWEEP_INTERVAL_SECONDS")
    sweep_batch: int = Field(1000, alias="VISIONGATE_SWEEP_BATCH")
    max_start_attempts: int = Field(5, alias="VISIONGATE_MAX_START_ATTEMPTS")
    max_poll_failures: int = Field(8, alias="VISIONGATE_MAX_POLL_FAILURES")
    retry_backoff_base_seconds: float = Field(2.0, alias="VISIONGATE_RETRY_BACKOFF_BASE_SECONDS")
    retry_backoff_max_seconds: float = Field(120.0, alias="VISIONGATE_RETRY_BACKOFF_MAX_SECONDS")
    job_timeout_seconds: float = Field(3 * 3600, alias="VISIONGATE_JOB_TIMEOUT_SECONDS")
    broker_visibility_timeout: int = Field(4 * 3600, alias="VISIONGATE_BROKER_VISIBILITY_TIMEOUT")

    # Upstream HTTP
    upstream_timeout_seconds: float = Field(30.0, alias="VISIONGATE_UPSTREAM_TIMEOUT_SECONDS")
    max_download_bytes: int = Field(512 * 1024 * 1024, alias="VISIONGATE_MAX_DOWNLOAD_BYTES")

    # Simulator (the default upstream)
    simulator_host: str = Field("127.0.0.1", alias="VISIONGATE_SIMULATOR_HOST")
    simulator_port: int = Field(8591, alias="VISIONGATE_SIMULATOR_PORT")

    # Plans (core/plans.py): JSON merged over the default grid, e.g.
    # {"starter": {"rpm": 120, "concurrency": 20}}.
    plans: dict[str, dict[str, Any]] = Field(default_factory=dict, alias="VISIONGATE_PLANS")
    # Upstream throttling per provider, across all workers, merged over each provider's own
    # default (providers/<name>: PLUGIN.upstream_limits), e.g. {"bria": {"rpm": 1000,
    # "concurrency": null}}; null/absent = no limit of ours (the upstream's 429s still apply).
    upstream_limits: dict[str, dict[str, Any]] = Field(default_factory=dict, alias="VISIONGATE_UPSTREAM_LIMITS")

    # Development key (embedded mode / tests)
    dev_api_key: str = Field("", alias="VISIONGATE_DEV_API_KEY")

    # Outbound requests to user-given URLs (webhooks, input images) refuse non-public addresses
    # (core/netguard.py) unless the host is listed here: comma-separated or a JSON list of host
    # names, IP addresses or CIDR networks, e.g. "127.0.0.1,localhost" for local development.
    outbound_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="VISIONGATE_OUTBOUND_ALLOW_HOSTS")

    # Webhooks (core/webhooks/retry.py). Delays in seconds before attempt 1, 2, …, measured from the
    # previous attempt (the first from the event); one attempt per entry. Svix's schedule.
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        alias="VISIONGATE_WEBHOOK_RETRY_SCHEDULE")
    webhook_timeout_seconds: float = Field(10.0, alias="VISIONGATE_WEBHOOK_TIMEOUT_SECONDS")
    webhook_connect_timeout_seconds: float = Field(5.0, alias="VISIONGATE_WEBHOOK_CONNECT_TIMEOUT_SECONDS")
    webhook_max_retry_after_seconds: float = Field(36000.0, alias="VISIONGATE_WEBHOOK_MAX_RETRY_AFTER_SECONDS")
    webhook_secret_grace_seconds: float = Field(86400.0, alias="VISIONGATE_WEBHOOK_SECRET_GRACE_SECONDS")
    webhook_dispatch_lease_seconds: float = Field(60.0, alias="VISIONGATE_WEBHOOK_DISPATCH_LEASE_SECONDS")

    # Batches (core/batches.py)
    batch_max_lines: int = Field(50_000, alias="VISIONGATE_BATCH_MAX_LINES")
    batch_max_bytes: int = Field(200 * 1024 * 1024, alias="VISIONGATE_BATCH_MAX_BYTES")

    @field_validator("outbound_allow_hosts", "webhook_retry_schedule", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Accept a JSON list or a comma-separated string (environment variables)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_secrets(self) -> "Settings":
        """Refuse the public default secret, or a short one, outside the embedded default: with
        it anyone can forge never-expiring download URLs to any tenant's files."""
        reasons = self.deployment_reasons()
        if not reasons:
            return self
        if self.secret_key.strip() == DEV_SECRET:
            problem = "VISIONGATE_SECRET_KEY is not set (the public development default is in use)"
        elif len(self.secret_key.strip()) < MIN_SECRET_LENGTH:
            problem = (f"VISIONGATE_SECRET_KEY is too short ({len(self.secret_key.strip())} characters; "
                       f"at least {MIN_SECRET_LENGTH} are required)")
        else:
            return self
        raise ConfigurationError(
            f"{problem}, and this is not the embedded default ({'; '.join(reasons)}).\n"
            "The secret key signs result URLs, hashes API keys and encrypts webhook signing secrets: "
            "whoever knows it can forge download links to any tenant's files. Set a random one, the "
            "same for every process (API, worker, beat) and kept across restarts, e.g.\n"
            f"    {SECRET_KEY_HOWTO}")

    def deployment_reasons(self) -> list[str]:
        """Why these settings are not the embedded default (empty when they are)."""
        reasons = []
        if self.environment not in EMBEDDED_ENVIRONMENTS:
            reasons.append(f"VISIONGATE_ENV={self.environment}")
        if not self.is_sqlite:
            reasons.append("DATABASE_URL is a database server")
        if not self.celery_broker_url.startswith(LOCAL_BROKERS):
            reasons.append("BROKER_URL is a broker server")
        return reasons

    # ---- derived values -------------------------------------------------
    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'visiongate.db'}"

    @property
    def async_db_url(self) -> str:
        url = self.db_url
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
        if url.startswith("postgresql://"):
            return "postgresql+psycopg://" + url[len("postgresql://"):]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def filesystem_broker_dir(self) -> Path:
        return self.data_path / "broker"

    @property
    def notify_redis_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        if self.celery_broker_url.startswith(("redis://", "rediss://")):
            return self.celery_broker_url
        return ""

    @property
    def results_path(self) -> Path:
        return (self.results_dir or self.data_path / "results").resolve()

    @property
    def simulator_url(self) -> str:
        return f"http://{self.simulator_host}:{self.simulator_port}"

    @property
    def retention_limit(self) -> int:
        """The most a request's ``retention_seconds`` may be: ``max_retention_seconds``, never
        less than the default (a request may always ask for what it would get anyway)."""
        return max(self.max_retention_seconds, self.retention_seconds)

    def upstream_defaults(self) -> UpstreamDefaults:
        """What every provider adapter, and every provider route, is told about upstreams."""
        return UpstreamDefaults(simulator_url=self.simulator_url, timeout_seconds=self.upstream_timeout_seconds,
                                max_download_bytes=self.max_download_bytes)

    @property
    def plan_grid(self) -> dict[str, PlanLimits]:
        return plan_grid(self.plans)



@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()


def ensure_dirs(settings: Settings) -> None:
    os.makedirs(settings.data_path, exist_ok=True)
    os.makedirs(settings.results_path, exist_ok=True)
    if settings.celery_broker_url.startswith("filesystem://"):
        for sub in ("in", "processed"):
            os.makedirs(settings.filesystem_broker_dir / sub, exist_ok=True)
