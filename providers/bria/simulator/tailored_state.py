"""The simulator's tailored generation, its state: Bria's projects, datasets, images and models
in memory, each model moving through Bria's states as time passes, and the documents Bria
answers with. A lookup of an unknown id raises ``Refused`` (404)."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from PIL import Image
from pydantic import BaseModel, Field

from providers.bria.simulator.tailored_looks import caption_for

IP_MEDIA = ("photography", "illustration")
IP_TYPES = ("multi_object_set", "object_variants", "icons", "defined_character", "character_variants",
            "stylized_scene", "other", "style")  # [T1] plus 004's "style"
TRAINING_VERSIONS = ("light", "max")
MIN_IMAGES, MAX_IMAGES, MIN_SIDE, RECOMMENDED_SIDE = 5, 200, 256, 1024
MAX_IMAGE_BYTES = 12 * 1024 * 1024
PALETTE_COLOURS = 4
DEFAULT_TRAINING_SECONDS = 20.0


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Refused(404, "Not found") from None


# --------------------------------------------------------------------------- state
def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class TImage:
    id: int
    dataset_id: int
    image_name: str | None
    width: int
    height: int
    palette: list[tuple[tuple[int, int, int], float]]
    pixels: Image.Image  # a small copy, enough to caption again
    caption: str | None
    caption_source: str
    created_at: str = field(default_factory=now_iso)


@dataclass
class TModel:
    id: int
    name: str
    description: str | None
    dataset_id: int
    project_id: int
    training_version: str
    status: str = "Created"
    started: float | None = None
    stop_requested: float | None = None
    fail: bool = False
    palette: list[tuple[int, int, int]] = field(default_factory=list)
    created_at: str = field(default_factory=now_iso)


@dataclass
class TailoredState:
    training_seconds: float
    captions_seconds: float = 0.3
    ids: itertools.count = field(default_factory=lambda: itertools.count(1001))
    projects: dict[int, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[int, dict[str, Any]] = field(default_factory=dict)
    images: dict[int, TImage] = field(default_factory=dict)
    models: dict[int, TModel] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def next_id(self) -> int:
        with self.lock:
            return next(self.ids)

    def model_status(self, model: TModel, now: float) -> str:
        """Advance a model through Bria's states as time passes."""
        if model.status == "Stopping" and model.stop_requested is not None and \
                now - model.stop_requested >= min(1.0, self.training_seconds / 4):
            model.status = "Stopped"
        if model.status == "InProgress" and model.started is not None and now - model.started >= self.training_seconds:
            model.status = "Failed" if model.fail else "Completed"
            if model.status == "Completed":
                model.palette = self.dataset_palette(model.dataset_id)
        return model.status

    def dataset_images(self, dataset_id: int) -> list[TImage]:
        return [i for i in self.images.values() if i.dataset_id == dataset_id]

    def dataset_palette(self, dataset_id: int) -> list[tuple[int, int, int]]:
        """The colours that cover the dataset's images, most covering first: each image's
        dominant colours weighted by their share, similar ones merged; colours under 5 % left out."""
        weights: dict[tuple[int, int, int], float] = {}
        for image in self.dataset_images(dataset_id):
            for rgb, share in image.palette:
                key = tuple(min(255, round(v / 16) * 16) for v in rgb)
                weights[key] = weights.get(key, 0.0) + share
        total = sum(weights.values()) or 1.0
        ranked = sorted(weights.items(), key=lambda kv: -kv[1])
        return [rgb for rgb, w in ranked if w / total >= 0.05][:6]

    # ------------------------------------------------------------------ lookups (Refused: 404)
    def project(self, pid: Any) -> dict[str, Any]:
        p = self.projects.get(_int(pid))
        if p is None:
            raise Refused(404, "Project not found")
        return p

    def dataset(self, did: Any) -> dict[str, Any]:
        d = self.datasets.get(_int(did))
        if d is None:
            raise Refused(404, "Dataset not found")
        return d

    def model(self, mid: Any) -> TModel:
        m = self.models.get(_int(mid))
        if m is None:
            raise Refused(404, "Model not found")
        return m

    def image_of(self, d: dict[str, Any], image_id: Any) -> TImage:
        image = self.images.get(_int(image_id))
        if image is None or image.dataset_id != d["id"]:
            raise Refused(404, "Image or dataset not found")
        return image

    def training(self, now: float, **where: Any) -> list[TModel]:
        """The models in training (of a project, or on a dataset)."""
        return [m for m in self.models.values() if self.model_status(m, now) in ("InProgress", "Stopping")
                and all(getattr(m, k) == v for k, v in where.items())]


class TailoredConfig(BaseModel):
    training_seconds: float | None = Field(default=None, ge=0)
    captions_seconds: float | None = Field(default=None, ge=0)


# --------------------------------------------------------------------------- documents
def project_doc(p: dict[str, Any]) -> dict[str, Any]:
    return dict(p)


def dataset_doc(t: TailoredState, d: dict[str, Any]) -> dict[str, Any]:
    captions = d["captions_update_status"]
    if captions == "in_progress" and time.monotonic() >= d.get("captions_due", 0):
        prefix = d.get("caption_prefix")
        for image in t.dataset_images(d["id"]):
            image.caption = caption_for(image.pixels, prefix, (image.width, image.height))
            image.caption_source = "automatic"
        d["captions_update_status"] = captions = "completed"
    return {k: v for k, v in d.items() if k != "captions_due"} | {
        "captions_update_status": captions, "images_count": len(t.dataset_images(d["id"]))}


def image_doc(request: Request, i: TImage) -> dict[str, Any]:
    base = str(request.base_url)
    return {"id": i.id, "dataset_id": i.dataset_id, "caption": i.caption, "caption_source": i.caption_source,
            "image_name": i.image_name, "image_url": f"{base}files/tailored/{i.id}.png",
            "thumbnail_url": f"{base}files/tailored/{i.id}.png", "created_at": i.created_at, "updated_at": now_iso()}


def model_doc(t: TailoredState, m: TModel) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "description": m.description, "status": t.model_status(m, time.monotonic()),
            "training_version": m.training_version, "training_mode": "fully_automated", "project_id": m.project_id,
            "dataset_id": m.dataset_id, "created_at": m.created_at, "active_model_version": "default"}
