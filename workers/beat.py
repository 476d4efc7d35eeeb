"""Beat with a standby: any number of beat processes may run; one leads (sends the sweeps), the
others wait and take over within a couple of seconds when it goes away.

Leadership is a lock the database holds for the leader's connection: a PostgreSQL session
advisory lock (released by the server the moment the leader's connection closes: a killed
process, a lost host), or, on the embedded SQLite default, an exclusive ``flock`` on a file in the
data folder (released by the kernel when the process dies). The leader checks its connection
before every tick; a leader that lost it stops sending at once. Sweeps are safe to overlap (each
takes rows with ``FOR UPDATE SKIP LOCKED`` and moves them conditionally), so the instant of a
hand-over never does work twice; it only stops beats from doubling every sweep message.

The schedule lives in memory (``celery.beat.Scheduler``): every entry is a short interval, so a
new leader simply starts sending; no schedule file is shared between beats.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from celery.beat import Scheduler
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from core.settings import get_settings

log = logging.getLogger(__name__)
LOCK_KEY = 0x76697369  # "visi": the advisory lock id of the beat leader
STANDBY_INTERVAL = 1.0  # how often a standby tries to become the leader (and a leader re-checks)


class PostgresLeader:
    def __init__(self, url: str):
        self._engine = create_engine(url, poolclass=NullPool)
        self._conn: Any = None

    def held(self) -> bool:
        try:
            if self._conn is None:
                conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                if not conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}):
                    conn.close()
                    return False
                self._conn = conn
                return True
            self._conn.scalar(text("SELECT 1"))  # still our connection, so still our lock
            return True
        except Exception:  # noqa: BLE001 - the database is away: nobody leads through it
            log.warning("beat: the leader lock's connection failed", exc_info=True)
            self.release()
            return False

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass


class FileLeader:
    def __init__(self, path: Path):
        self._path = path
        self._fd: int | None = None

    def held(self) -> bool:
        if self._fd is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def make_leader() -> PostgresLeader | FileLeader:
    settings = get_settings()
    if settings.db_url.startswith("postgresql"):
        return PostgresLeader(settings.db_url)
    return FileLeader(settings.data_path / "beat.lock")


class LeaderScheduler(Scheduler):
    """Ticks only while this beat holds the leader lock."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.leader = make_leader()
        self.leading = False
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        held = self.leader.held()
        if held != self.leading:
            self.leading = held
            if held:
                log.warning("beat: this beat (pid %d) is the leader now; sending the schedule", os.getpid())
                for entry in self.schedule.values():  # due at once: a standby has sent nothing
                    entry.last_run_at = self.app.now() - entry.schedule.run_every
            else:
                log.warning("beat: this beat (pid %d) lost the leader lock; standing by", os.getpid())
        if not held:
            return STANDBY_INTERVAL
        return min(super().tick(*args, **kwargs), STANDBY_INTERVAL)

    def close(self) -> None:
        self.leader.release()
        super().close()
