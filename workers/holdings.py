"""The jobs a worker process holds (claimed, RUNNING, task id not yet recorded as SUBMITTED),
and the process's heartbeat.

Every ``lease / 3`` seconds the heartbeat thread

* writes the task ids left in the journal (workers/journal.py) to their jobs and moves those
  jobs on to SUBMITTED (``on_recorded``), so an id that waited out a database outage is
  polled as soon as the database is back; the notes of processes that died between an
  upstream's answer and the database write are adopted into the journal first;
* extends the start lease of every job the process holds (one UPDATE): the lease is short
  (``VISIONGATE_START_LEASE_SECONDS``, 15 s), so the jobs of a worker that died are recovered
  within seconds, while a live worker's are never taken from it;
* remembers since when the database has answered every beat (``healthy_for``). The sweeper
  recovers lost starts only when its process has seen the database healthy for longer than a
  lease: after a database outage every lease has run out, and a live worker needs one beat to
  renew its jobs' leases before anybody may take them for lost.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from core.jobs import claims, moves
from workers.journal import Journal

log = logging.getLogger(__name__)

# (job id, tasks, recorded: False when the job had moved on and the tasks are orphans)
OnRecorded = Callable[[str, list[dict[str, Any]], bool], None]


class Holdings:
    def __init__(self, sessions: sessionmaker, lease_seconds: float, journal: Journal,
                 on_recorded: OnRecorded | None = None, autostart: bool = True):
        self._sessions = sessions
        self._autostart = autostart  # False: beats only when ``beat()`` is called (tests)
        self.lease_seconds = lease_seconds
        self.journal = journal
        self.on_recorded = on_recorded
        self._lock = threading.Lock()
        self._jobs: dict[str, int] = {}  # job id → holders (a start and its in-flight call)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._healthy_since: float | None = time.monotonic()
        self.beats = 0

    # ------------------------------------------------------------------ holding
    def add(self, job_id: str) -> None:
        with self._lock:
            self._jobs[job_id] = self._jobs.get(job_id, 0) + 1
        if self._autostart:
            self._ensure()

    def discard(self, job_id: str) -> None:
        with self._lock:
            n = self._jobs.get(job_id, 0) - 1
            if n > 0:
                self._jobs[job_id] = n
            else:
                self._jobs.pop(job_id, None)

    def held(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def healthy_for(self) -> float:
        """Seconds since the database began answering every heartbeat (0: it is failing)."""
        since = self._healthy_since
        return 0.0 if since is None else time.monotonic() - since

    # ------------------------------------------------------------------ heartbeat
    def _ensure(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
                    self._thread.start()

    def start(self) -> None:
        """Start beating now (a worker starts it when it builds its context, so a journal left
        by a previous process is written without waiting for a job)."""
        self._ensure()

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        interval = max(0.1, self.lease_seconds / 3)
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(interval)

    def beat(self) -> None:
        ok = True
        try:
            self.journal.adopt_dead_notes()
        except OSError:  # the journal's folder itself is unreadable: the starts still read notes
            log.warning("journal: notes not read", exc_info=True)
        for job_id, tasks in self.journal.entries():
            try:
                with self._sessions.begin() as session:
                    recorded = moves.record_tasks(session, job_id, tasks)
            except Exception:  # noqa: BLE001 - the database is still away: next beat
                ok = False
                log.warning("journal: task ids of job %s not written yet", job_id, exc_info=True)
                break
            self.journal.remove(job_id)
            log.info("journal: task ids of job %s written after a delay", job_id)
            if self.on_recorded is not None:
                try:
                    self.on_recorded(job_id, tasks, recorded)
                except Exception:  # noqa: BLE001 - the sweeper resumes a recorded job anyway
                    log.warning("journal: resuming job %s failed", job_id, exc_info=True)
            self.discard(job_id)
        ids = self.held()
        if ok:
            try:
                with self._sessions.begin() as session:
                    if ids:
                        claims.extend_leases(session, ids, self.lease_seconds)
                    else:  # nothing held: still learn whether the database answers
                        session.execute(text("SELECT 1"))
            except Exception:  # noqa: BLE001 - the leases have two more beats
                ok = False
                log.warning("heartbeat: the database did not answer (%d jobs held)", len(ids), exc_info=True)
        if not ok:
            self._healthy_since = None
        elif self._healthy_since is None:
            self._healthy_since = time.monotonic()
        self.beats += 1
