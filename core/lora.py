"""Tailored generation (LoRA): the gateway's records of each tenant's Bria projects, datasets,
images and models, and the intake step that turns a tenant's model id into Bria's.

One Bria key serves every tenant, so Bria cannot tell tenants apart: the gateway does. Each
object a tenant creates is recorded here with the tenant, the integer id the client sees and the
upstream id it mirrors (providers/bria/lora.py makes the upstream calls); every lookup is scoped
by tenant, so another tenant's id is "not found". A generation request names a model by the
client's id; ``resolve_generation`` checks that the model is this tenant's and trained, and
stores Bria's id in the job's params (``UPSTREAM_MODEL_KEY``), which is the only id the worker
ever sends upstream.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import anyio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import LoraDataset, LoraImage, LoraModel, LoraProject, utcnow
from core.results import iso
from providers.base import InvalidRequest, MediaInput, UpstreamError
from providers.bria.settings import BriaSettings
from providers.bria.lora import (MIN_IMAGE_SIDE, MODEL_STATES, TAILORED_MODEL_KEY, TRAINED, TRAINING_STATES,
                                 TRAINING_VERSION_KEY, TailoredClient)

log = logging.getLogger("visiongate.lora")

UPSTREAM_MODEL_KEY = TAILORED_MODEL_KEY
IMAGE_MAX_BYTES = 12 * 1024 * 1024  # Bria's image limit elsewhere in the reference (12 MB)
FETCH_TIMEOUT_SECONDS = 15.0


def _min_side(width: int, height: int, _params: dict[str, Any]) -> str | None:
    if min(width, height) < MIN_IMAGE_SIDE:
        return (f"the image is {width}x{height}; Bria needs at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} "
                f"(1024x1024 recommended; smaller ones are upscaled)")
    return None


TRAINING_IMAGE = MediaInput("image_url", kind="image", max_bytes=IMAGE_MAX_BYTES,
                            formats=("JPEG", "PNG", "WEBP"), check=_min_side)


# --------------------------------------------------------------------------- upstream client
@functools.lru_cache(maxsize=4)
def _client(base_url: str, token: str, timeout: float) -> TailoredClient:
    return TailoredClient(base_url, token, timeout)


def client_for(settings: Any) -> TailoredClient:
    bria = BriaSettings()
    return _client((bria.base_url or settings.simulator_url).rstrip("/"), bria.api_token,
                   settings.upstream_timeout_seconds)


# --------------------------------------------------------------------------- documents
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


# --------------------------------------------------------------------------- tenant-scoped reads
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


def _storable(object_id: Any) -> bool:
    """Ids are 32-bit serials: a number outside that range names nothing (and would make
    PostgreSQL refuse the query)."""
    return isinstance(object_id, int) and not isinstance(object_id, bool) and 0 < object_id < 2**31


async def _get(session: AsyncSession, cls: Any, tenant_id: str, object_id: int | None) -> Any:
    if not _storable(object_id):
        return None
    return await session.scalar(select(cls).where(cls.id == object_id, cls.tenant_id == tenant_id))


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


async def image_counts(session: AsyncSession, dataset_ids: list[int]) -> dict[int, int]:
    if not dataset_ids:
        return {}
    rows = await session.execute(select(LoraImage.dataset_id, func.count()).where(
        LoraImage.dataset_id.in_(dataset_ids)).group_by(LoraImage.dataset_id))
    return {dataset_id: count for dataset_id, count in rows.all()}


# --------------------------------------------------------------------------- upstream state → records
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


async def refresh_model(session: AsyncSession, model: LoraModel, client: TailoredClient) -> bool:
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


# --------------------------------------------------------------------------- training images
def fetch_training_image(url: str, allow_hosts: tuple[str, ...]) -> tuple[bytes, Any]:
    """GET ``url`` SSRF-safely (core.netguard: public addresses only, unless allow-listed; no
    redirects; size- and time-capped) and check it is a JPEG/PNG/WEBP image of at least 256x256
    within 12 MB. Raises ``InvalidRequest`` naming ``image_url``."""
    from core import media, netguard

    def invalid(kind: str, message: str) -> InvalidRequest:
        return InvalidRequest([{"type": kind, "loc": ("body", "image_url"), "msg": message, "input": url}])

    try:
        data, _content_type = netguard.fetch(url, allow_hosts=allow_hosts, max_bytes=IMAGE_MAX_BYTES,
                                             timeout=FETCH_TIMEOUT_SECONDS)
    except netguard.Blocked as exc:
        raise invalid("input_url_blocked", f"image_url: {url} may not be fetched: {exc.reason}") from None
    except netguard.FetchError as exc:
        raise invalid("input_fetch_failed", f"image_url: could not fetch {url}: {exc}") from None
    try:
        info = media.inspect_image(data, TRAINING_IMAGE)
    except media.MediaError as exc:
        raise invalid(exc.code, f"image_url ({url}): {exc.message}") from None
    return data, info


def decode_training_image(value: Any) -> tuple[bytes, Any]:
    """``image_file``: base64 (with or without a ``data:`` prefix) of a JPEG/PNG/WEBP image of at
    least 256x256 within 12 MB. Raises ``InvalidRequest`` naming ``image_file``."""
    from core import media

    def invalid(kind: str, message: str) -> InvalidRequest:
        shown = value[:80] + "…" if isinstance(value, str) and len(value) > 80 else value
        return InvalidRequest([{"type": kind, "loc": ("body", "image_file"), "msg": message, "input": shown}])

    if not isinstance(value, str):
        raise invalid("string_type", "image_file must be a string: the image as base64")
    if len(value) > IMAGE_MAX_BYTES * 4 // 3 + 200:
        raise invalid("image_too_large", f"image_file: the image is over {IMAGE_MAX_BYTES // (1024 * 1024)} MB")
    try:
        data = media.decode_base64(value)
        info = media.inspect_image(data, TRAINING_IMAGE)
    except media.MediaError as exc:
        raise invalid(exc.code, f"image_file: {exc.message}") from None
    return data, info


# --------------------------------------------------------------------------- generation intake
def _invalid(loc: str, kind: str, message: str, value: Any) -> InvalidRequest:
    return InvalidRequest([{"type": kind, "loc": ("body", loc), "msg": message, "input": value}])


async def find_trained_model(session: AsyncSession, tenant_id: str, field: str, value: Any,
                             client: TailoredClient | None) -> LoraModel:
    """The tenant's model named by ``value`` that has finished training; a model still in
    training is refreshed from Bria first. Raises ``InvalidRequest`` (loc ``field``)."""
    model = await get_model(session, tenant_id, parse_id(value))
    if model is None:
        raise _invalid(field, "model_not_found",
                       f"tailored model {value!r} not found: {field} must be the id of one of your models "
                       "(POST /api/v1/bria-lora/models, GET /api/v1/bria-lora/models)", value)
    if model.status in TRAINING_STATES and client is not None:
        if await refresh_model(session, model, client):
            await session.commit()
    if model.status != TRAINED:
        hint = {"Created": "start its training (POST /api/v1/bria-lora/models/{id}/training/start) and wait",
                "InProgress": "wait until GET /api/v1/bria-lora/models/{id} shows status Completed",
                "Stopping": "its training was stopped; train a new model",
                "Stopped": "its training was stopped; train a new model",
                "Failed": "its training failed; train a new model"}.get(model.status, "train it first")
        raise _invalid(field, "model_not_trained",
                       f"tailored model {model.id} is not trained (status {model.status}): "
                       + hint.replace("{id}", str(model.id)), value)
    return model


def resolver(field: str, *, lora_rules: bool = False):
    """An ``Operation.resolve`` hook for a request field that names a tailored model.

    ``lora_rules`` adds 004's prose rule of the bria-lora generate-image endpoint that depends on
    the model: models trained with the 'max' version do not support ``fast``.
    """

    async def resolve(params: dict[str, Any], tenant_id: str, session: AsyncSession) -> dict[str, Any]:
        value = params.get(field)
        if value is None:
            return params
        from core.settings import get_settings

        model = await find_trained_model(session, tenant_id, field, value, client_for(get_settings()))
        if lora_rules:
            if params.get("fast") and model.training_version == "max":
                raise _invalid("fast", "fast_not_supported",
                               f"tailored model {model.id} was trained with training_version 'max', which does "
                               "not support fast generation; send fast: false", True)
        return {**params, UPSTREAM_MODEL_KEY: model.upstream_id, TRAINING_VERSION_KEY: model.training_version}

    return resolve
