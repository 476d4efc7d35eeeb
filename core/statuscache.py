"""What status reads need of recent jobs, kept per API process.

Polling is the hottest path of a job gateway (a client asks "done yet?" many times per job), and
almost every answer is the same as the last one. This cache keeps, per job, only the fields a
status document is made of (no params, no upstream tasks):

* **Final jobs** (COMPLETED, ERROR, CANCELLED) never change again until they expire, so their
  entries are kept until the job's retention ends (``expires_at``), at most ``size`` of them,
  oldest dropped first (10,000 by default: a few KB each with a long prompt in the result's
  metadata, so tens of MB at most per API process). URLs are still
  signed on every read, so a cached entry never hands out an old link.
* **Unfinished jobs** are kept for ``pending_ttl`` seconds, and only while this process is
  subscribed to the job-finished channel (``core.notify``): every finish drops the job's entry at
  once, so a read never reports IN_PROGRESS for a job the database already has as final, except
  for a notification that was lost, which the short TTL bounds. Losing the subscription drops
  every unfinished entry and stops caching them until it is back.

A read that started before a job's finish was announced must not store what it read (it may be
the state from before the finish): ``begin()`` returns a sequence number, and ``put`` skips an
unfinished entry for a job invalidated after it.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from core.jobs.states import FINISHED, is_visible, values
from core.models import Job, utcnow
from core.notify import ALL

FINISHED_VALUES = frozenset(values(FINISHED))


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """The job fields a status document reads (``core.results.status_document`` takes it in
    place of a ``Job``)."""

    id: str
    tenant_id: str
    provider: str
    status: str
    outputs: Any
    result_meta: Any
    error_code: str | None
    error_message: str | None
    expires_at: dt.datetime | None
    progress: float | None = None
    queue_position: int | None = None  # a held job's place in line when it was read

    @classmethod
    def of(cls, job: Job, queue_position: int | None = None) -> "StatusEntry":
        return cls(job.id, job.tenant_id, job.provider, job.status, job.outputs, job.result_meta,
                   job.error_code, job.error_message, job.expires_at, job.progress, queue_position)

    @property
    def final(self) -> bool:
        return self.status in FINISHED_VALUES

    def visible_to(self, tenant_id: str, provider: str | None, now: dt.datetime | None = None) -> bool:
        """``core.jobs.states.is_visible`` (tenant, not expired) and, if given, the provider."""
        return (provider is None or self.provider == provider) and is_visible(self, tenant_id, now)


class StatusCache:
    def __init__(self, pending_ttl: float = 5.0, size: int = 10_000):
        self.pending_ttl = pending_ttl
        self.size = size
        self._final: OrderedDict[str, StatusEntry] = OrderedDict()
        self._pending: dict[str, tuple[float, StatusEntry]] = {}
        self._live = False  # subscribed to job-finished messages
        self._seq = 0
        self._dropped: dict[str, int] = {}  # job id → sequence number of its last invalidation
        self._all_dropped = 0  # sequence number of the last drop of every unfinished entry

    # ------------------------------------------------------------------ reads
    def get(self, job_id: str) -> StatusEntry | None:
        entry = self._final.get(job_id)
        if entry is not None:
            if entry.expires_at is not None and entry.expires_at <= utcnow():
                del self._final[job_id]
                return None
            return entry
        pending = self._pending.get(job_id)
        if pending is None:
            return None
        if pending[0] < time.monotonic():
            del self._pending[job_id]
            return None
        return pending[1]

    def begin(self) -> int:
        """Call before reading a job from the database; pass the result to ``put``."""
        return self._seq

    def put(self, entry: StatusEntry, started: int) -> None:
        if entry.final:
            self._pending.pop(entry.id, None)
            self._final[entry.id] = entry
            if len(self._final) > self.size:
                self._final.popitem(last=False)
            return
        if not self._live or self.pending_ttl <= 0:
            return
        if self._all_dropped > started or self._dropped.get(entry.id, 0) > started:
            return  # the job finished (or may have) while it was being read
        if len(self._pending) >= self.size:
            self._pending.clear()
        # Spread over the last quarter of the TTL: jobs read together do not all expire together.
        ttl = self.pending_ttl * random.uniform(0.75, 1.0)
        self._pending[entry.id] = (time.monotonic() + ttl, entry)

    # ------------------------------------------------------------------ invalidation
    def finished(self, job_id: str) -> None:
        """A job-finished message: the job's unfinished entry is stale."""
        self._seq += 1
        if job_id == ALL:
            self._drop_pending()
            return
        self._pending.pop(job_id, None)
        self._dropped[job_id] = self._seq
        if len(self._dropped) > self.size:
            # Forgetting which jobs were dropped is safe only if no read started before now
            # can store an unfinished entry: treat it as a drop of everything.
            self._dropped.clear()
            self._all_dropped = self._seq

    def set_live(self, live: bool) -> None:
        """The job-finished subscription is up (True) or lost (False). Either way, messages may
        have been missed since the last known state: every unfinished entry goes."""
        self._seq += 1
        self._drop_pending()
        self._live = live

    def _drop_pending(self) -> None:
        self._pending.clear()
        self._dropped.clear()
        self._all_dropped = self._seq

    def __len__(self) -> int:
        return len(self._final) + len(self._pending)
