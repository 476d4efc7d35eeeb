"""Provider instances built from settings. The only place that knows which settings belong to
which provider: the default base URL is the simulator; setting a provider's base URL and key
points the same adapter at the real service."""

from __future__ import annotations

from core.settings import Settings
from providers.base import Provider
from providers.bria.provider import BriaProvider


def build_providers(settings: Settings) -> dict[str, Provider]:
    return {
        "bria": BriaProvider(
            base_url=settings.bria_url,
            api_token=settings.bria_api_token,
            timeout=settings.upstream_timeout_seconds,
            max_download_bytes=settings.max_download_bytes,
        ),
    }
