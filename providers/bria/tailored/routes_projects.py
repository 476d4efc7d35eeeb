"""Tailored generation: projects and datasets (``/api/v1/bria-lora/projects``, ``…/datasets``).

No ``from __future__ import annotations`` here: the routes' parameter types are the host's
dependency aliases, known only when ``router(t)`` runs, so they must be evaluated there."""

from typing import Any

from fastapi import APIRouter

from providers.bria import schemas as S
from providers.bria.tailored import repository, service
from providers.bria.tailored.client import upstream_id
from providers.bria.tailored.routes_common import DATASETS, PROJECTS, RESPONSES, Tailored, path_id, same_id
from providers.bria.tailored.service import PREFIX as P
from providers.bria.tailored.tables import LoraDataset, LoraProject, utcnow


def router(t: Tailored) -> APIRouter:
    Endpoint, Read, Session = t.kit.endpoint_principal, t.kit.read_principal, t.kit.session
    r = APIRouter(route_class=t.kit.route_class, responses=RESPONSES)

    # ======================================================================= projects
    @r.get(f"{P}/projects", tags=[PROJECTS], summary="Get All Projects")
    async def list_projects(principal: Read, session: Session) -> Any:
        return t.ok([service.project_doc(p) for p in await repository.projects(session, principal.tenant_id)])

    @r.post(f"{P}/projects", tags=[PROJECTS], summary="Create Project")
    async def create_project(body: S.BriaLoraCreateProjectRequest, principal: Endpoint, session: Session) -> Any:
        fields = body.model_dump(mode="json")
        data = await t.upstream(t.client().create_project, fields)
        project = LoraProject(tenant_id=principal.tenant_id, upstream_id=upstream_id(data, "project_id"),
                              status=str(data.get("status") or "active"), **fields)
        session.add(project)
        await session.commit()
        return t.ok(service.project_doc(project))

    @r.get(f"{P}/projects/{{project_id}}", tags=[PROJECTS], summary="Get Project")
    async def get_project(project_id: str, principal: Read, session: Session) -> Any:
        return t.ok(service.project_doc(await t.project(session, principal.tenant_id,
                                                        path_id("project_id", project_id))))

    @r.put(f"{P}/projects/{{project_id}}", tags=[PROJECTS], summary="Update Project")
    async def update_project(project_id: str, body: S.BriaLoraUpdateProjectRequest, principal: Endpoint,
                             session: Session) -> Any:
        pid = path_id("project_id", project_id)
        same_id("project_id", pid, body.project_id)
        project = await t.project(session, principal.tenant_id, pid)
        await t.update_fields(session, project, body, "project_id", t.client().update_project)
        return t.ok(service.project_doc(project))

    @r.delete(f"{P}/projects/{{project_id}}", tags=[PROJECTS], summary="Delete Project")
    async def delete_project(project_id: str, principal: Endpoint, session: Session) -> Any:
        project = await t.project(session, principal.tenant_id, path_id("project_id", project_id))
        training = await t.still_training(session, principal.tenant_id, project_id=project.id)
        t.refuse(service.project_delete_refusal(project, training))
        await t.upstream(t.client().delete_project, project.upstream_id, missing_ok=True)
        await repository.delete_project(session, project)
        await session.commit()
        return t.ok({"id": project.id, "deleted": True})

    # ======================================================================= datasets
    @r.get(f"{P}/datasets", tags=[DATASETS], summary="Get All Datasets")
    async def list_datasets(principal: Read, session: Session) -> Any:
        return t.ok(await t.dataset_docs(session, await repository.datasets(session, tenant_id=principal.tenant_id)))

    @r.post(f"{P}/datasets", tags=[DATASETS], summary="Create Dataset")
    async def create_dataset(body: S.BriaLoraCreateDatasetRequest, principal: Endpoint, session: Session) -> Any:
        project = await t.project(session, principal.tenant_id, body.project_id)
        data = await t.upstream(t.client().create_dataset, project.upstream_id, body.name)
        dataset = LoraDataset(tenant_id=principal.tenant_id, project_id=project.id,
                              upstream_id=upstream_id(data, "dataset_id"), name=body.name, status="draft",
                              captions_update_status=data.get("captions_update_status"))
        service.apply_dataset_state(dataset, data)
        session.add(dataset)
        await session.commit()
        return t.ok(service.dataset_doc(dataset, 0))

    @r.get(f"{P}/datasets/{{dataset_id}}", tags=[DATASETS], summary="Get Dataset")
    async def get_dataset(dataset_id: str, principal: Read, session: Session) -> Any:
        dataset = await t.dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
        await t.sync_captions(session, dataset)
        return t.ok(service.dataset_doc(dataset, await repository.image_count(session, dataset.id)))

    @r.put(f"{P}/datasets/{{dataset_id}}", tags=[DATASETS], summary="Update Dataset")
    async def update_dataset(dataset_id: str, body: S.BriaLoraUpdateDatasetRequest, principal: Endpoint,
                             session: Session) -> Any:
        did = path_id("dataset_id", dataset_id)
        same_id("dataset_id", did, body.dataset_id)
        dataset = await t.dataset(session, principal.tenant_id, did)
        changes = {k: v for k, v in body.model_dump(mode="json", exclude={"dataset_id"}).items() if v is not None}
        count = await repository.image_count(session, dataset.id)
        t.refuse(service.dataset_update_refusal(dataset, changes, count, await repository.training_on(session, dataset.id)))
        if changes:
            data = await t.upstream(t.client().update_dataset, dataset.upstream_id, changes)
            for key in ("name", "caption_prefix", "status"):
                if key in changes:
                    setattr(dataset, key, changes[key])
            service.apply_dataset_state(dataset, data or {})
            dataset.updated_at = utcnow()
            await session.commit()
        return t.ok(service.dataset_doc(dataset, count))

    @r.delete(f"{P}/datasets/{{dataset_id}}", tags=[DATASETS], summary="Delete Dataset")
    async def delete_dataset(dataset_id: str, principal: Endpoint, session: Session) -> Any:
        dataset = await t.dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
        training = await t.still_training(session, principal.tenant_id, dataset_id=dataset.id)
        t.refuse(service.dataset_delete_refusal(dataset, training))
        await t.upstream(t.client().delete_dataset, dataset.upstream_id, missing_ok=True)
        await repository.delete_dataset(session, dataset)
        await session.commit()
        return t.ok({"id": dataset.id, "deleted": True})

    @r.get(f"{P}/projects/{{project_id}}/datasets", tags=[DATASETS], summary="Get Project Datasets")
    async def project_datasets(project_id: str, principal: Read, session: Session,
                               include_models: bool = False, include_models_ids: bool = False) -> Any:
        project = await t.project(session, principal.tenant_id, path_id("project_id", project_id))
        docs = await t.dataset_docs(session, await repository.datasets(session, project_id=project.id))
        if include_models or include_models_ids:
            models = await repository.models(session, project_id=project.id)
            for doc in docs:
                mine = [m for m in models if m.dataset_id == doc["id"]]
                if include_models:
                    doc["models"] = [service.model_doc(m) for m in mine]
                if include_models_ids:
                    doc["model_ids"] = [m.id for m in mine]
        return t.ok(docs)

    return r
