"""Tailored generation (LoRA) management: the 25 CRUD endpoints under /api/v1/bria-lora/ (the two
generation endpoints are jobs, routed from the operation table).

Each call is mirrored to Bria's tailored-generation API (providers/bria/lora.py, sources there)
and recorded per tenant (core/lora.py): a tenant sees and changes only its own projects,
datasets, images and models; another tenant's id is 404. Ids are the gateway's integers. Where
004 repeats an id in the path (a string) and in the body (an integer), both must name the same
object: a difference is a 422 naming the body field.

Answers: ``{"status": "success", "result": …}``; 404/409/429/502/504 in the error envelope;
invalid input 422 in FastAPI's ``{"detail": [...]}`` shape. State rules (Bria's, checked here
first so the message is clear): a completed dataset takes no new images, caption edits or image
deletions; a dataset is completed only with at least 5 images (at most 200); training starts only
on a model in state Created whose dataset is completed; a model in training cannot be deleted, nor
its dataset or project; only a training model can be stopped.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Callable
from urllib.parse import urlsplit

import base64

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import EndpointLimited, ReadLimited, SessionDep, SettingsDep
from api.errors import ApiError, call_upstream
from core import lora
from core.models import LoraDataset, LoraImage, LoraModel, LoraProject, utcnow
from providers.base import InvalidRequest, UpstreamError
from providers.bria import schemas as S
from api.strict import StrictRoute
from providers.bria.lora import (MAX_DATASET_IMAGES, MIN_IMAGES_TO_COMPLETE, TRAINED, TRAINING_STATES,
                                 TailoredClient, upstream_id)

P = "/api/v1/bria-lora"
PROJECTS, DATASETS, MODELS, TRAINING = ("LoRA Project Management", "LoRA Dataset Management",
                                        "LoRA Model Management", "LoRA Training")
RESPONSES = {401: {"description": "Missing or invalid API key"},
             404: {"description": "No such object of yours"},
             409: {"description": "The object's state does not allow this (see the message)"},
             429: {"description": "Rate limit reached (ours or Bria's; see Retry-After)"},
             502: {"description": "Bria failed"}, 504: {"description": "Bria did not answer in time"}}

router = APIRouter(route_class=StrictRoute, responses=RESPONSES)


# --------------------------------------------------------------------------- helpers
def ok(result: Any) -> dict[str, Any]:
    return {"status": "success", "result": result}


def invalid(loc: tuple, kind: str, message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": loc, "msg": message, "input": value}])


def path_id(name: str, value: str) -> int:
    """004 types path ids as strings; ours are positive integers."""
    number = lora.parse_id(value)
    if number is None:
        raise invalid(("path", name), "int_parsing", f"{name} must be a positive integer id, got {value!r}", value)
    return number


def same_id(name: str, path_value: int, body_value: int) -> None:
    """004 requires the id in the path and again in the body; they must agree."""
    if path_value != body_value:
        raise invalid(("body", name), "id_mismatch",
                      f"{name} in the body ({body_value}) differs from {name} in the path ({path_value}); "
                      "send the same id in both", body_value)


def not_found(kind: str, object_id: Any) -> ApiError:
    return ApiError(404, f"{kind} {object_id} not found", code=f"{kind.split()[-1]}_not_found")


def conflict(code: str, message: str) -> ApiError:
    return ApiError(409, message, code=code)


def client(request: Request) -> TailoredClient:
    return lora.client_for(request.app.state.settings)


async def upstream(fn: Callable[..., Any], *args: Any, missing_ok: bool = False, **kw: Any) -> Any:
    """One Bria call off the event loop, its failures mapped by ``api.errors.upstream_error``."""
    return await call_upstream(fn, *args, who="Bria", missing_ok=missing_ok, **kw)


async def _update(session: AsyncSession, record: Any, body: Any, id_field: str,
                  mirror: Callable[[Any, dict[str, Any]], Any]) -> None:
    """PUT of a project or model: the fields the client set are sent to Bria first, then stored."""
    changes = {k: v for k, v in body.model_dump(mode="json", exclude={id_field}).items() if v is not None}
    if changes:
        await upstream(mirror, record.upstream_id, changes)
        for key, value in changes.items():
            setattr(record, key, value)
        record.updated_at = utcnow()
        await session.commit()


async def _project(session: AsyncSession, tenant_id: str, project_id: int) -> LoraProject:
    project = await lora.get_project(session, tenant_id, project_id)
    if project is None:
        raise not_found("project", project_id)
    return project


async def _dataset(session: AsyncSession, tenant_id: str, dataset_id: int) -> LoraDataset:
    dataset = await lora.get_dataset(session, tenant_id, dataset_id)
    if dataset is None:
        raise not_found("dataset", dataset_id)
    return dataset


async def _model(session: AsyncSession, tenant_id: str, model_id: int) -> LoraModel:
    model = await lora.get_model(session, tenant_id, model_id)
    if model is None:
        raise not_found("model", model_id)
    return model


async def _image(session: AsyncSession, tenant_id: str, dataset_id: int, image_id: int) -> LoraImage:
    image = await lora.get_image(session, tenant_id, dataset_id, image_id)
    if image is None:
        raise not_found("image", image_id)
    return image


async def _dataset_docs(session: AsyncSession, datasets: list[LoraDataset]) -> list[dict[str, Any]]:
    counts = await lora.image_counts(session, [d.id for d in datasets])
    return [lora.dataset_doc(d, counts.get(d.id, 0)) for d in datasets]


async def _count_images(session: AsyncSession, dataset_id: int) -> int:
    return (await lora.image_counts(session, [dataset_id])).get(dataset_id, 0)


async def _training_models(session: AsyncSession, tenant_id: str, request: Request, **where: Any) -> list[LoraModel]:
    """The tenant's models that are (still, after a refresh from Bria) in training."""
    query = select(LoraModel).where(LoraModel.tenant_id == tenant_id, LoraModel.status.in_(TRAINING_STATES))
    for column, value in where.items():
        query = query.where(getattr(LoraModel, column) == value)
    models = list((await session.scalars(query)).all())
    for model in models:
        await lora.refresh_model(session, model, client(request))
    return [m for m in models if m.status in TRAINING_STATES]


