"""Bria: image generation and editing, video background removal, tailored generation (LoRA).

Everything Bria is lives in this package: the operation table (``operations``), the request
models generated from the reference (``schemas_gen``), the wire client and the adapter
(``client``, ``provider``), tailored generation (``tailored/``: its management routes, records and
rules), the settings and the simulator. ``PLUGIN`` is what ``providers/registry.py`` lists.
"""

from __future__ import annotations

from providers.bria.operations import OPERATIONS
from providers.bria.provider import BriaProvider
from providers.bria.settings import BriaSettings
from providers.bria.tailored.routes import build_routers
from providers.bria.tailored.tables import metadata
from providers.plugin import Dialect, Plugin, UpstreamDefaults


def build(settings: BriaSettings, defaults: UpstreamDefaults) -> BriaProvider:
    return BriaProvider(base_url=PLUGIN.base_url(settings.base_url, defaults), api_token=settings.api_token,
                        timeout=defaults.timeout_seconds, max_download_bytes=defaults.max_download_bytes)


def simulator():  # noqa: ANN201 - an ASGI app
    from providers.bria.simulator.app import create_app

    return create_app()


PLUGIN = Plugin(
    name="bria",
    operations=tuple(OPERATIONS),
    settings=BriaSettings,
    build=build,
    simulator=simulator,
    simulator_path="",  # Bria's simulator is the root app of the simulator process
    dialect=Dialect(status_route="/api/v1/bria/status/{task_id}", status_summary="Bria Get Status"),
    routers=build_routers,
    metadata=metadata,
    upstream_limits={"rpm": 1000, "concurrency": None},
    docs="docs/providers/bria.md",
)
