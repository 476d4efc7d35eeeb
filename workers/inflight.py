"""Slow synchronous upstream calls, many in flight per worker process, none holding a thread.

Some upstreams answer a submit only when the work is done (OpenAI's image calls: 10–60 s; Google's
Imagen ``:predict`` and Gemini ``:generateContent`` alike). A worker that held a thread per call
would be capped by its thread count (16 threads at 45 s per image is 0.35 jobs/s). Providers
that declare such calls implement ``providers.base.AsyncProvider.run`` (a coroutine); the worker
runs them here:

* one asyncio event loop per worker process, on a thread of its own, started on first use (after
  Celery's fork, so no loop crosses a fork);
* ``launch`` is called by the start task once the job is claimed and its inputs are resolved. It
  first takes a slot of the provider's in-flight cap (``max_in_flight``): when every slot is
  taken, the start task waits for one, so a full worker stops claiming and its queue's other
  consumers take the next jobs; then the call is handed to the loop and the task returns;
* the answer (or the exception) is handed to ``on_done`` on a small thread pool, where the
  pipeline stores the outputs and moves the job like any other submit;
* while calls are in flight their jobs stay held by the process (workers/holdings.py: its
  heartbeat extends their start leases), so the sweeper does not take them for lost. A worker
  killed with calls in flight stops extending them: its jobs' leases run out and the sweeper
  recovers them like any interrupted start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Coroutine

log = logging.getLogger(__name__)

Done = Callable[[Any], None]  # called with the call's result, or the exception it raised


class InFlight:
    def __init__(self, finishers: int = 4):
        self._finishers = finishers
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._jobs: set[str] = set()
        self.launched = 0
        self.finished = 0

    # ------------------------------------------------------------------ lifecycle
    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="upstream-inflight", daemon=True).start()
                self._pool = ThreadPoolExecutor(self._finishers, thread_name_prefix="inflight-finish")
                self._loop = loop
            return self._loop

    def close(self, closers: list[Callable[[], Coroutine[Any, Any, None]]] = ()) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        for closer in closers:
            try:
                asyncio.run_coroutine_threadsafe(closer(), loop).result(timeout=5)
            except Exception:  # noqa: BLE001 - closing is best effort
                log.warning("closing an async provider failed", exc_info=True)
        try:
            asyncio.run_coroutine_threadsafe(self._cancel_all(), loop).result(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    @staticmethod
    async def _cancel_all() -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._jobs)

    # ------------------------------------------------------------------ calls
    def slot(self, provider: str, cap: int) -> threading.BoundedSemaphore:
        with self._lock:
            if provider not in self._slots:
                self._slots[provider] = threading.BoundedSemaphore(max(1, cap))
            return self._slots[provider]

    def launch(self, job_id: str, provider: str, cap: int,
               call: Callable[[], Coroutine[Any, Any, Any]], on_done: Done) -> None:
        """Run ``call()`` on the loop; ``on_done(result or exception)`` on a finisher thread.
        Blocks while the provider's ``cap`` calls are already in flight in this process."""
        slot = self.slot(provider, cap)
        slot.acquire()
        loop = self._ensure()
        with self._lock:
            self._jobs.add(job_id)
            self.launched += 1

        async def run() -> None:
            try:
                result: Any = await call()
            except BaseException as exc:  # noqa: BLE001 - every outcome goes to on_done
                result = exc
            finally:
                slot.release()
            self._pool.submit(self._done, job_id, on_done, result)

        asyncio.run_coroutine_threadsafe(run(), loop)

    def _done(self, job_id: str, on_done: Done, result: Any) -> None:
        try:
            on_done(result)
        except Exception:  # noqa: BLE001 - the lease runs out and the sweeper recovers the job
            log.exception("finishing in-flight job %s failed", job_id)
        finally:
            with self._lock:
                self._jobs.discard(job_id)
                self.finished += 1
