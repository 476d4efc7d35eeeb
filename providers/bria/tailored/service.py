"""Tailored generation's rules: client ids, the documents clients read, Bria's model states, the
state rules of datasets, models and training, and the intake step that turns a tenant's model
id into Bria's.

One Bria key serves every tenant, so Bria cannot tell tenants apart: the gateway does. Each
object a tenant creates is recorded (tables.py) with the tenant, the integer id the client sees
and the upstream id it mirrors (client.py makes the upstream calls). A generation request names
a model by the client's id; ``resolver`` checks that the model is this tenant's and trained, and
stores Bria's id in the job's params (``TAILORED_MODEL_KEY``), which is the only id the worker
ever sends upstream.

State rules (Bria's, checked here first so the message is clear): a completed dataset takes no
new images, caption edits or image deletions; a dataset is completed only with at least 5 images
(at most 200); training starts only on a model in state Created whose dataset is completed; a
model in training cannot be deleted, nor its dataset or project; only a training model can be
stopped. Each rule is a function answering a ``Refusal`` (the API's 409) or None.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from typing import Any, Iterable

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from providers.base import InvalidRequest, MediaInput, UpstreamError
from providers.bria.settings import BriaSettings
from providers.bria.tailored import repository
from providers.bria.tailored.client import (MAX_DATASET_IMAGES, MIN_IMAGE_SIDE, MIN_IMAGES_TO_COMPLETE, MODEL_STATES,
                                            TAILORED_MODEL_KEY, TRAINED, TRAINING_STATES, TRAINING_VERSION_KEY,
                                            TailoredClient)
from providers.bria.tailored.tables import LoraDataset, LoraImage, LoraModel, LoraProject, utcnow
from providers.plugin import UpstreamDefaults

log = logging.getLogger("visiongate.lora")

PREFIX = "/api/v1/bria-lora"  # the routes' common path
IMAGE_MAX_BYTES = 12 * 1024 * 1024  # Bria's image limit elsewhere in the reference (12 MB)


def _min_side(width: int, height: int, _params: dict[str, Any]) -> str | None:
    if min(width, height) < MIN_IMAGE_SIDE:
        return (f"the image is {width}x{height}; Bria needs at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} "
                f"(1024x1024 recommended; smaller ones are upscaled)")
    return None


# A training image, by URL (``image_url``) or as base64 (``image_file``, a visiongate extension).
TRAINING_IMAGE_URL = MediaInput("image_url", kind="image", max_bytes=IMAGE_MAX_BYTES,
                                formats=("JPEG", "PNG", "WEBP"), check=_min_side)
TRAINING_IMAGE_FILE = dataclasses.replace(TRAINING_IMAGE_URL, field="image_file")


# --------------------------------------------------------------------------- upstream client
@functools.lru_cache(maxsize=4)
def _client(base_url: str, token: str, timeout: float) -> TailoredClient:
    return TailoredClient(base_url, token, timeout)


def client_for(defaults: UpstreamDefaults) -> TailoredClient:
    """The client for Bria's settings (``BRIA_BASE_URL``, ``BRIA_API_TOKEN``; no base URL: the
    simulator), one per configuration."""
    bria = BriaSettings()
    return _client((bria.base_url or defaults.simulator_url).rstrip("/"), bria.api_token, defaults.timeout_seconds)


# --------------------------------------------------------------------------- ids
def is_ascii_digits(text: str) -> bool:
    """``"12"`` yes; ``"²"`` or ``"١٢"`` no (``str.isdigit`` says yes to them, ``int`` does not
    take ``"²"``, and an id written in other scripts is not an id a client was given)."""
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()


def parse_id(value: Any) -> int | None:
    """A client's id (integer, or a string of digits) → int; None when it cannot be one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and is_ascii_digits(value.strip()):
        number = int(value.strip())
        return number if 0 < number < 2**31 else None
    return None


# --------------------------------------------------------------------------- documents
def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def project_doc(p: LoraProject) -> dict[str, Any]:
    return {"id": p.id, "project_name": p.project_name, "project_description": p.project_description,
            "ip_name": p.ip_name, "ip_description": p.ip_description, "ip_medium": p.ip_medium,
            "ip_type": p.ip_type, "status": p.status, "created_at": iso(p.created_at),
            "updated_at": iso(p.updated_at)}


def dataset_doc(d: LoraDataset, images_count: int) -> dict[str, Any]:
    return {"id": d.id, "project_id": d.project_id, "name": d.name, "caption_prefix": d.caption_prefix,
            "status": d.status, "captions_update_status": d.captions_update_status,
            "images_count": images_count, "created_at": iso(d.created_at), "updated_at": iso(d.updated_at)}


def image_doc(i: LoraImage) -> dict[str, Any]:
    return {"id": i.id, "dataset_id": i.dataset_id, "image_name": i.image_name, "caption": i.caption,
            "caption_source": i.caption_source, "source_url": i.source_url, "format": i.format,
            "width": i.width, "height": i.height, "size_bytes": i.size_bytes,
            "created_at": iso(i.created_at), "updated_at": iso(i.updated_at)}


