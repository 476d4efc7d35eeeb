"""What every step of the job pipeline needs: settings, database sessions, storage, the
job-finished notifier, the provider adapters, the publisher of Celery messages, our upstream
limits, the polling pace and the in-flight runner; and the process's shared I/O pool."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy.orm import sessionmaker

from core.models import Tenant
from core.notify import Notifier
from core.plans import limits_for
from core.settings import Settings
from core.storage import LocalStorage
from providers.base import Operation, Provider
from providers.plugin import AsyncProvider
from providers.registry import OPERATIONS
from workers.holdings import Holdings
from workers.inflight import InFlight
from workers.pacing import FirstCheck
from workers.throttle import Throttle

# (task name, job id or list of ids, queue[, countdown=seconds])
Publish = Callable[..., None]


def _same_queue(provider: str) -> str:
    return provider


@dataclass
class Context:
    settings: Settings
    sessions: sessionmaker
    storage: LocalStorage
    notifier: Notifier
    providers: dict[str, Provider]
    publish: Publish
    throttle: Throttle | None = None
    start_task: str = "visiongate.start"
    poll_task: str = "visiongate.poll"
    poll_queue: Callable[[str], str] = _same_queue
    pacing: FirstCheck | None = None  # built from the settings when not given
    inflight: InFlight | None = None  # slow synchronous upstreams' calls (workers/inflight.py)
    holdings: Holdings | None = None  # the jobs this process holds, its heartbeat and journal
    broker: Any = None  # workers.app.BrokerProbe: notices lost start messages (None: unknown)
    operations: dict[str, Operation] = field(default_factory=lambda: dict(OPERATIONS))
    _closed: bool = field(default=False, repr=False)
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.pacing is None:
            self.pacing = FirstCheck(self.settings.first_poll_seconds, self.settings.job_timeout_seconds,
                                     cold_after=self.settings.poll_interval_seconds)

    def map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``fn`` over ``items`` in the process's shared I/O pool (in order); inline for one."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max(1, self.settings.poll_concurrency),
                                                thread_name_prefix="upstream-io")
        return list(self._pool.map(fn, items))

    def hold(self, job_id: str) -> None:
        """This process has claimed ``job_id``: its lease is extended until ``release``."""
        if self.holdings is not None:
            self.holdings.add(job_id)

    def release(self, job_id: str) -> None:
        if self.holdings is not None:
            self.holdings.discard(job_id)

    def has_async(self) -> bool:
        return any(isinstance(p, AsyncProvider) for p in self.providers.values())

    def concurrency(self, tenant: Tenant) -> int:
        """The tenant's cap on jobs running upstream at once (plan grid + overrides)."""
        return limits_for(self.settings.plan_grid, tenant.plan, tenant.limits).concurrency

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self.holdings is not None:
            self.holdings.close()
        if self.inflight is not None:
            self.inflight.close([p.aclose for p in self.providers.values() if isinstance(p, AsyncProvider)])
        for provider in self.providers.values():
            if not isinstance(provider, AsyncProvider):
                provider.close()
        self._closed = True
