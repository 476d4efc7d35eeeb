"""One simulator process for every registered provider: each plugin's simulator (an ASGI app
speaking that provider's real protocol) is mounted at its ``simulator_path``; the plugin whose
path is empty is the root app, so its paths stay as the real service has them."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from providers.registry import PLUGINS


def create_app() -> Any:
    mounted = [p for p in PLUGINS if p.simulator is not None]
    named = [Mount(p.simulator_path, app=p.simulator()) for p in mounted if p.simulator_path]
    root = [p for p in mounted if not p.simulator_path]
    if len(root) > 1:
        raise RuntimeError(f"only one provider's simulator can be the root app: {[p.name for p in root]}")
    routes = named + ([Mount("", app=root[0].simulator())] if root else [])
    return Starlette(routes=routes)


def paths() -> dict[str, str]:
    """Each simulated provider's base path in the simulator process (for harnesses and docs)."""
    return {p.name: p.simulator_path for p in PLUGINS if p.simulator is not None}