def model_doc(m: LoraModel) -> dict[str, Any]:
    return {"id": m.id, "project_id": m.project_id, "dataset_id": m.dataset_id, "name": m.name,
            "description": m.description, "training_version": m.training_version, "status": m.status,
            "trained": m.status == TRAINED, "error": m.error,
            "training_started_at": iso(m.training_started_at), "training_finished_at": iso(m.training_finished_at),
            "status_checked_at": iso(m.status_checked_at), "created_at": iso(m.created_at),
            "updated_at": iso(m.updated_at)}


# --------------------------------------------------------------------------- Bria's answers → records
_STATES = {state.lower(): state for state in MODEL_STATES}
_STATES.update({"in_progress": "InProgress", "training": "InProgress", "stopping": "Stopping"})


def normalise_status(value: Any, default: str) -> str:
    """Bria's model status in its documented spelling (answers in other cases are accepted)."""
    if not isinstance(value, str) or not value.strip():
        return default
    return _STATES.get(value.strip().lower().replace(" ", ""), _STATES.get(value.strip().lower(), value.strip()))


def apply_model_state(model: LoraModel, data: dict[str, Any], default: str | None = None) -> None:
    status = normalise_status(data.get("status"), default or model.status)
    now = utcnow()
    if status in TRAINING_STATES and model.training_started_at is None:
        model.training_started_at = now
    if status in (TRAINED, "Failed", "Stopped") and model.training_finished_at is None:
        model.training_finished_at = now
    if status == "Failed":
        error = data.get("error")
        model.error = (error.get("message") if isinstance(error, dict) else error) or model.error or \
            "Bria reports the training failed"
    model.status = status
    model.status_checked_at = now


def apply_dataset_state(dataset: LoraDataset, data: dict[str, Any]) -> None:
    if data.get("status") in ("draft", "completed"):
        dataset.status = data["status"]
    if data.get("captions_update_status") in ("empty", "in_progress", "completed"):
        dataset.captions_update_status = data["captions_update_status"]


def apply_captions(rows: Iterable[LoraImage], images: list[dict[str, Any]]) -> None:
    """Bria's captions (its image list) copied into our image records."""
    by_upstream = {str(item.get("id")): item for item in images}
    for row in rows:
        item = by_upstream.get(row.upstream_id)
        if item is not None and "caption" in item:
            row.caption = item.get("caption")
            row.caption_source = item.get("caption_source") or "automatic"


async def refresh_model(model: LoraModel, client: TailoredClient) -> bool:
    """Ask Bria for the model's training status; False (record unchanged) when Bria cannot be
    reached, so reads still answer with the last known state."""
    try:
        data = await anyio.to_thread.run_sync(client.get_model, model.upstream_id)
    except UpstreamError as exc:
        log.warning("training status of model %s (upstream %s) not refreshed: %s", model.id, model.upstream_id,
                    exc.message)
        return False
    apply_model_state(model, data)
    return True


# --------------------------------------------------------------------------- state rules
@dataclasses.dataclass(frozen=True)
class Refusal:
    """A change the object's state does not allow (the API answers 409 with ``code``)."""

    code: str
    message: str


def _ids(models: Iterable[Any]) -> str:
    return ", ".join(str(getattr(m, "id", m)) for m in models)


def project_delete_refusal(project: LoraProject, training: list[LoraModel]) -> Refusal | None:
    if training:
        return Refusal("training_in_progress", f"project {project.id} has models in training ({_ids(training)}); "
                       "stop their training first")
    return None


def dataset_update_refusal(dataset: LoraDataset, changes: dict[str, Any], count: int,
                           training: list[int]) -> Refusal | None:
    """``changes`` to a dataset with ``count`` images, ``training`` the models in training on it."""
    if changes.get("status") == "completed" and dataset.status != "completed" and count < MIN_IMAGES_TO_COMPLETE:
        return Refusal("dataset_too_small", f"dataset {dataset.id} has {count} image(s); Bria needs at least "
                       f"{MIN_IMAGES_TO_COMPLETE} to mark a dataset completed")
    if changes.get("status") == "draft" and dataset.status == "completed" and training:
        return Refusal("training_in_progress", f"dataset {dataset.id} is being trained on by model(s) "
                       f"{_ids(training)}; it cannot go back to draft now")
    return None


def dataset_delete_refusal(dataset: LoraDataset, training: list[LoraModel]) -> Refusal | None:
    if training:
        return Refusal("training_in_progress", f"dataset {dataset.id} is used by model(s) in training "
                       f"({_ids(training)}); stop their training first")
    return None


def image_upload_refusal(dataset: LoraDataset, count: int) -> Refusal | None:
    if dataset.status == "completed":
        return Refusal("dataset_completed", f"dataset {dataset.id} is completed and takes no new images; "
                       "set its status to draft first")
    if count >= MAX_DATASET_IMAGES:
        return Refusal("dataset_full", f"dataset {dataset.id} already holds {count} images, Bria's maximum")
    return None


