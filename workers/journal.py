"""Upstream task ids the database could not take yet, kept on disk until it can.

When an upstream has accepted a submit, its task id is the only handle on a paid generation.
The worker records it in the job's row at once (``moves.record_tasks``); when the database does
not answer within a few quick retries, the id is written here (one small file per job, fsynced,
renamed into place), and the worker's heartbeat (workers/holdings.py) writes it to the row as
soon as the database is back. A worker that restarts replays what a previous process of the same
data directory left, and a start reads the journal before it would submit a job again.

Before the database write is even tried, the ids are *noted* here (``note``: a plain write, no
fsync, named with the process id; gone once the row has them). A process killed between the
upstream's answer and its database commit, a few milliseconds in which a SIGKILL used to cost a
second submit, leaves the note behind: a start reads it like an entry, and the heartbeat of a
live process on the host turns the notes of dead processes into entries (``adopt_dead_notes``),
which it then writes to their rows. A note has to outlive its process, not the machine: the
kernel keeps what was written when a process dies.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Journal:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, job_id: str) -> Path:
        if not _SAFE.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.folder / f"{job_id}.json"

    def write(self, job_id: str, tasks: list[dict[str, Any]]) -> None:
        """Durably (fsync of the file and of the folder) before returning."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(job_id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"job_id": job_id, "tasks": tasks}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def note(self, job_id: str, tasks: list[dict[str, Any]]) -> None:
        """The ids of a submit the upstream just accepted, before the database write (no fsync:
        see the module docstring); ``clear_note`` once they are safe elsewhere."""
        path = self._note_path(job_id, os.getpid())
        tmp = path.with_suffix(".notetmp")
        try:
            tmp.write_text(json.dumps({"job_id": job_id, "tasks": tasks}), encoding="utf-8")
        except FileNotFoundError:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"job_id": job_id, "tasks": tasks}), encoding="utf-8")
        os.replace(tmp, path)

    def clear_note(self, job_id: str) -> None:
        try:
            self._note_path(job_id, os.getpid()).unlink()
        except FileNotFoundError:
            pass

    def _note_path(self, job_id: str, pid: int) -> Path:
        return self._path(job_id).with_suffix(f".{pid}.note")

    def adopt_dead_notes(self) -> int:
        """Notes left by processes that are gone become entries (the heartbeat then writes them
        to their rows); returns how many."""
        adopted = 0
        for path in sorted(self.folder.glob("*.note*")) if self.folder.is_dir() else ():
            job_id, _, pid = path.stem.rpartition(".")
            if not pid.isdigit() or _alive(int(pid)):
                continue
            try:
                if path.suffix == ".notetmp" or self._path(job_id).exists():  # half-written, or known
                    path.unlink()
                else:
                    os.replace(path, self._path(job_id))
                    adopted += 1
                    log.warning("journal: task ids of job %s noted by dead process %s adopted", job_id, pid)
            except (OSError, ValueError):
                log.warning("journal: note %s not adopted", path.name, exc_info=True)
        return adopted

    def get(self, job_id: str) -> list[dict[str, Any]] | None:
        """The job's entry, else a note left for it (by any process)."""
        for path in (self._path(job_id), *sorted(self.folder.glob(f"{job_id}.*.note"))):
            try:
                return json.loads(path.read_text(encoding="utf-8"))["tasks"]
            except FileNotFoundError:
                continue
            except (ValueError, KeyError, OSError):
                log.warning("unreadable journal entry %s", path.name, exc_info=True)
        return None

    def entries(self) -> list[tuple[str, list[dict[str, Any]]]]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            tasks = self.get(path.stem)
            if tasks is not None:
                found.append((path.stem, tasks))
        return found

    def remove(self, job_id: str) -> None:
        """The job's entry and any notes left for it."""
        for path in (self._path(job_id), *self.folder.glob(f"{job_id}.*.note")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
