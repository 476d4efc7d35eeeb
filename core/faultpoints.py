"""Named fault points for fault tests: ``VISIONGATE_FAULT_AT=<point>:<marker file>[:pause]``.

The first time the process reaches ``<point>`` it creates the marker file, then either kills
itself (SIGKILL, no cleanup; the restarted process finds the marker and passes the point) or,
with ``:pause``, waits until the test deletes the marker (at most a minute) and goes on: a test
breaks something (stops the database, say) at exactly that moment. Ignored unless
``VISIONGATE_ENV`` is ``development`` or ``test``: a production process never faults on purpose.

Points: ``after_send`` (a worker: the upstream answered a submit; its task id is not recorded
yet), ``after_note`` (a worker: the task id is noted in the host's journal, not yet in the
database), ``after_record`` (a worker: the task id is recorded; the rest of the start's bookkeeping is
not done) and ``idempotent_created`` (the API: a request with an ``Idempotency-Key`` created its
job or batch; its answer is not stored yet).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def reached(point: str) -> None:
    spec = os.environ.get("VISIONGATE_FAULT_AT", "")
    if not spec or os.environ.get("VISIONGATE_ENV", "development") not in ("development", "test"):
        return
    name, _, rest = spec.partition(":")
    marker, _, mode = rest.partition(":")
    if name != point or not marker:
        return
    Path(marker).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(marker + ".done"):  # a pause happens once
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    if mode == "pause":
        deadline = time.monotonic() + 60
        while os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        Path(marker + ".done").touch()
        return
    os.kill(os.getpid(), signal.SIGKILL)
