"""Timing rules of the job pipeline: how long a retry waits, when the next poll is due."""

from __future__ import annotations

import random


def backoff(attempt: int, base: float, cap: float, jitter: float = 0.2) -> float:
    """Exponential backoff for the ``attempt``-th retry (1-based), ±``jitter`` spread."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * (1 + random.uniform(-jitter, jitter))


def next_poll_delay(elapsed: float, base: float, cap: float) -> float:
    """Poll often at first, then about a tenth of the time already waited (never above cap).

    A job noticed late by at most ~10% of its own duration keeps upstream status traffic low
    for long video jobs without slowing short image jobs.
    """
    return min(cap, max(base, elapsed * 0.1))