def completed_dataset_refusal(dataset: LoraDataset, what: str) -> Refusal | None:
    """A completed dataset's images and captions stay as they are (``what``: "its images cannot
    be deleted", "its captions cannot change")."""
    if dataset.status == "completed":
        return Refusal("dataset_completed", f"dataset {dataset.id} is completed: {what}")
    return None


def model_delete_refusal(model: LoraModel) -> Refusal | None:
    if model.status in TRAINING_STATES:
        return Refusal("training_in_progress", f"model {model.id} is in training (status {model.status}); "
                       f"stop it first (POST {PREFIX}/models/{model.id}/training/stop)")
    return None


def training_start_refusal(model: LoraModel, dataset: LoraDataset | None, count: int) -> Refusal | None:
    """Training starts once per model (state Created), on a completed dataset of enough images."""
    if model.status in TRAINING_STATES:
        return Refusal("training_in_progress", f"model {model.id} is already in training (status {model.status})")
    if model.status != "Created":
        what = "is already trained" if model.status == TRAINED else f"ended its training ({model.status})"
        return Refusal("training_not_restartable", f"model {model.id} {what}; Bria cannot train a model twice: "
                       f"create a new model (POST {PREFIX}/models) to train again")
    if dataset is None:
        return Refusal("dataset_missing", f"model {model.id}'s dataset was deleted; create a new model")
    if dataset.status != "completed":
        return Refusal("dataset_not_completed", f"dataset {dataset.id} is '{dataset.status}': mark it completed "
                       f"(PUT {PREFIX}/datasets/{dataset.id} with status 'completed', at least "
                       f"{MIN_IMAGES_TO_COMPLETE} images) before training")
    if count < MIN_IMAGES_TO_COMPLETE:
        return Refusal("dataset_too_small", f"dataset {dataset.id} has {count} image(s); training needs at least "
                       f"{MIN_IMAGES_TO_COMPLETE}")
    return None


def training_stop_refusal(model: LoraModel) -> Refusal | None:
    if model.status != "InProgress":
        return Refusal("not_training", f"model {model.id} is not in training (status {model.status})")
    return None


# --------------------------------------------------------------------------- generation intake
def _invalid(loc: str, kind: str, message: str, value: Any) -> InvalidRequest:
    return InvalidRequest([{"type": kind, "loc": ("body", loc), "msg": message, "input": value}])


async def find_trained_model(session: AsyncSession, tenant_id: str, field: str, value: Any,
                             client: TailoredClient | None) -> LoraModel:
    """The tenant's model named by ``value`` that has finished training; a model still in
    training is refreshed from Bria first. Raises ``InvalidRequest`` (loc ``field``)."""
    model = await repository.get_model(session, tenant_id, parse_id(value))
    if model is None:
        raise _invalid(field, "model_not_found",
                       f"tailored model {value!r} not found: {field} must be the id of one of your models "
                       f"(POST {PREFIX}/models, GET {PREFIX}/models)", value)
    if model.status in TRAINING_STATES and client is not None:
        if await refresh_model(model, client):
            await session.commit()
    if model.status != TRAINED:
        hint = {"Created": f"start its training (POST {PREFIX}/models/{{id}}/training/start) and wait",
                "InProgress": f"wait until GET {PREFIX}/models/{{id}} shows status Completed",
                "Stopping": "its training was stopped; train a new model",
                "Stopped": "its training was stopped; train a new model",
                "Failed": "its training failed; train a new model"}.get(model.status, "train it first")
        raise _invalid(field, "model_not_trained",
                       f"tailored model {model.id} is not trained (status {model.status}): "
                       + hint.replace("{id}", str(model.id)), value)
    return model


def resolver(field: str, *, lora_rules: bool = False):  # noqa: ANN201 - an Operation.resolve hook
    """An ``Operation.resolve`` hook for a request field that names a tailored model.

    ``lora_rules`` adds 004's prose rule of the bria-lora generate-image endpoint that depends on
    the model: models trained with the 'max' version do not support ``fast``.
    """

    async def resolve(params: dict[str, Any], tenant_id: str, session: AsyncSession,
                      defaults: UpstreamDefaults | None) -> dict[str, Any]:
        value = params.get(field)
        if value is None:
            return params
        client = client_for(defaults) if defaults is not None else None
        model = await find_trained_model(session, tenant_id, field, value, client)
        if lora_rules:
            if params.get("fast") and model.training_version == "max":
                raise _invalid("fast", "fast_not_supported",
                               f"tailored model {model.id} was trained with training_version 'max', which does "
                               "not support fast generation; send fast: false", True)
        return {**params, TAILORED_MODEL_KEY: model.upstream_id, TRAINING_VERSION_KEY: model.training_version}

    return resolve
