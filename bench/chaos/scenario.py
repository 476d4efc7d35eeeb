"""What every fault scenario shares: its clients, its fault windows, and its figures at the end."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any, Iterator

from bench.chaos import summary
from bench.chaos.cluster import Cluster
from bench.chaos.traffic import Traffic
from bench.common import log


class Scenario:
    """One scenario's run: ``traffic`` submits and reads, ``fault()`` marks a fault window,
    ``finish()`` waits for the jobs to settle and returns the scenario's record."""

    def __init__(self, c: Cluster, name: str, title: str, fault: str, *, webhook_base: str | None = None):
        self.c, self.name, self.title, self.fault_text = c, name, title, fault
        self.tag = f"chaos {c.run_id} {name}"
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.windows: list[tuple[float, float]] = []
        self.notes: list[str] = []
        self.extra: dict[str, Any] = {}
        self.traffic = Traffic(f"http://127.0.0.1:{c.api_port}", c.api_key, self.tag,
                               webhook_base=webhook_base, read_rate=c.c.read_rate)
        c.scenario = self  # so that the run can stop this scenario's clients if it fails
        log(f"{title}: {fault}")

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.windows.append((start, time.monotonic()))

    def wall(self, t: float) -> float:
        """A monotonic time of this run on the wall clock (the database's timestamps)."""
        return self.wall0 + (t - self.t0)

    def wait_submitted(self) -> None:
        bound = self.c.c.settle
        if not self.traffic.wait_submitted(bound):
            self.notes.append(f"the load was still running {bound:.0f} s after it should have ended")

    def finish(self, extra_done: Any = None) -> dict[str, Any]:
        """Wait until every job is final (bounded), stop the clients, read the figures."""
        c = self.c
        self.wait_submitted()
        settled = c.settle(lambda: self.traffic.done_submitting, c.c.settle, extra_done)
        self.traffic.stop()
        if settled is None:
            log(f"  not settled within {c.c.settle:.0f} s")
        windows = self.windows or [(self.t0, self.t0)]
        rows = [r for r in c.job_rows() if (r["prompt"] or "").startswith(self.tag + " ")]
        figures = summary.figures(
            submits=self.traffic.submits, reads=self.traffic.reads, accepted_ids=self.traffic.accepted.values(),
            rows=rows, submissions=c.submissions(self.tag), windows=windows,
            settled_at=settled, t0=self.t0)
        figures.update(self.extra)
        events = [{"t": round(e["at"] - self.t0, 1), **{k: v for k, v in e.items() if k != "at"}} for e in c.events]
        exits = Counter(e["process"] for e in events if e["kind"] == "exit")
        record = {"title": self.title, "fault": self.fault_text, "figures": figures, "notes": self.notes,
                  "events": events[:40], "events_total": len(events),
                  "restarts": self.extra.get("restarts_text") or (", ".join(
                      f"{name} exited {n}×" for name, n in sorted(exits.items())) + ", relaunched by the harness"
                      if exits else "none"),
                  "samples": self.traffic.errors, "no_answer": self.traffic.failures,
                  "wall_s": round(time.monotonic() - self.t0, 1)}
        f = figures
        log(f"  accepted {f['accepted']}, completed {f['completed']}, errored {f['errored']}, stuck {f['stuck']}, "
            f"duplicates {f['dup_jobs']}, settle {f['settle_s']} s; submit answers during the fault "
            f"{summary.fmt_tally(f['submit_during_fault'])}")
        return record
