"""Small statistics helpers shared by the orchestrator and the report."""

from __future__ import annotations

import statistics
from typing import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    s = sorted(values)
    if not s:
        return None
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def spread(values: Iterable[float | None]) -> dict[str, float | None]:
    """Median and min–max over repetitions (None values are skipped)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def ratios(a: list[float | None], b: list[float | None]) -> list[float | None]:
    """Per-repetition ratios a[i]/b[i] (the runs are interleaved, so pairs share conditions)."""
    return [x / y if x is not None and y else None for x, y in zip(a, b)]
