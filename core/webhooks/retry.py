"""The retry policy: the schedule of attempts, and what a receiver's answer means (delivered,
gone, throttled, or try again later)."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from core.models import utcnow
from core.settings import Settings


def schedule(settings: Settings) -> list[float]:
    return [max(0.0, float(d)) for d in settings.webhook_retry_schedule] or [0.0]


def next_delay(plan: Sequence[float], attempts_done: int, *, retry_after: float | None = None,
               max_retry_after: float = 36000.0, jitter: float = 0.1,
               rng: random.Random | None = None) -> float | None:
    """Seconds from now to the next attempt after ``attempts_done`` attempts of this round, or
    None when the schedule is spent. ``plan[i]`` is the delay before attempt ``i + 1``; each
    gets up to ``jitter`` (10 %) extra. A receiver's Retry-After can only postpone (capped)."""
    if attempts_done >= len(plan):
        return None
    delay = plan[attempts_done] * (1 + (rng or random).uniform(0, jitter))
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return delay


_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Retry-After as seconds (``"120"`` or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    # Only ASCII numbers count: str.isdigit() and float() also accept "²", "٣" or "nan".
    if _SECONDS.fullmatch(value):
        return max(0.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or utcnow())).total_seconds())


@dataclass(frozen=True)
class Outcome:
    kind: str  # "success" | "retry" | "gone"
    retry_after: float | None = None


def classify(status_code: int | None, headers: Mapping[str, str] | None = None) -> Outcome:
    """What an attempt's answer means. 2xx: delivered. 410: the endpoint is gone (disable it).
    429/503 (and 502/504): throttled, honour Retry-After. Anything else, including 3xx and no
    answer at all: retry on the schedule."""
    if status_code is not None and 200 <= status_code < 300:
        return Outcome("success")
    if status_code == 410:
        return Outcome("gone")
    if status_code in (429, 502, 503, 504):
        return Outcome("retry", parse_retry_after((headers or {}).get("retry-after")))
    return Outcome("retry")
