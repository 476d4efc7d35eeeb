"""The providers, one line each. Everything else is derived from this list: the API's routes and
status routes, the worker's adapters and queues, the simulator process, the CLI, the tests'
harness. Adding a provider = a package under ``providers/`` with a ``PLUGIN`` + one line here."""

from __future__ import annotations

from providers.base import Operation
from providers.bria import PLUGIN as BRIA
from providers.plugin import Plugin

PLUGINS: tuple[Plugin, ...] = (
    BRIA,
)

BY_NAME: dict[str, Plugin] = {p.name: p for p in PLUGINS}
TABLES: dict[str, list[Operation]] = {p.name: list(p.operations) for p in PLUGINS}
OPERATIONS: dict[str, Operation] = {op.name: op for ops in TABLES.values() for op in ops}
PROVIDERS: tuple[str, ...] = tuple(BY_NAME)
