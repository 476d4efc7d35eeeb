"""Every provider's operation table, in one index (the API builds routes from it, the worker
dispatches through it). Adding a provider = one import and one line here."""

from __future__ import annotations

from providers.base import Operation
from providers.bria.operations import OPERATIONS as BRIA

TABLES: dict[str, list[Operation]] = {
    "bria": BRIA,
}

OPERATIONS: dict[str, Operation] = {op.name: op for ops in TABLES.values() for op in ops}
PROVIDERS: tuple[str, ...] = tuple(TABLES)
