"""The providers, one line each. Everything else is derived from this list: the API's routes and
status routes, the worker's adapters and queues, the simulator process, the CLI, the tests'
harness. Adding a provider = a package under ``providers/`` with a ``PLUGIN`` + one line here."""

from __future__ import annotations

from typing import Any

from providers.base import Operation
from providers.bria import PLUGIN as BRIA
from providers.caption import PLUGIN as CAPTION
from providers.google import PLUGIN as GOOGLE
from providers.openai import PLUGIN as OPENAI
from providers.plugin import Plugin, UpstreamDefaults
from providers.prompt import PLUGIN as PROMPT

PLUGINS: tuple[Plugin, ...] = (
    BRIA,
    OPENAI,
    PROMPT,
    CAPTION,
    GOOGLE,
)

BY_NAME: dict[str, Plugin] = {p.name: p for p in PLUGINS}
TABLES: dict[str, list[Operation]] = {p.name: list(p.operations) for p in PLUGINS}
OPERATIONS: dict[str, Operation] = {op.name: op for ops in TABLES.values() for op in ops}
def build_adapters(defaults: UpstreamDefaults) -> dict[str, Any]:
    """Every plug-in's adapter, each configured by its own settings (its documented variables;
    an empty base URL means the simulator) and the host's ``defaults``."""
    return {p.name: p.build(p.settings(), defaults) for p in PLUGINS if p.build is not None}


PROVIDERS: tuple[str, ...] = tuple(p.name for p in PLUGINS if p.operations)  # those with jobs (queues)
