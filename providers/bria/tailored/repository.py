"""Every SQL statement of tailored generation. Reads are scoped by tenant: an id of another
tenant's object names nothing. The caller commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from providers.bria.tailored.client import TRAINING_STATES
from providers.bria.tailored.tables import LoraDataset, LoraImage, LoraModel, LoraProject


def _storable(object_id: Any) -> bool:
    """Ids are 32-bit serials: a number outside that range names nothing (and would make
    PostgreSQL refuse the query)."""
    return isinstance(object_id, int) and not isinstance(object_id, bool) and 0 < object_id < 2**31


async def _get(session: AsyncSession, cls: Any, tenant_id: str, object_id: int | None) -> Any:
    if not _storable(object_id):
        return None
    return await session.scalar(select(cls).where(cls.id == object_id, cls.tenant_id == tenant_id))


# --------------------------------------------------------------------------- one object of the tenant
async def get_project(session: AsyncSession, tenant_id: str, project_id: int | None) -> LoraProject | None:
    return await _get(session, LoraProject, tenant_id, project_id)


async def get_dataset(session: AsyncSession, tenant_id: str, dataset_id: int | None) -> LoraDataset | None:
    return await _get(session, LoraDataset, tenant_id, dataset_id)


async def get_model(session: AsyncSession, tenant_id: str, model_id: int | None) -> LoraModel | None:
    return await _get(session, LoraModel, tenant_id, model_id)


async def get_image(session: AsyncSession, tenant_id: str, dataset_id: int, image_id: int) -> LoraImage | None:
    if not (_storable(dataset_id) and _storable(image_id)):
        return None
    return await session.scalar(select(LoraImage).where(
        LoraImage.id == image_id, LoraImage.dataset_id == dataset_id, LoraImage.tenant_id == tenant_id))


# --------------------------------------------------------------------------- lists, oldest first
async def projects(session: AsyncSession, tenant_id: str) -> list[LoraProject]:
    return list((await session.scalars(select(LoraProject).where(LoraProject.tenant_id == tenant_id)
                                       .order_by(LoraProject.id))).all())


async def datasets(session: AsyncSession, *, tenant_id: str | None = None,
                   project_id: int | None = None) -> list[LoraDataset]:
    """The tenant's datasets, or a project's (the project already checked to be the tenant's)."""
    query = select(LoraDataset)
    if tenant_id is not None:
        query = query.where(LoraDataset.tenant_id == tenant_id)
    if project_id is not None:
        query = query.where(LoraDataset.project_id == project_id)
    return list((await session.scalars(query.order_by(LoraDataset.id))).all())


async def models(session: AsyncSession, *, tenant_id: str | None = None,
                 project_id: int | None = None) -> list[LoraModel]:
    """The tenant's models, or a project's (the project already checked to be the tenant's)."""
    query = select(LoraModel)
    if tenant_id is not None:
        query = query.where(LoraModel.tenant_id == tenant_id)
    if project_id is not None:
        query = query.where(LoraModel.project_id == project_id)
    return list((await session.scalars(query.order_by(LoraModel.id))).all())


async def images(session: AsyncSession, dataset_id: int) -> list[LoraImage]:
    return list((await session.scalars(select(LoraImage).where(LoraImage.dataset_id == dataset_id)
                                       .order_by(LoraImage.id))).all())


async def image_counts(session: AsyncSession, dataset_ids: list[int]) -> dict[int, int]:
    if not dataset_ids:
        return {}
    rows = await session.execute(select(LoraImage.dataset_id, func.count()).where(
        LoraImage.dataset_id.in_(dataset_ids)).group_by(LoraImage.dataset_id))
    return {dataset_id: count for dataset_id, count in rows.all()}


async def image_count(session: AsyncSession, dataset_id: int) -> int:
    return (await image_counts(session, [dataset_id])).get(dataset_id, 0)


async def models_in_training(session: AsyncSession, tenant_id: str, *, project_id: int | None = None,
                             dataset_id: int | None = None) -> list[LoraModel]:
    """The tenant's models that our records show in training (of a project, or on a dataset)."""
    query = select(LoraModel).where(LoraModel.tenant_id == tenant_id, LoraModel.status.in_(TRAINING_STATES))
    if project_id is not None:
        query = query.where(LoraModel.project_id == project_id)
    if dataset_id is not None:
        query = query.where(LoraModel.dataset_id == dataset_id)
    return list((await session.scalars(query)).all())


async def training_on(session: AsyncSession, dataset_id: int) -> list[int]:
    """Ids of the models in training on a dataset."""
    return list((await session.scalars(select(LoraModel.id).where(
        LoraModel.dataset_id == dataset_id, LoraModel.status.in_(TRAINING_STATES)))).all())


# --------------------------------------------------------------------------- deleting
async def delete_project(session: AsyncSession, project: LoraProject) -> None:
    """The project with its datasets, their images and its models."""
    datasets_of = select(LoraDataset.id).where(LoraDataset.project_id == project.id)
    await session.execute(delete(LoraImage).where(LoraImage.dataset_id.in_(datasets_of)))
    await session.execute(delete(LoraModel).where(LoraModel.project_id == project.id))
    await session.execute(delete(LoraDataset).where(LoraDataset.project_id == project.id))
    await session.delete(project)


async def delete_dataset(session: AsyncSession, dataset: LoraDataset) -> None:
    """The dataset with its images; its models stay (usable), no longer naming it."""
    await session.execute(delete(LoraImage).where(LoraImage.dataset_id == dataset.id))
    await session.execute(update(LoraModel).where(LoraModel.dataset_id == dataset.id).values(dataset_id=None))
    await session.delete(dataset)
