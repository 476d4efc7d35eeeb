"""Job-finished notifications, so ``sync=true`` requests wake up the moment a job ends.

With Redis (production) the worker publishes the job id on one channel and every API process
keeps one subscription that wakes the matching waiters. Without Redis (embedded mode) waiters
re-read the job from the database at a short interval. Either way the database stays the
truth: a waiter always re-reads the row, and also re-checks it periodically in case a message
was missed (pub/sub is fire-and-forget).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable, Iterable, Protocol

import redis
import redis.asyncio as aioredis

CHANNEL = "visiongate:jobs:finished"
ALL = "*"  # "many jobs changed": listeners drop everything they hold about unfinished jobs
log = logging.getLogger(__name__)


class Listener(Protocol):
    def finished(self, job_id: str) -> None: ...

    def set_live(self, live: bool) -> None: ...


class Notifier:
    """Worker side: say that a job reached a final state."""

    def __init__(self, redis_url: str):
        self._client = redis.Redis.from_url(redis_url) if redis_url else None

    def job_finished(self, job_id: str) -> None:
        """``job_id`` reached a final state (``ALL``: several jobs did)."""
        if self._client is None:
            return
        try:
            self._client.publish(CHANNEL, job_id)
        except redis.RedisError:  # a lost wake-up costs latency only; waiters re-check the DB
            log.warning("could not publish the finish of job %s", job_id, exc_info=True)


class Waiters:
    """API side: wait until a job is final, or a deadline passes; and tell ``listeners`` (the
    status cache) about every finish and about the subscription going up or down."""

    def __init__(self, redis_url: str, db_interval: float = 0.25, fallback_interval: float = 2.0,
                 listeners: Iterable[Listener] = ()):
        self._url = redis_url
        self._events: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task | None = None
        self._listeners = list(listeners)
        self._publisher: aioredis.Redis | None = None
        # With pub/sub the DB is re-checked rarely; without it, often.
        self._interval = fallback_interval if redis_url else db_interval

    async def start(self) -> None:
        if self._url and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="job-finished-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None

    async def announce(self, job_id: str) -> None:
        """Publish a change from the API side (``ALL``: many jobs at once, e.g. a batch
        cancelled) so every API process hears it; without Redis only this process exists."""
        if not self._url:
            self._dispatch(job_id)
            return
        if self._publisher is None:
            self._publisher = aioredis.Redis.from_url(self._url)
        try:
            await self._publisher.publish(CHANNEL, job_id)
        except redis.RedisError:  # the listeners' short TTL bounds what a lost message costs
            log.warning("could not publish a change of job %s", job_id, exc_info=True)

    def _dispatch(self, job_id: str) -> None:
        for listener in self._listeners:
            listener.finished(job_id)
        for event in self._events.get(job_id, ()):
            event.set()

    def _set_live(self, live: bool) -> None:
        for listener in self._listeners:
            listener.set_live(live)

    async def _listen(self) -> None:
        while True:
            client = aioredis.Redis.from_url(self._url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        kind = message.get("type")
                        if kind == "subscribe":
                            self._set_live(True)
                        elif kind == "message":
                            self._dispatch(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis restarted or unreachable: waiters fall back to the DB
                log.warning("job-finished listener lost Redis; retrying", exc_info=True)
            finally:
                self._set_live(False)
                await client.aclose()
            await asyncio.sleep(1.0)

    async def wait(self, job_id: str, timeout: float,
                   is_final: Callable[[], Awaitable[bool]]) -> bool:
        """True once ``is_final()`` says so, False if ``timeout`` passes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        event = asyncio.Event()
        self._events.setdefault(job_id, set()).add(event)
        try:
            while True:
                if await is_final():
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, self._interval))
                event.clear()
        finally:
            waiters = self._events.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._events[job_id]
