"""The FastAPI application factory (``uvicorn api.app:create_app --factory``)."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from api import docs, errors, plugins
from api.deps import AuthCache
from api.middleware import IntakeMiddleware, RateLimitHeaders
from api.publisher import StartPublisher
from api.routes import account, batches, files, health, jobs, status, webhooks
from api.routes.operations import build_router, form_paths
from core.db import async_session_factory, make_async_engine
from core.intake import GroupWriter
from core.notify import Waiters
from core.ratelimit import FallbackLimiter, LeasedLimiter, MemoryLimiter, RedisLimiter
from core.settings import Settings, get_settings
from core.statuscache import StatusCache
from core.storage import LocalStorage

log = logging.getLogger("visiongate.api")

DESCRIPTION = """Vision Studio API compatible job gateway.

Authenticate with the `X-API-Key` header. Long-running operations are jobs: they answer
**202** with a `status_url` (or, synchronously, wait and answer **200** with the result). Poll
the `status_url` (the provider's status route where the reference has one, such as
`GET /api/v1/bria/status/{request_id}`, else `GET /api/v1/jobs/{id}`) until `COMPLETED` or
`ERROR`."""


# A Redis that does not answer fails a request's call quickly rather than holding it.
REDIS_TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = make_async_engine(settings)
        app.state.sessions = async_session_factory(engine)
        redis_client = None
        if settings.notify_redis_url:
            redis_client = aioredis.Redis.from_url(settings.notify_redis_url, **REDIS_TIMEOUTS)
            # Redis away: each process counts its share of every quota itself (no 500, no 503)
            app.state.limiter = FallbackLimiter(LeasedLimiter(RedisLimiter(redis_client)),
                                                settings.api_processes)
        else:
            app.state.limiter = MemoryLimiter()  # embedded mode: one API process
        broker_redis = None
        if settings.celery_broker_url.startswith(("redis://", "rediss://")):
            broker_redis = aioredis.Redis.from_url(settings.celery_broker_url, **REDIS_TIMEOUTS)
        app.state.intake = GroupWriter(app.state.sessions, StartPublisher(broker_redis))
        await app.state.waiters.start()
        # Everything built so far (routes, models, schemas: ~hundreds of thousands of objects)
        # lives as long as the process: keep it out of the collector's full passes, which would
        # otherwise walk it every time and stall every request in flight.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await app.state.waiters.stop()
            for client in (redis_client, broker_redis):
                if client is not None:
                    await client.aclose()
            await engine.dispose()

    # /docs is served from local assets (api/docs.py); FastAPI's own pages load them from a CDN
    app = FastAPI(title="visiongate", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.upstream_defaults = settings.upstream_defaults()  # for the operations' intake hooks
    app.state.plan_grid = settings.plan_grid
    app.state.log = log
    app.state.auth_cache = AuthCache(settings.auth_cache_seconds)
    app.state.storage = LocalStorage(settings.results_path)
    app.state.status_cache = StatusCache(settings.status_cache_seconds)
    app.state.waiters = Waiters(settings.notify_redis_url, listeners=[app.state.status_cache])

    from workers.app import celery_app

    def check_broker() -> None:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    app.state.check_broker = check_broker

    errors.install(app)
    app.add_middleware(status.StatusFastPath)
    app.add_middleware(IntakeMiddleware, max_body_bytes=settings.max_body_bytes,
                       path_limits={"/api/v1/batches": settings.batch_max_bytes}, form_paths=form_paths())
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(errors.ErrorBarrier)  # last added: outermost of ours (see its docstring)
    app.include_router(health.router)
    app.include_router(build_router())
    app.include_router(status.router)
    app.include_router(jobs.router)
    app.include_router(account.router)
    app.include_router(files.router)
    app.include_router(batches.router)
    app.include_router(webhooks.router)
    plugins.mount(app, settings)  # the providers' own routes (Bria's tailored generation)
    docs.install(app)
    return app
