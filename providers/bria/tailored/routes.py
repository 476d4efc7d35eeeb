"""Tailored generation (LoRA) management: the 25 CRUD endpoints under /api/v1/bria-lora/ (the two
generation endpoints are jobs, routed from Bria's operation table).

Each call is mirrored to Bria's tailored-generation API (client.py, sources there) and recorded
per tenant (tables.py): a tenant sees and changes only its own projects, datasets, images and
models; another tenant's id is 404. Ids are the gateway's integers. Where 004 repeats an id in
the path (a string) and in the body (an integer), both must name the same object: a difference
is a 422 naming the body field.

Answers: the API's success envelope; 404/409/429/502/504 in its error envelope; invalid input
422 in FastAPI's ``{"detail": [...]}`` shape. The state rules are service.py's. The routes are
built with what the host hands over (``RouteKit``): Bria's ``PLUGIN`` declares
``routers=build_routers`` and the API mounts them.
"""

from __future__ import annotations

from fastapi import APIRouter

from providers.bria.tailored import routes_projects, routes_training
from providers.bria.tailored.routes_common import Tailored
from providers.plugin import RouteKit


def build_routers(kit: RouteKit) -> list[APIRouter]:
    """Projects and datasets, then images, models and training (the reference's order)."""
    tailored = Tailored(kit)
    return [routes_projects.router(tailored), routes_training.router(tailored)]
