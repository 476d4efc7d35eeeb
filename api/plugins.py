"""The routes provider plug-ins own (``Plugin.routers``): each is handed the host's ``RouteKit``
(the caller's dependencies, a database session, the error and success envelopes, upstream calls
and media checks as the API makes them) and the API mounts every router it builds."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from api.deps import EndpointLimited, ReadLimited, SessionDep
from api.envelope import success
from api.errors import ApiError, call_upstream
from api.strict import StrictRoute
from core import media_inputs
from core.settings import Settings
from providers.plugin import RouteKit
from providers.registry import PLUGINS


def route_kit(settings: Settings) -> RouteKit:
    return RouteKit(
        endpoint_principal=EndpointLimited, read_principal=ReadLimited, session=SessionDep,
        defaults=settings.upstream_defaults(), route_class=StrictRoute, error=ApiError, success=success,
        call_upstream=call_upstream,
        fetch_media=partial(media_inputs.fetch_checked, allow_hosts=tuple(settings.outbound_allow_hosts)),
        decode_media=media_inputs.decode_checked)


def mount(app: FastAPI, settings: Settings) -> None:
    """Every plugin's routers, in the registry's order."""
    kit = route_kit(settings)
    for plugin in PLUGINS:
        for router in plugin.routers(kit) if plugin.routers is not None else ():
            app.include_router(router)
