"""Provider adapters built from the registry: each plugin's own settings (its documented
variables; an empty base URL means the simulator) plus what the host's settings say for every
upstream (simulator address, timeout, download cap)."""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from providers.registry import PLUGINS, build_adapters


def build_providers(settings: Settings) -> dict[str, Any]:
    return build_adapters(settings.upstream_defaults())


def upstream_limits(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each provider's default throttle, overridden per provider by VISIONGATE_UPSTREAM_LIMITS."""
    limits = {p.name: dict(p.upstream_limits) for p in PLUGINS if p.upstream_limits}
    for name, values in settings.upstream_limits.items():
        limits[name] = {**limits.get(name, {}), **values}
    return limits


def upstreams(settings: Settings) -> dict[str, str]:
    """Where each provider's calls go (for the CLI's banner): its base URL or the simulator's."""
    defaults = settings.upstream_defaults()
    out = {}
    for p in PLUGINS:
        own = p.settings()
        if p.simulator is not None or hasattr(own, p.url_setting):  # not the helpers of others
            out[p.name] = p.base_url(getattr(own, p.url_setting, ""), defaults)
    return out


def uses_simulator() -> bool:
    """True when some provider has no base URL of its own (the simulator process is needed)."""
    return any(p.simulator is not None and not getattr(p.settings(), p.url_setting, "") for p in PLUGINS)
