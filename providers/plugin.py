"""What a provider package hands the rest of the system: one ``Plugin`` object.

``providers/registry.py`` lists the plugins, one line each; the API (routes, status routes,
extra routers), the worker (adapters, queues, upstream limits), the simulator process, the CLI
and the test harness are all derived from that list. Nothing outside ``providers/`` names a
provider. A package declares:

* ``operations``  – its operation table (``providers.base.Operation`` rows);
* ``settings``    – a pydantic-settings class read from the provider's documented variables
  (``BRIA_BASE_URL``, ``OPENAI_API_KEY``, …); an empty base URL means "the simulator";
* ``build``       – ``build(settings, defaults) -> adapter``: a ``providers.base.Provider``
  (submit / poll / download) or an ``AsyncProvider`` (one slow call, run without a thread); None
  for a package that has no jobs of its own yet (its clients serve other packages);
* ``simulator``   – an ASGI app factory speaking the provider's real protocol, mounted by the one
  simulator process at ``simulator_path``;
* ``dialect``     – how its jobs look to clients (status route, synchronous answers);
* ``routers``     – ``routers(kit) -> [APIRouter, …]``: extra API routes the provider owns, built
  with what the host hands it (``RouteKit``); the API mounts every plugin's;
* ``metadata``    – the SQLAlchemy ``MetaData`` of the records the provider keeps itself (its
  tables are made by the host's migrations, which compare them with this metadata).

Like ``providers.base`` this module imports nothing of ours but the port.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol, runtime_checkable

from sqlalchemy import DateTime, TypeDecorator

from providers.base import Finished, MediaInput, Operation


# Constraint and index names of every table, the host's and the plugins' (``Plugin.metadata``), so
# that a migration names a plugin's constraints as the host names its own.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text): the column type
    of the host's tables and of every plug-in's (``Plugin.metadata``)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


@dataclass(frozen=True)
class UpstreamDefaults:
    """What the host tells every adapter it builds (from the shared settings)."""

    simulator_url: str  # base URL of the one simulator process (no trailing slash)
    timeout_seconds: float = 30.0
    max_download_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class Dialect:
    """How a provider's jobs look to its clients.

    * ``status_route``: the reference's status route for the provider (``{task_id}`` in it), or
      None when the reference has none: then a job's ``status_url`` is the provider-neutral
      ``GET /api/v1/jobs/{id}``.
    * ``always_sync``: the reference's endpoints have no ``sync`` field and answer with the
      result; the gateway waits up to its sync deadline and past it answers 202 with the
      ``status_url``. Otherwise ``sync`` is read from the request (default: the model's).
    """

    status_route: str | None = None
    always_sync: bool = False
    status_summary: str = ""

    def status_path(self, job_id: str) -> str:
        if self.status_route is None:
            return f"/api/v1/jobs/{job_id}"
        return self.status_route.replace("{task_id}", job_id)

    @property
    def status_prefix(self) -> str | None:
        return None if self.status_route is None else self.status_route.split("{", 1)[0]


@runtime_checkable
class AsyncProvider(Protocol):
    """A provider whose upstream answers a submit only when the work is done (10–60 s): the
    worker runs ``run`` on an event loop, many at once, none holding a thread. ``max_in_flight``
    bounds the calls one worker process keeps open."""

    name: str
    max_in_flight: int

    async def run(self, op: Operation, params: dict[str, Any]) -> Finished: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class RouteKit:
    """What a provider's own routes get from the host (the API), so the provider imports
    nothing of it.

    * ``endpoint_principal`` / ``read_principal``: FastAPI dependency aliases (``Annotated``) for
      the calling tenant (``.tenant_id``), after the endpoint's or the reads' rate limit;
    * ``session``: a dependency alias for a database session (an SQLAlchemy ``AsyncSession``);
    * ``defaults``: what the host tells every adapter (``UpstreamDefaults``: the simulator's
      address, the timeout);
    * ``route_class``: the API's route class (request bodies read strictly);
    * ``error(status, message, code=…, **extra)``: an exception the API answers in its error
      envelope; ``success(result)``: the API's success envelope;
    * ``call_upstream(fn, *args, who=…, missing_ok=False, **kw)``: a synchronous upstream call,
      run off the event loop, its ``UpstreamError`` answered as the API answers them (429 with
      Retry-After, 502, 504, a refused input 422, a state conflict 409); with ``missing_ok`` an
      upstream 404 answers None;
    * ``fetch_media(url, spec)`` / ``decode_media(value, spec)``: a client's media from a URL
      (fetched SSRF-safely) or from base64, checked against ``spec`` (a ``MediaInput``):
      ``(bytes, info)`` (``info.format``, ``.width``, ``.height``, ``.size``), or
      ``InvalidRequest`` naming ``spec.field``. Synchronous: run them in a thread.
    """

    endpoint_principal: Any
    read_principal: Any
    session: Any
    defaults: UpstreamDefaults
    route_class: Any
    error: Callable[..., Exception]
    success: Callable[[Any], Any]
    call_upstream: Callable[..., Awaitable[Any]]
    fetch_media: Callable[[str, MediaInput], tuple[bytes, Any]]
    decode_media: Callable[[Any, MediaInput], tuple[bytes, Any]]


@dataclass(frozen=True)
class Plugin:
    name: str
    operations: tuple[Operation, ...]
    settings: type
    build: Callable[[Any, UpstreamDefaults], Any] | None  # None: no jobs of its own (yet)
    simulator: Callable[[], Any] | None = None
    simulator_path: str = ""
    dialect: Dialect = field(default_factory=Dialect)
    routers: Callable[[RouteKit], list[Any]] | None = None
    metadata: Any = None  # sqlalchemy.MetaData of the plugin's own tables
    # Our own default throttle towards the upstream ({"rpm": …, "concurrency": …});
    # VISIONGATE_UPSTREAM_LIMITS overrides it per provider.
    upstream_limits: Mapping[str, Any] = field(default_factory=dict)
    docs: str = ""  # docs/providers/<name>.md
    url_setting: str = "base_url"  # the settings field that points the adapter at the real service
    # Its adapter has ``cancel(op, task)``: a cancelled running job is stopped upstream (and not
    # billed there); without it the upstream finishes (and bills) the task, which is just no
    # longer polled.
    upstream_cancel: bool = False

    def base_url(self, configured: str, defaults: UpstreamDefaults) -> str:
        """The upstream base URL: the configured one, else this provider's simulator."""
        return (configured or defaults.simulator_url + self.simulator_path).rstrip("/")
