"""Plans: the grid of limits every tenant gets, and per-tenant overrides.

Defaults follow the seeds (Bria's own plan table): Free 10, Starter 60, Pro and Enterprise 1000
requests per minute **per endpoint**. Status reads have their own, larger budget so polling a
job never blocks submitting one. The grid is configuration (``VISIONGATE_PLANS``, a JSON object
merged over these defaults); a tenant's ``limits`` column overrides single values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class PlanLimits:
    rpm: int  # requests per minute, per endpoint (job submissions)
    status_rpm: int  # requests per minute for status and account reads (all together)
    concurrency: int  # jobs running upstream at once; more wait in line (FIFO)
    unmetered: bool  # no credit accounting
    initial_credits: int  # granted when a tenant is created on this plan

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_PLANS: dict[str, PlanLimits] = {
    "free": PlanLimits(rpm=10, status_rpm=300, concurrency=2, unmetered=False, initial_credits=100),
    "starter": PlanLimits(rpm=60, status_rpm=600, concurrency=10, unmetered=False, initial_credits=1_000),
    "pro": PlanLimits(rpm=1000, status_rpm=10_000, concurrency=50, unmetered=False, initial_credits=10_000),
    "enterprise": PlanLimits(rpm=1000, status_rpm=10_000, concurrency=200, unmetered=True, initial_credits=0),
}
OVERRIDABLE = frozenset(f.name for f in fields(PlanLimits)) - {"initial_credits"}


def plan_grid(configured: dict[str, dict[str, Any]] | None = None) -> dict[str, PlanLimits]:
    grid = dict(DEFAULT_PLANS)
    for name, values in (configured or {}).items():
        base = grid.get(name, DEFAULT_PLANS["free"])
        grid[name] = replace(base, **{k: v for k, v in values.items() if k in base.as_dict()})
    return grid


def limits_for(grid: dict[str, PlanLimits], plan: str, overrides: dict[str, Any] | None) -> PlanLimits:
    base = grid.get(plan) or grid["free"]
    if not overrides:
        return base
    return replace(base, **{k: v for k, v in overrides.items() if k in OVERRIDABLE})


def validate_overrides(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - OVERRIDABLE
    if unknown:
        raise ValueError(f"unknown limit(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(OVERRIDABLE))}")
    for key, value in values.items():
        if key == "unmetered":
            if not isinstance(value, bool):
                raise ValueError("unmetered must be true or false")
        elif not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} must be a whole number ≥ 0")
    return values