def _apply_dataset(dataset: LoraDataset, data: dict[str, Any]) -> None:
    if data.get("status") in ("draft", "completed"):
        dataset.status = data["status"]
    if data.get("captions_update_status") in ("empty", "in_progress", "completed"):
        dataset.captions_update_status = data["captions_update_status"]


async def _sync_captions(session: AsyncSession, dataset: LoraDataset, request: Request) -> None:
    """While Bria re-captions a dataset (captions_update_status in_progress), reads ask Bria how
    far it is and, once done, copy the new captions into our records."""
    if dataset.captions_update_status != "in_progress":
        return
    try:
        data = await run_in_threadpool(client(request).get_dataset, dataset.upstream_id)
        if data.get("captions_update_status") == "in_progress":
            return
        images = await run_in_threadpool(client(request).list_images, dataset.upstream_id)
    except UpstreamError as exc:
        request.app.state.log.warning("captions of dataset %s not refreshed: %s", dataset.id, exc.message)
        return
    by_upstream = {str(item.get("id")): item for item in images}
    rows = (await session.scalars(select(LoraImage).where(LoraImage.dataset_id == dataset.id))).all()
    for row in rows:
        item = by_upstream.get(row.upstream_id)
        if item is not None and "caption" in item:
            row.caption = item.get("caption")
            row.caption_source = item.get("caption_source") or "automatic"
    _apply_dataset(dataset, data)
    await session.commit()


# =========================================================================== projects
@router.get(f"{P}/projects", tags=[PROJECTS], summary="Get All Projects")
async def list_projects(principal: ReadLimited, session: SessionDep) -> Any:
    rows = (await session.scalars(select(LoraProject).where(LoraProject.tenant_id == principal.tenant_id)
                                  .order_by(LoraProject.id))).all()
    return ok([lora.project_doc(p) for p in rows])


@router.post(f"{P}/projects", tags=[PROJECTS], summary="Create Project")
async def create_project(body: S.BriaLoraCreateProjectRequest, principal: EndpointLimited, session: SessionDep,
                         request: Request) -> Any:
    fields = body.model_dump(mode="json")
    data = await upstream(client(request).create_project, fields)
    project = LoraProject(tenant_id=principal.tenant_id, upstream_id=upstream_id(data, "project_id"),
                          status=str(data.get("status") or "active"), **fields)
    session.add(project)
    await session.commit()
    return ok(lora.project_doc(project))


