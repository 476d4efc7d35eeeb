"""Tailored generation: a dataset's images, models, and their training
(``/api/v1/bria-lora/datasets/{id}/images…``, ``…/models…``).

No ``from __future__ import annotations`` here: the routes' parameter types are the host's
dependency aliases, known only when ``router(t)`` runs, so they must be evaluated there."""

import base64
import json
import posixpath
from typing import Any, Callable
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile

from providers.base import InvalidRequest
from providers.bria import schemas as S
from providers.bria.tailored import repository, service
from providers.bria.tailored.client import upstream_id
from providers.bria.tailored.routes_common import DATASETS, MODELS, RESPONSES, TRAINING, Tailored, path_id, same_id
from providers.bria.tailored.service import PREFIX as P
from providers.bria.tailored.tables import LoraImage, LoraModel, utcnow


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
    form = await request.form(max_files=1, max_fields=10)
    payload: dict[str, Any] = {}
    upload = form.get("file")
    if isinstance(upload, UploadFile):
        data = await upload.read(service.IMAGE_MAX_BYTES + 1)
        payload["image_file"] = base64.b64encode(data).decode("ascii")
        payload["image_name"] = upload.filename or None
    elif upload is not None:
        payload["image_file"] = upload  # a text field: base64 sent as a form value
    for key in ("image_url", "image_name", "file_path"):
        if isinstance(form.get(key), str) and form[key]:
            payload[key] = form[key]
    given = form.get("dataset_id")
    payload["dataset_id"] = (int(given) if isinstance(given, str) and service.is_ascii_digits(given.strip()) else
                             given if given is not None else request.path_params.get("dataset_id"))
    if isinstance(payload["dataset_id"], str) and service.is_ascii_digits(payload["dataset_id"]):
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


