"""When to check a freshly submitted upstream task for the first time.

A fixed first check is wrong both ways: an image the upstream renders in 30 ms waits for it,
and a 60 s video is asked "done yet?" dozens of times before it can be (every one of those
requests counts against the provider's limits and a worker's time). So each worker process
learns, per provider operation, how long its tasks run *at least*:

* when a task is seen finished, the time of its last check that still found it running (0 if
  the first check already found it done) is a lower bound of its duration;
* the estimate follows those lower bounds, down fast (``DOWN``: a shorter task than expected
  must not make the next ones wait) and up slowly (``UP``: one long task among short ones
  barely moves it), so it sits near the *short* end of what the operation takes;
* no check of a task goes out before ``LEAD`` × the estimate (a little early, so a task
  shorter than the estimate is missed by little); after that the normal schedule applies
  (``core.jobs.timing.next_poll_delay``: about a tenth of the age), so a task is noticed within one poll
  interval of finishing, as without the estimate.

Each task counts once (when it finishes), so a long tail of slow tasks, polled many times,
does not drag the estimate up. An estimate whose lead is under ``INLINE_BELOW`` means "check
right away": the start task does the first check itself (no second message, no timer).

Before the first task of an operation finishes there is no estimate, and each new task gets an
early check of its own (``initial``, 0.1 s). Once a check has found a task of that operation
still running ``cold_after`` seconds (one poll interval) after its submit, and none has finished
yet, that early check is skipped: new tasks are first checked on the normal schedule (the
sweeper's batched checks, one poll interval after the submit). A burst of slow tasks then costs
no extra message per task while nothing is known; a fast operation is learned from its first
finish as before, and at worst tasks submitted before that are checked one interval later.
"""

from __future__ import annotations

import threading

UP = 0.2             # weight of an observation above the estimate
DOWN = 0.5           # weight of an observation below it
LEAD = 0.75          # first check at this fraction of the expected duration
INLINE_BELOW = 0.02  # seconds: below this the start task checks at once


class FirstCheck:
    def __init__(self, initial: float, ceiling: float, cold_after: float | None = None):
        """``initial``: the first delay of an operation not seen yet; ``ceiling``: the largest
        first delay ever used (a job waiting longer than this unchecked is never right);
        ``cold_after``: see the module's doc (None: never skip the early check)."""
        self.initial = max(0.0, initial)
        self.ceiling = max(self.initial, ceiling)
        self.cold_after = None if cold_after is None else max(self.initial, cold_after)
        self._estimates: dict[str, float] = {}  # operation → seconds (absent: ``initial``)
        self._slow_start: set[str] = set()  # no estimate yet, but tasks seen running a while
        self._lock = threading.Lock()

    def delay(self, operation: str) -> float:
        """Seconds after the submit for the first status check of an ``operation`` task."""
        with self._lock:
            estimate = self._estimates.get(operation)
            slow_start = operation in self._slow_start
        if estimate is None:
            return self.cold_after if slow_start and self.cold_after is not None else self.initial
        return min(self.ceiling, LEAD * estimate)

    def running(self, operation: str, age: float) -> None:
        """A check found a task of ``operation`` still running ``age`` seconds after its submit."""
        if self.cold_after is None or age < self.cold_after:
            return
        with self._lock:
            if operation not in self._estimates:
                self._slow_start.add(operation)

    def not_before(self, operation: str, age: float, scheduled: float) -> float:
        """The delay of the next check of a task ``age`` s old that the normal schedule would
        check in ``scheduled`` s: never before the first check is due."""
        return max(scheduled, self.delay(operation) - age)

    def observe(self, operation: str, running_for_at_least: float) -> None:
        """A task of ``operation`` finished; it was still running ``running_for_at_least``
        seconds after its submit (its last check that found it running; 0 if none did)."""
        value = max(0.0, running_for_at_least)
        with self._lock:
            old = self._estimates.get(operation, self.initial / LEAD if LEAD else self.initial)
            self._estimates[operation] = old + (UP if value > old else DOWN) * (value - old)
            self._slow_start.discard(operation)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._estimates)