@router.get(f"{P}/projects/{{project_id}}", tags=[PROJECTS], summary="Get Project")
async def get_project(project_id: str, principal: ReadLimited, session: SessionDep) -> Any:
    return ok(lora.project_doc(await _project(session, principal.tenant_id, path_id("project_id", project_id))))


@router.put(f"{P}/projects/{{project_id}}", tags=[PROJECTS], summary="Update Project")
async def update_project(project_id: str, body: S.BriaLoraUpdateProjectRequest, principal: EndpointLimited,
                         session: SessionDep, request: Request) -> Any:
    pid = path_id("project_id", project_id)
    same_id("project_id", pid, body.project_id)
    project = await _project(session, principal.tenant_id, pid)
    await _update(session, project, body, "project_id", client(request).update_project)
    return ok(lora.project_doc(project))


@router.delete(f"{P}/projects/{{project_id}}", tags=[PROJECTS], summary="Delete Project")
async def delete_project(project_id: str, principal: EndpointLimited, session: SessionDep, request: Request) -> Any:
    project = await _project(session, principal.tenant_id, path_id("project_id", project_id))
    training = await _training_models(session, principal.tenant_id, request, project_id=project.id)
    if training:
        raise conflict("training_in_progress", f"project {project.id} has models in training "
                       f"({', '.join(str(m.id) for m in training)}); stop their training first")
    await upstream(client(request).delete_project, project.upstream_id, missing_ok=True)
    datasets = select(LoraDataset.id).where(LoraDataset.project_id == project.id)
    await session.execute(delete(LoraImage).where(LoraImage.dataset_id.in_(datasets)))
    await session.execute(delete(LoraModel).where(LoraModel.project_id == project.id))
    await session.execute(delete(LoraDataset).where(LoraDataset.project_id == project.id))
    await session.delete(project)
    await session.commit()
    return ok({"id": project.id, "deleted": True})


# =========================================================================== datasets
@router.get(f"{P}/datasets", tags=[DATASETS], summary="Get All Datasets")
async def list_datasets(principal: ReadLimited, session: SessionDep) -> Any:
    rows = list((await session.scalars(select(LoraDataset).where(LoraDataset.tenant_id == principal.tenant_id)
                                       .order_by(LoraDataset.id))).all())
    return ok(await _dataset_docs(session, rows))


@router.post(f"{P}/datasets", tags=[DATASETS], summary="Create Dataset")
async def create_dataset(body: S.BriaLoraCreateDatasetRequest, principal: EndpointLimited, session: SessionDep,
                         request: Request) -> Any:
    project = await _project(session, principal.tenant_id, body.project_id)
    data = await upstream(client(request).create_dataset, project.upstream_id, body.name)
    dataset = LoraDataset(tenant_id=principal.tenant_id, project_id=project.id,
                          upstream_id=upstream_id(data, "dataset_id"), name=body.name, status="draft",
                          captions_update_status=data.get("captions_update_status"))
    _apply_dataset(dataset, data)
    session.add(dataset)
    await session.commit()
    return ok(lora.dataset_doc(dataset, 0))


@router.get(f"{P}/datasets/{{dataset_id}}", tags=[DATASETS], summary="Get Dataset")
async def get_dataset(dataset_id: str, principal: ReadLimited, session: SessionDep, request: Request) -> Any:
    dataset = await _dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
    await _sync_captions(session, dataset, request)
    return ok(lora.dataset_doc(dataset, await _count_images(session, dataset.id)))


@router.put(f"{P}/datasets/{{dataset_id}}", tags=[DATASETS], summary="Update Dataset")
async def update_dataset(dataset_id: str, body: S.BriaLoraUpdateDatasetRequest, principal: EndpointLimited,
                         session: SessionDep, request: Request) -> Any:
    did = path_id("dataset_id", dataset_id)
    same_id("dataset_id", did, body.dataset_id)
    dataset = await _dataset(session, principal.tenant_id, did)
    changes = {k: v for k, v in body.model_dump(mode="json", exclude={"dataset_id"}).items() if v is not None}
    count = await _count_images(session, dataset.id)
    if changes.get("status") == "completed" and dataset.status != "completed" and count < MIN_IMAGES_TO_COMPLETE:
        raise conflict("dataset_too_small", f"dataset {dataset.id} has {count} image(s); Bria needs at least "
                       f"{MIN_IMAGES_TO_COMPLETE} to mark a dataset completed")
    if changes.get("status") == "draft" and dataset.status == "completed":
        in_use = (await session.scalars(select(LoraModel.id).where(
            LoraModel.dataset_id == dataset.id, LoraModel.status.in_(TRAINING_STATES)))).all()
        if in_use:
            raise conflict("training_in_progress", f"dataset {dataset.id} is being trained on by model(s) "
                           f"{', '.join(map(str, in_use))}; it cannot go back to draft now")
    if changes:
        data = await upstream(client(request).update_dataset, dataset.upstream_id, changes)
        for key in ("name", "caption_prefix", "status"):
            if key in changes:
                setattr(dataset, key, changes[key])
        _apply_dataset(dataset, data or {})
        dataset.updated_at = utcnow()
        await session.commit()
    return ok(lora.dataset_doc(dataset, count))