def router(t: Tailored) -> APIRouter:
    Endpoint, Read, Session = t.kit.endpoint_principal, t.kit.read_principal, t.kit.session
    r = APIRouter(route_class=t.kit.route_class, responses=RESPONSES)

    # ======================================================================= dataset images
    async def upload_image(dataset_id: str, body: S.BriaLoraUploadImageRequest, principal: Endpoint,
                           session: Session, request: Request) -> Any:
        """Add an image to a dataset: by `image_url` (fetched SSRF-safely), by `image_file` (base64,
        with or without a `data:` prefix; a visiongate extension read from the same JSON body), or as
        a `multipart/form-data` upload (the image in the field `file`; `dataset_id` and `image_name`
        as form fields, `dataset_id` defaulting to the path's). The image must be a JPEG, PNG or WEBP
        of at least 256x256 and at most 12 MB. `file_path` (a file on the gateway's disk) is refused."""
        did = path_id("dataset_id", dataset_id)
        same_id("dataset_id", did, body.dataset_id)
        dataset = await t.dataset(session, principal.tenant_id, did)
        t.refuse(service.image_upload_refusal(dataset, await repository.image_count(session, dataset.id)))
        raw = await request.json()  # cached: the body the model was read from
        image_file = raw.get("image_file") if isinstance(raw, dict) else None
        try:
            if body.image_url is not None:
                url: str | None = str(body.image_url)
                data, info = await anyio.to_thread.run_sync(t.kit.fetch_media, url, service.TRAINING_IMAGE_URL)
            elif image_file is not None:
                url = None
                data, info = await anyio.to_thread.run_sync(t.kit.decode_media, image_file,
                                                            service.TRAINING_IMAGE_FILE)
            else:
                raise RequestValidationError([{
                    "type": "image_required", "loc": ("body", "image_url"), "input": None,
                    "msg": "an image is required: image_url (an http(s) URL), image_file (base64) or a "
                           "multipart/form-data upload with the image in the field `file`"}])
        except InvalidRequest as exc:
            raise RequestValidationError(exc.errors) from None
        name = body.image_name or (posixpath.basename(urlsplit(url).path) if url else None) or None
        answer = await t.upstream(t.client().upload_image, dataset.upstream_id,
                                  base64.b64encode(data).decode("ascii"), name)
        image = LoraImage(tenant_id=principal.tenant_id, dataset_id=dataset.id, upstream_id=upstream_id(answer),
                          image_name=name, source_url=url, caption=answer.get("caption"),
                          caption_source=answer.get("caption_source") or ("automatic" if answer.get("caption")
                                                                          else None),
                          format=info.format, width=info.width, height=info.height, size_bytes=info.size)
        session.add(image)
        dataset.updated_at = utcnow()
        await session.commit()
        return t.ok(service.image_doc(image))

    r.add_api_route(f"{P}/datasets/{{dataset_id}}/images", upload_image, methods=["POST"], tags=[DATASETS],
                    summary="Upload Image", route_class_override=MultipartAsJsonRoute)

    @r.get(f"{P}/datasets/{{dataset_id}}/images", tags=[DATASETS], summary="Get Dataset Images")
    async def list_images(dataset_id: str, principal: Read, session: Session) -> Any:
        dataset = await t.dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
        await t.sync_captions(session, dataset)
        return t.ok([service.image_doc(i) for i in await repository.images(session, dataset.id)])

    @r.get(f"{P}/datasets/{{dataset_id}}/images/{{image_id}}", tags=[DATASETS], summary="Get Dataset Image")
    async def get_image(dataset_id: str, image_id: int, principal: Read, session: Session) -> Any:
        dataset = await t.dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
        await t.sync_captions(session, dataset)
        return t.ok(service.image_doc(await t.image(session, principal.tenant_id, dataset.id, image_id)))

    @r.delete(f"{P}/datasets/{{dataset_id}}/images/{{image_id}}", tags=[DATASETS], summary="Delete Image")
    async def delete_image(dataset_id: str, image_id: int, principal: Endpoint, session: Session) -> Any:
        dataset = await t.dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
        image = await t.image(session, principal.tenant_id, dataset.id, image_id)
        t.refuse(service.completed_dataset_refusal(dataset, "its images cannot be deleted"))
        await t.upstream(t.client().delete_image, dataset.upstream_id, image.upstream_id, missing_ok=True)
        await session.delete(image)
        await session.commit()
        return t.ok({"id": image.id, "dataset_id": dataset.id, "deleted": True})

    @r.put(f"{P}/datasets/{{dataset_id}}/images/{{image_id}}/caption", tags=[DATASETS],
           summary="Update Image Caption")
    async def update_caption(dataset_id: str, image_id: int, body: S.BriaLoraUpdateImageCaptionRequest,
                             principal: Endpoint, session: Session) -> Any:
        did = path_id("dataset_id", dataset_id)
        same_id("dataset_id", did, body.dataset_id)
        same_id("image_id", image_id, body.image_id)
        dataset = await t.dataset(session, principal.tenant_id, did)
        image = await t.image(session, principal.tenant_id, dataset.id, image_id)
        t.refuse(service.completed_dataset_refusal(dataset, "its captions cannot change"))
        answer = await t.upstream(t.client().update_caption, dataset.upstream_id, image.upstream_id,
                                  caption=body.caption, regenerate=body.regenerate_caption)
        image.caption = answer.get("caption", body.caption)
        image.caption_source = answer.get("caption_source") or ("automatic" if body.regenerate_caption else "manual")
        image.updated_at = utcnow()
        await session.commit()
        return t.ok(service.image_doc(image))

    @r.put(f"{P}/datasets/{{dataset_id}}/images/captions", tags=[DATASETS], summary="Regenerate All Captions")
    async def regenerate_captions(dataset_id: str, principal: Endpoint, session: Session) -> Any:
        dataset = await t.dataset(session, principal.tenant_id, path_id("dataset_id", dataset_id))
        t.refuse(service.completed_dataset_refusal(dataset, "its captions cannot change"))
        answer = await t.upstream(t.client().regenerate_captions, dataset.upstream_id)
        dataset.captions_update_status = "in_progress"
        service.apply_dataset_state(dataset, answer or {})
        dataset.updated_at = utcnow()
        await session.commit()
        await t.sync_captions(session, dataset)  # Bria may already be done
        return t.ok(service.dataset_doc(dataset, await repository.image_count(session, dataset.id)))

    # ======================================================================= models
    @r.get(f"{P}/models", tags=[MODELS], summary="Get All Models")
    async def list_models(principal: Read, session: Session) -> Any:
        rows = await repository.models(session, tenant_id=principal.tenant_id)
        for model in rows:
            await t.refreshed(session, model)
        return t.ok([service.model_doc(m) for m in rows])

    @r.post(f"{P}/models", tags=[MODELS], summary="Create Model")
    async def create_model(body: S.BriaLoraCreateModelRequest, principal: Endpoint, session: Session) -> Any:
        dataset = await t.dataset(session, principal.tenant_id, body.dataset_id)
        data = await t.upstream(t.client().create_model, name=body.name, dataset_id=dataset.upstream_id,
                                training_version=body.training_version, description=body.description)
        model = LoraModel(tenant_id=principal.tenant_id, project_id=dataset.project_id, dataset_id=dataset.id,
                          upstream_id=upstream_id(data, "model_id"), name=body.name, description=body.description,
                          training_version=body.training_version, status="Created")
        service.apply_model_state(model, data, "Created")
        session.add(model)
        await session.commit()
        return t.ok(service.model_doc(model))

    @r.get(f"{P}/models/{{model_id}}", tags=[MODELS], summary="Get Model")
    async def get_model(model_id: str, principal: Read, session: Session) -> Any:
        model = await t.model(session, principal.tenant_id, path_id("model_id", model_id))
        return t.ok(service.model_doc(await t.refreshed(session, model)))

    @r.put(f"{P}/models/{{model_id}}", tags=[MODELS], summary="Update Model")
    async def update_model(model_id: str, body: S.BriaLoraUpdateModelRequest, principal: Endpoint,
                           session: Session) -> Any:
        mid = path_id("model_id", model_id)
        same_id("model_id", mid, body.model_id)
        model = await t.model(session, principal.tenant_id, mid)
        await t.update_fields(session, model, body, "model_id", t.client().update_model)
        return t.ok(service.model_doc(model))

    @r.delete(f"{P}/models/{{model_id}}", tags=[MODELS], summary="Delete Model")
    async def delete_model(model_id: str, principal: Endpoint, session: Session) -> Any:
        model = await t.refreshed(session, await t.model(session, principal.tenant_id, path_id("model_id", model_id)))
        t.refuse(service.model_delete_refusal(model))
        await t.upstream(t.client().delete_model, model.upstream_id, missing_ok=True)
        await session.delete(model)
        await session.commit()
        return t.ok({"id": model.id, "deleted": True})

    @r.get(f"{P}/projects/{{project_id}}/models", tags=[MODELS], summary="Get Project Models")
    async def project_models(project_id: str, principal: Read, session: Session) -> Any:
        project = await t.project(session, principal.tenant_id, path_id("project_id", project_id))
        rows = await repository.models(session, project_id=project.id)
        for model in rows:
            await t.refreshed(session, model)
        return t.ok([service.model_doc(m) for m in rows])

    # ======================================================================= training
    @r.post(f"{P}/models/{{model_id}}/training/start", tags=[TRAINING], summary="Start Training")
    async def start_training(model_id: str, principal: Endpoint, session: Session) -> Any:
        model = await t.refreshed(session, await t.model(session, principal.tenant_id, path_id("model_id", model_id)))
        dataset = await repository.get_dataset(session, principal.tenant_id, model.dataset_id)
        count = await repository.image_count(session, dataset.id) if dataset is not None else 0
        t.refuse(service.training_start_refusal(model, dataset, count))
        data = await t.upstream(t.client().start_training, model.upstream_id)
        service.apply_model_state(model, data, "InProgress")
        model.training_started_at = model.training_started_at or utcnow()
        await session.commit()
        return t.ok(service.model_doc(model))

    @r.post(f"{P}/models/{{model_id}}/training/stop", tags=[TRAINING], summary="Stop Training")
    async def stop_training(model_id: str, principal: Endpoint, session: Session) -> Any:
        model = await t.refreshed(session, await t.model(session, principal.tenant_id, path_id("model_id", model_id)))
        t.refuse(service.training_stop_refusal(model))
        data = await t.upstream(t.client().stop_training, model.upstream_id)
        service.apply_model_state(model, data, "Stopping")
        if model.status == "InProgress":  # Bria answered 200 without a new status: the stop is under way
            model.status = "Stopping"
        await session.commit()
        return t.ok(service.model_doc(model))

    return r
