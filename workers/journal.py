"""Upstream task ids the database could not take yet, kept on disk until it can.

When an upstream has accepted a submit, its task id is the only handle on a paid generation.
The worker records it in the job's row at once (``moves.record_tasks``); when the database does
not answer within a few quick retries, the id is written here (one small file per job, fsynced,
renamed into place), and the worker's heartbeat (workers/holdings.py) writes it to the row as
soon as the database is back. A worker that restarts replays what a previous process of the same
data directory left, and a start reads the journal before it would submit a job again.
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

    def get(self, job_id: str) -> list[dict[str, Any]] | None:
        try:
            return json.loads(self._path(job_id).read_text(encoding="utf-8"))["tasks"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, OSError):
            log.warning("unreadable journal entry for job %s", job_id, exc_info=True)
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
        try:
            self._path(job_id).unlink()
        except FileNotFoundError:
            pass