@router.delete(f"{P}/datasets/{{dataset_id}}", tags=[DATASETS], summary="Delete Dataset")
async def delete_dataset(dataset_id: str, principal: EndpointLimited, session: SessionDep, request: Request) -> Any:
    dataset = await _dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
    training = await _training_models(session, principal.tenant_id, request, dataset_id=dataset.id)
    if training:
        raise conflict("training_in_progress", f"dataset {dataset.id} is used by model(s) in training "
                       f"({', '.join(str(m.id) for m in training)}); stop their training first")
    await upstream(client(request).delete_dataset, dataset.upstream_id, missing_ok=True)
    await session.execute(delete(LoraImage).where(LoraImage.dataset_id == dataset.id))
    await session.execute(update(LoraModel).where(LoraModel.dataset_id == dataset.id).values(dataset_id=None))
    await session.delete(dataset)
    await session.commit()
    return ok({"id": dataset.id, "deleted": True})


@router.get(f"{P}/projects/{{project_id}}/datasets", tags=[DATASETS], summary="Get Project Datasets")
async def project_datasets(project_id: str, principal: ReadLimited, session: SessionDep,
                           include_models: bool = False, include_models_ids: bool = False) -> Any:
    project = await _project(session, principal.tenant_id, path_id("project_id", project_id))
    rows = list((await session.scalars(select(LoraDataset).where(LoraDataset.project_id == project.id)
                                       .order_by(LoraDataset.id))).all())
    docs = await _dataset_docs(session, rows)
    if include_models or include_models_ids:
        models = (await session.scalars(select(LoraModel).where(LoraModel.project_id == project.id)
                                        .order_by(LoraModel.id))).all()
        for doc in docs:
            mine = [m for m in models if m.dataset_id == doc["id"]]
            if include_models:
                doc["models"] = [lora.model_doc(m) for m in mine]
            if include_models_ids:
                doc["model_ids"] = [m.id for m in mine]
    return ok(docs)


