"""What every tailored-generation route does, on the host's ``RouteKit``: ids from the path,
404 and 409 answers, calls to Bria, and reads that first bring a record up to date with Bria
(a model in training, a dataset being re-captioned)."""

from __future__ import annotations

from typing import Any, Callable

import anyio
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from providers.base import UpstreamError
from providers.bria.tailored import repository, service
from providers.bria.tailored.client import TRAINING_STATES, TailoredClient
from providers.bria.tailored.service import Refusal
from providers.bria.tailored.tables import LoraDataset, LoraImage, LoraModel, LoraProject, utcnow
from providers.plugin import RouteKit

RESPONSES = {401: {"description": "Missing or invalid API key"},
             404: {"description": "No such object of yours"},
             409: {"description": "The object's state does not allow this (see the message)"},
             429: {"description": "Rate limit reached (ours or Bria's; see Retry-After)"},
             502: {"description": "Bria failed"}, 504: {"description": "Bria did not answer in time"}}
PROJECTS, DATASETS, MODELS, TRAINING = ("LoRA Project Management", "LoRA Dataset Management",
                                        "LoRA Model Management", "LoRA Training")


def invalid(loc: tuple, kind: str, message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": loc, "msg": message, "input": value}])


def path_id(name: str, value: str) -> int:
    """004 types path ids as strings; ours are positive integers."""
    number = service.parse_id(value)
    if number is None:
        raise invalid(("path", name), "int_parsing", f"{name} must be a positive integer id, got {value!r}", value)
    return number


def same_id(name: str, path_value: int, body_value: int) -> None:
    """004 requires the id in the path and again in the body; they must agree."""
    if path_value != body_value:
        raise invalid(("body", name), "id_mismatch",
                      f"{name} in the body ({body_value}) differs from {name} in the path ({path_value}); "
                      "send the same id in both", body_value)


class Tailored:
    """The routes' helpers, bound to the host's kit."""

    def __init__(self, kit: RouteKit):
        self.kit = kit

    # ------------------------------------------------------------------ answers
    def ok(self, result: Any) -> Any:
        return self.kit.success(result)

    def not_found(self, kind: str, object_id: Any) -> Exception:
        return self.kit.error(404, f"{kind} {object_id} not found", code=f"{kind.split()[-1]}_not_found")

    def refuse(self, refusal: Refusal | None) -> None:
        """Answer 409 when a state rule refuses the change."""
        if refusal is not None:
            raise self.kit.error(409, refusal.message, code=refusal.code)

    # ------------------------------------------------------------------ Bria
    def client(self) -> TailoredClient:
        return service.client_for(self.kit.defaults)

    async def upstream(self, fn: Callable[..., Any], *args: Any, missing_ok: bool = False, **kw: Any) -> Any:
        """One Bria call off the event loop, its failures answered as the API answers them."""
        return await self.kit.call_upstream(fn, *args, who="Bria", missing_ok=missing_ok, **kw)

    # ------------------------------------------------------------------ the tenant's objects, or 404
    async def project(self, session: AsyncSession, tenant_id: str, project_id: int) -> LoraProject:
        project = await repository.get_project(session, tenant_id, project_id)
        if project is None:
            raise self.not_found("project", project_id)
        return project

    async def dataset(self, session: AsyncSession, tenant_id: str, dataset_id: int) -> LoraDataset:
        dataset = await repository.get_dataset(session, tenant_id, dataset_id)
        if dataset is None:
            raise self.not_found("dataset", dataset_id)
        return dataset

    async def model(self, session: AsyncSession, tenant_id: str, model_id: int) -> LoraModel:
        model = await repository.get_model(session, tenant_id, model_id)
        if model is None:
            raise self.not_found("model", model_id)
        return model

    async def image(self, session: AsyncSession, tenant_id: str, dataset_id: int, image_id: int) -> LoraImage:
        image = await repository.get_image(session, tenant_id, dataset_id, image_id)
        if image is None:
            raise self.not_found("image", image_id)
        return image

    async def dataset_docs(self, session: AsyncSession, datasets: list[LoraDataset]) -> list[dict[str, Any]]:
        counts = await repository.image_counts(session, [d.id for d in datasets])
        return [service.dataset_doc(d, counts.get(d.id, 0)) for d in datasets]

    # ------------------------------------------------------------------ brought up to date with Bria
    async def refreshed(self, session: AsyncSession, model: LoraModel) -> LoraModel:
        """A model in training, its status asked of Bria first."""
        if model.status in TRAINING_STATES and await service.refresh_model(model, self.client()):
            await session.commit()
        return model

    async def still_training(self, session: AsyncSession, tenant_id: str, **where: Any) -> list[LoraModel]:
        """The tenant's models that are (still, after a refresh from Bria) in training."""
        models = await repository.models_in_training(session, tenant_id, **where)
        for model in models:
            await service.refresh_model(model, self.client())
        return [m for m in models if m.status in TRAINING_STATES]

    async def sync_captions(self, session: AsyncSession, dataset: LoraDataset) -> None:
        """While Bria re-captions a dataset (captions_update_status in_progress), reads ask Bria how
        far it is and, once done, copy the new captions into our records."""
        if dataset.captions_update_status != "in_progress":
            return
        client = self.client()
        try:
            data = await anyio.to_thread.run_sync(client.get_dataset, dataset.upstream_id)
            if data.get("captions_update_status") == "in_progress":
                return
            images = await anyio.to_thread.run_sync(client.list_images, dataset.upstream_id)
        except UpstreamError as exc:
            service.log.warning("captions of dataset %s not refreshed: %s", dataset.id, exc.message)
            return
        service.apply_captions(await repository.images(session, dataset.id), images)
        service.apply_dataset_state(dataset, data)
        await session.commit()

    async def update_fields(self, session: AsyncSession, record: Any, body: Any, id_field: str,
                            mirror: Callable[[Any, dict[str, Any]], Any]) -> None:
        """PUT of a project or model: the fields the client set are sent to Bria first, then stored."""
        changes = {k: v for k, v in body.model_dump(mode="json", exclude={id_field}).items() if v is not None}
        if changes:
            await self.upstream(mirror, record.upstream_id, changes)
            for key, value in changes.items():
                setattr(record, key, value)
            record.updated_at = utcnow()
            await session.commit()