# =========================================================================== dataset images
class MultipartAsJsonRoute(APIRoute):
    """The upload route also takes ``multipart/form-data`` (the image in the field ``file``): the
    form is turned into the JSON body the route reads (``image_file`` = the file as base64), so
    every way in goes through the same validation. The documented request stays 004's JSON."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Any:
            if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
                request = await _form_as_json(request)
            return await handler(request)

        return route


async def _form_as_json(request: Request) -> Request:
    from starlette.datastructures import UploadFile

    form = await request.form(max_files=1, max_fields=10)
    payload: dict[str, Any] = {}
    upload = form.get("file")
    if isinstance(upload, UploadFile):
        data = await upload.read(lora.IMAGE_MAX_BYTES + 1)
        payload["image_file"] = base64.b64encode(data).decode("ascii")
        payload["image_name"] = upload.filename or None
    elif upload is not None:
        payload["image_file"] = upload  # a text field: base64 sent as a form value
    for key in ("image_url", "image_name", "file_path"):
        if isinstance(form.get(key), str) and form[key]:
            payload[key] = form[key]
    given = form.get("dataset_id")
    payload["dataset_id"] = (int(given) if isinstance(given, str) and lora.is_ascii_digits(given.strip()) else
                             given if given is not None else request.path_params.get("dataset_id"))
    if isinstance(payload["dataset_id"], str) and lora.is_ascii_digits(payload["dataset_id"]):
        payload["dataset_id"] = int(payload["dataset_id"])
    body = json.dumps(payload).encode()
    scope = dict(request.scope)
    scope["headers"] = [(k, v) for k, v in request.scope["headers"]
                        if k not in (b"content-type", b"content-length")] + [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


async def upload_image(dataset_id: str, body: S.BriaLoraUploadImageRequest, principal: EndpointLimited,
                       session: SessionDep, settings: SettingsDep, request: Request) -> Any:
    """Add an image to a dataset: by `image_url` (fetched SSRF-safely), by `image_file` (base64,
    with or without a `data:` prefix; a visiongate extension read from the same JSON body), or as
    a `multipart/form-data` upload (the image in the field `file`; `dataset_id` and `image_name`
    as form fields, `dataset_id` defaulting to the path's). The image must be a JPEG, PNG or WEBP
    of at least 256x256 and at most 12 MB. `file_path` (a file on the gateway's disk) is refused."""
    did = path_id("dataset_id", dataset_id)
    same_id("dataset_id", did, body.dataset_id)
    dataset = await _dataset(session, principal.tenant_id, did)
    if dataset.status == "completed":
        raise conflict("dataset_completed", f"dataset {dataset.id} is completed and takes no new images; "
                       "set its status to draft first")
    count = await _count_images(session, dataset.id)
    if count >= MAX_DATASET_IMAGES:
        raise conflict("dataset_full", f"dataset {dataset.id} already holds {count} images, Bria's maximum")
    raw = await request.json()  # cached: the body the model was read from
    image_file = raw.get("image_file") if isinstance(raw, dict) else None
    if body.image_url is not None:
        url: str | None = str(body.image_url)
        try:
            data, info = await run_in_threadpool(lora.fetch_training_image, url,
                                                 tuple(settings.outbound_allow_hosts))
        except InvalidRequest as exc:
            raise RequestValidationError(exc.errors) from None
    elif image_file is not None:
        url = None
        try:
            data, info = await run_in_threadpool(lora.decode_training_image, image_file)
        except InvalidRequest as exc:
            raise RequestValidationError(exc.errors) from None
    else:
        raise RequestValidationError([{
            "type": "image_required", "loc": ("body", "image_url"), "input": None,
            "msg": "an image is required: image_url (an http(s) URL), image_file (base64) or a "
                   "multipart/form-data upload with the image in the field `file`"}])
    name = body.image_name or (posixpath.basename(urlsplit(url).path) if url else None) or None
    answer = await upstream(client(request).upload_image, dataset.upstream_id,
                            base64.b64encode(data).decode("ascii"), name)
    image = LoraImage(tenant_id=principal.tenant_id, dataset_id=dataset.id, upstream_id=upstream_id(answer),
                      image_name=name, source_url=url, caption=answer.get("caption"),
                      caption_source=answer.get("caption_source") or ("automatic" if answer.get("caption") else None),
                      format=info.format, width=info.width, height=info.height, size_bytes=info.size)
    session.add(image)
    dataset.updated_at = utcnow()
    await session.commit()
    return ok(lora.image_doc(image))


router.add_api_route(f"{P}/datasets/{{dataset_id}}/images", upload_image, methods=["POST"], tags=[DATASETS],
                     summary="Upload Image", route_class_override=MultipartAsJsonRoute)


@router.get(f"{P}/datasets/{{dataset_id}}/images", tags=[DATASETS], summary="Get Dataset Images")
async def list_images(dataset_id: str, principal: ReadLimited, session: SessionDep, request: Request) -> Any:
    dataset = await _dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
    await _sync_captions(session, dataset, request)
    rows = (await session.scalars(select(LoraImage).where(LoraImage.dataset_id == dataset.id)
                                  .order_by(LoraImage.id))).all()
    return ok([lora.image_doc(i) for i in rows])


@router.get(f"{P}/datasets/{{dataset_id}}/images/{{image_id}}", tags=[DATASETS], summary="Get Dataset Image")
async def get_image(dataset_id: str, image_id: int, principal: ReadLimited, session: SessionDep,
                    request: Request) -> Any:
    dataset = await _dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
    await _sync_captions(session, dataset, request)
    return ok(lora.image_doc(await _image(session, principal.tenant_id, dataset.id, image_id)))


@router.delete(f"{P}/datasets/{{dataset_id}}/images/{{image_id}}", tags=[DATASETS], summary="Delete Image")
async def delete_image(dataset_id: str, image_id: int, principal: EndpointLimited, session: SessionDep,
                       request: Request) -> Any:
    dataset = await _dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
    image = await _image(session, principal.tenant_id, dataset.id, image_id)
    if dataset.status == "completed":
        raise conflict("dataset_completed", f"dataset {dataset.id} is completed: its images cannot be deleted")
    await upstream(client(request).delete_image, dataset.upstream_id, image.upstream_id, missing_ok=True)
    await session.delete(image)
    await session.commit()
    return ok({"id": image.id, "dataset_id": dataset.id, "deleted": True})


@router.put(f"{P}/datasets/{{dataset_id}}/images/{{image_id}}/caption", tags=[DATASETS],
            summary="Update Image Caption")
async def update_caption(dataset_id: str, image_id: int, body: S.BriaLoraUpdateImageCaptionRequest,
                         principal: EndpointLimited, session: SessionDep, request: Request) -> Any:
    did = path_id("dataset_id", dataset_id)
    same_id("dataset_id", did, body.dataset_id)
    same_id("image_id", image_id, body.image_id)
    dataset = await _dataset(session, principal.tenant_id, did)
    image = await _image(session, principal.tenant_id, dataset.id, image_id)
    if dataset.status == "completed":
        raise conflict("dataset_completed", f"dataset {dataset.id} is completed: its captions cannot change")
    answer = await upstream(client(request).update_caption, dataset.upstream_id, image.upstream_id,
                            caption=body.caption, regenerate=body.regenerate_caption)
    image.caption = answer.get("caption", body.caption)
    image.caption_source = answer.get("caption_source") or ("automatic" if body.regenerate_caption else "manual")
    image.updated_at = utcnow()
    await session.commit()
    return ok(lora.image_doc(image))


@router.put(f"{P}/datasets/{{dataset_id}}/images/captions", tags=[DATASETS], summary="Regenerate All Captions")
async def regenerate_captions(dataset_id: str, principal: EndpointLimited, session: SessionDep,
                              request: Request) -> Any:
    dataset = await _dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
    if dataset.status == "completed":
        raise conflict("dataset_completed", f"dataset {dataset.id} is completed: its captions cannot change")
    answer = await upstream(client(request).regenerate_captions, dataset.upstream_id)
    dataset.captions_update_status = "in_progress"
    _apply_dataset(dataset, answer or {})
    dataset.updated_at = utcnow()
    await session.commit()
    await _sync_captions(session, dataset, request)  # Bria may already be done
    return ok(lora.dataset_doc(dataset, await _count_images(session, dataset.id)))


# =========================================================================== models
async def _refreshed(session: AsyncSession, model: LoraModel, request: Request) -> LoraModel:
    if model.status in TRAINING_STATES and await lora.refresh_model(session, model, client(request)):
        await session.commit()
    return model


@router.get(f"{P}/models", tags=[MODELS], summary="Get All Models")
async def list_models(principal: ReadLimited, session: SessionDep, request: Request) -> Any:
    rows = (await session.scalars(select(LoraModel).where(LoraModel.tenant_id == principal.tenant_id)
                                  .order_by(LoraModel.id))).all()
    for model in rows:
        await _refreshed(session, model, request)
    return ok([lora.model_doc(m) for m in rows])


@router.post(f"{P}/models", tags=[MODELS], summary="Create Model")
async def create_model(body: S.BriaLoraCreateModelRequest, principal: EndpointLimited, session: SessionDep,
                       request: Request) -> Any:
    dataset = await _dataset(session, principal.tenant_id, body.dataset_id)
    data = await upstream(client(request).create_model, name=body.name, dataset_id=dataset.upstream_id,
                          training_version=body.training_version, description=body.description)
    model = LoraModel(tenant_id=principal.tenant_id, project_id=dataset.project_id, dataset_id=dataset.id,
                      upstream_id=upstream_id(data, "model_id"), name=body.name, description=body.description,
                      training_version=body.training_version, status="Created")
    lora.apply_model_state(model, data, "Created")
    session.add(model)
    await session.commit()
    return ok(lora.model_doc(model))


@router.get(f"{P}/models/{{model_id}}", tags=[MODELS], summary="Get Model")
async def get_model(model_id: str, principal: ReadLimited, session: SessionDep, request: Request) -> Any:
    model = await _model(session, principal.tenant_id, path_id("model_id", model_id))
    return ok(lora.model_doc(await _refreshed(session, model, request)))


@router.put(f"{P}/models/{{model_id}}", tags=[MODELS], summary="Update Model")
async def update_model(model_id: str, body: S.BriaLoraUpdateModelRequest, principal: EndpointLimited,
                       session: SessionDep, request: Request) -> Any:
    mid = path_id("model_id", model_id)
    same_id("model_id", mid, body.model_id)
    model = await _model(session, principal.tenant_id, mid)
    await _update(session, model, body, "model_id", client(request).update_model)
    return ok(lora.model_doc(model))


@router.delete(f"{P}/models/{{model_id}}", tags=[MODELS], summary="Delete Model")
async def delete_model(model_id: str, principal: EndpointLimited, session: SessionDep, request: Request) -> Any:
    model = await _refreshed(session, await _model(session, principal.tenant_id, path_id("model_id", model_id)),
                             request)
    if model.status in TRAINING_STATES:
        raise conflict("training_in_progress", f"model {model.id} is in training (status {model.status}); "
                       f"stop it first (POST {P}/models/{model.id}/training/stop)")
    await upstream(client(request).delete_model, model.upstream_id, missing_ok=True)
    await session.delete(model)
    await session.commit()
    return ok({"id": model.id, "deleted": True})


@router.get(f"{P}/projects/{{project_id}}/models", tags=[MODELS], summary="Get Project Models")
async def project_models(project_id: str, principal: ReadLimited, session: SessionDep, request: Request) -> Any:
    project = await _project(session, principal.tenant_id, path_id("project_id", project_id))
    rows = (await session.scalars(select(LoraModel).where(LoraModel.project_id == project.id)
                                  .order_by(LoraModel.id))).all()
    for model in rows:
        await _refreshed(session, model, request)
    return ok([lora.model_doc(m) for m in rows])


# =========================================================================== training
@router.post(f"{P}/models/{{model_id}}/training/start", tags=[TRAINING], summary="Start Training")
async def start_training(model_id: str, principal: EndpointLimited, session: SessionDep, request: Request) -> Any:
    model = await _refreshed(session, await _model(session, principal.tenant_id, path_id("model_id", model_id)),
                             request)
    if model.status in TRAINING_STATES:
        raise conflict("training_in_progress", f"model {model.id} is already in training (status {model.status})")
    if model.status != "Created":
        what = "is already trained" if model.status == TRAINED else f"ended its training ({model.status})"
        raise conflict("training_not_restartable", f"model {model.id} {what}; Bria cannot train a model twice: "
                       f"create a new model (POST {P}/models) to train again")
    dataset = await lora.get_dataset(session, principal.tenant_id, model.dataset_id)
    if dataset is None:
        raise conflict("dataset_missing", f"model {model.id}'s dataset was deleted; create a new model")
    count = await _count_images(session, dataset.id)
    if dataset.status != "completed":
        raise conflict("dataset_not_completed", f"dataset {dataset.id} is '{dataset.status}': mark it completed "
                       f"(PUT {P}/datasets/{dataset.id} with status 'completed', at least "
                       f"{MIN_IMAGES_TO_COMPLETE} images) before training")
    if count < MIN_IMAGES_TO_COMPLETE:
        raise conflict("dataset_too_small", f"dataset {dataset.id} has {count} image(s); training needs at least "
                       f"{MIN_IMAGES_TO_COMPLETE}")
    data = await upstream(client(request).start_training, model.upstream_id)
    lora.apply_model_state(model, data, "InProgress")
    model.training_started_at = model.training_started_at or utcnow()
    await session.commit()
    return ok(lora.model_doc(model))


@router.post(f"{P}/models/{{model_id}}/training/stop", tags=[TRAINING], summary="Stop Training")
async def stop_training(model_id: str, principal: EndpointLimited, session: SessionDep, request: Request) -> Any:
    model = await _refreshed(session, await _model(session, principal.tenant_id, path_id("model_id", model_id)),
                             request)
    if model.status != "InProgress":
        raise conflict("not_training", f"model {model.id} is not in training (status {model.status})")
    data = await upstream(client(request).stop_training, model.upstream_id)
    lora.apply_model_state(model, data, "Stopping")
    if model.status == "InProgress":  # Bria answered 200 without a new status: the stop is under way
        model.status = "Stopping"
    await session.commit()
    return ok(lora.model_doc(model))
