"""Bria Tailored Generation for the simulator: the management API (projects, datasets, images,
models, training) in memory, and tailored generation with the trained models.

Paths, bodies and answers are the ones the adapter uses (providers/bria/tailored/client.py, sources
[T1]–[T3] there): ``/v1/tailored-gen/…`` JSON with the ``api_token`` header, integer ids, 201 on
create, 204 on delete, ``{"error": {"code", "message", "details"}}`` on failure, and Bria's state
rules (409/412). What it makes up is made from the data:

* an uploaded image's caption describes the image itself (size, orientation, dominant and
  secondary colours by name, brightness), measured with Pillow, after the dataset's
  ``caption_prefix``;
* training moves Created → InProgress → Completed (or Failed, when a fault says so; Stopping →
  Stopped when stopped) after ``training_seconds`` (``SIM_TRAINING_SECONDS``, default 20;
  ``POST /_sim/tailored/config`` changes it);
* a trained model remembers the palette of its training images; ``/v1/text-to-image/tailored/
  {id}`` and ``/v1/text-to-vector/tailored/{id}`` draw with that palette, seeded by prompt and
  seed (PNG, or the PNG traced into an SVG), answering ``{"result": [{"urls": [url], "seed"}]}``.

Faults (``/_sim/faults``) apply with ``on: "submit"``; the subject is "METHOD path body", so a
rule can ``match`` e.g. ``"tailored-gen/projects"``. An ``error`` fault on ``start_training``
makes that training end in ``Failed``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import itertools
import os
import random
import secrets
import textwrap
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from PIL import Image, ImageDraw, ImageOps
from pydantic import BaseModel, Field

from providers.bria.simulator import edit
from providers.simulator.render import ASPECT_RATIOS, size_for

IP_MEDIA = ("photography", "illustration")
IP_TYPES = ("multi_object_set", "object_variants", "icons", "defined_character", "character_variants",
            "stylized_scene", "other", "style")  # [T1] plus 004's "style"
TRAINING_VERSIONS = ("light", "max")
MIN_IMAGES, MAX_IMAGES, MIN_SIDE, RECOMMENDED_SIDE = 5, 200, 256, 1024
MAX_IMAGE_BYTES = 12 * 1024 * 1024
PALETTE_COLOURS = 4
DEFAULT_TRAINING_SECONDS = 20.0

# Named colours for captions (CSS names, a small set).
COLOUR_NAMES = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "light grey": (211, 211, 211),
    "dark grey": (64, 64, 64), "red": (220, 30, 30), "dark red": (139, 0, 0), "pink": (255, 160, 190),
    "orange": (255, 140, 0), "brown": (130, 80, 40), "yellow": (245, 220, 40), "olive": (128, 128, 0),
    "green": (40, 170, 60), "dark green": (0, 100, 0), "teal": (0, 128, 128), "cyan": (0, 220, 230),
    "light blue": (150, 200, 250), "blue": (30, 70, 220), "navy": (0, 0, 128), "purple": (128, 40, 160),
    "magenta": (230, 40, 200), "beige": (235, 225, 200),
}


def _error(status: int, message: str, details: str = "") -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message, "details": details}}, status_code=status)


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- image analysis
def colour_name(rgb: tuple[int, int, int]) -> str:
    return min(COLOUR_NAMES, key=lambda n: sum((a - b) ** 2 for a, b in zip(COLOUR_NAMES[n], rgb)))


def palette_of(img: Image.Image, colours: int = PALETTE_COLOURS) -> list[tuple[tuple[int, int, int], float]]:
    """The image's dominant colours with their share of the pixels, largest first."""
    small = img.convert("RGB").resize((64, 64), Image.Resampling.BOX)
    poster = small.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    flat = poster.getpalette() or []
    counts = sorted(poster.getcolors() or [], reverse=True)
    total = sum(c for c, _ in counts) or 1
    return [((flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]), c / total) for c, i in counts]


def caption_for(img: Image.Image, prefix: str | None = None, size: tuple[int, int] | None = None) -> str:
    """A caption made from what the image shows: size (``size``: the original's, when ``img`` is
    a reduced copy), orientation, colours, brightness."""
    w, h = size or img.size
    orientation = "square" if abs(w - h) <= 0.05 * max(w, h) else ("landscape" if w > h else "portrait")
    palette = palette_of(img)
    (main, share), rest = palette[0], palette[1:]
    brightness = sum(ImageOps.grayscale(img.convert("RGB")).resize((32, 32)).getdata()) / (32 * 32 * 255)
    tone = "bright" if brightness > 0.66 else ("dark" if brightness < 0.33 else "mid-toned")
    text = (f"a {tone} {orientation} {w}x{h} image dominated by {colour_name(main)} "
            f"(#{main[0]:02x}{main[1]:02x}{main[2]:02x}, {share:.0%})")
    if rest:
        others = ", ".join(f"{colour_name(c)} (#{c[0]:02x}{c[1]:02x}{c[2]:02x})" for c, _ in rest[:2])
        text += f" with {others}"
    return f"{prefix.strip().rstrip(',')}, {text}" if prefix and prefix.strip() else text


# --------------------------------------------------------------------------- rendering with a model
def render_tailored(palette: list[tuple[int, int, int]], model_key: str, prompt: str, seed: int,
                    aspect_ratio: str = "1:1") -> bytes:
    """A PNG drawn only with the model's palette: a background in one of its colours and shapes
    in the others, chosen and placed by a RNG seeded with model, prompt and seed."""
    size = size_for(aspect_ratio, "1MP")
    digest = hashlib.sha256(f"{model_key}\x00{prompt}\x00{seed}\x00{aspect_ratio}".encode()).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    colours = palette or [(128, 128, 128)]
    image = Image.new("RGB", size, rng.choice(colours[:2]))
    draw = ImageDraw.Draw(image)
    w, h = size
    for _ in range(rng.randint(8, 16)):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.25) * min(w, h)
        fill = rng.choice(colours)
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        else:
            draw.rectangle((cx - r, cy - r / 2, cx + r, cy + r / 2), fill=fill)
    text = textwrap.shorten(prompt, width=80)
    draw.text((w * 0.03, h * 0.92), f"{text} (seed {seed})", fill=colours[-1])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


# --------------------------------------------------------------------------- state
def _now_iso() -> str:
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
    created_at: str = field(default_factory=_now_iso)


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
    created_at: str = field(default_factory=_now_iso)


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
            "thumbnail_url": f"{base}files/tailored/{i.id}.png", "created_at": i.created_at, "updated_at": _now_iso()}


def model_doc(t: TailoredState, m: TModel) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "description": m.description, "status": t.model_status(m, time.monotonic()),
            "training_version": m.training_version, "training_mode": "fully_automated", "project_id": m.project_id,
            "dataset_id": m.dataset_id, "created_at": m.created_at, "active_model_version": "default"}


# --------------------------------------------------------------------------- the routes
def mount(app: FastAPI, sim: Any) -> TailoredState:
    """Add the tailored-generation routes to the simulator app (ahead of its catch-all v1 route)
    and return their state. ``sim`` is the app's ``SimState`` (api_token, faults, latency)."""
    t = TailoredState(training_seconds=float(os.environ.get("SIM_TRAINING_SECONDS", DEFAULT_TRAINING_SECONDS)))
    app.state.tailored = t
    router = APIRouter()
    B = "/v1/tailored-gen"

    async def guard(request: Request) -> tuple[Any, dict[str, Any], Response | None]:
        """Fault injection, auth and the JSON body: (fault rule, body, early response)."""
        raw = (await request.body()).decode("utf-8", "replace")
        sim.count("submit")
        rule = sim.faults.take("submit", f"{request.method} {request.url.path} {raw}")
        if rule is not None and rule.kind in ("429", "500", "503"):
            from providers.bria.simulator.app import http_fault

            return rule, {}, http_fault(rule)
        if rule is not None and rule.kind == "timeout":
            await asyncio.sleep(rule.delay)
        token = request.headers.get("api_token")
        if not token or (sim.api_token is not None and not secrets.compare_digest(token, sim.api_token)):
            return rule, {}, _error(401, "Unauthorized", "missing or invalid api_token header")
        if rule is not None and rule.kind == "error" and "start_training" not in request.url.path:
            code = rule.code if isinstance(rule.code, int) and 400 <= rule.code <= 599 else 500
            return rule, {}, _error(code, rule.message or "simulated error", "simulated error")
        body: dict[str, Any] = {}
        if raw.strip():
            try:
                parsed = await request.json()
            except ValueError:
                return rule, {}, _error(400, "Request body is not valid JSON")
            if not isinstance(parsed, dict):
                return rule, {}, _error(400, "Request body must be a JSON object")
            body = parsed
        return rule, body, None

    def handler(fn):
        async def endpoint(request: Request) -> Response:
            rule, body, early = await guard(request)
            if early is not None:
                return early
            try:
                with t.lock:
                    result = fn(request, body, rule, **request.path_params)
                if asyncio.iscoroutine(result):
                    result = await result
            except Refused as exc:
                return _error(exc.status, exc.message)
            if isinstance(result, Response):
                return result
            status, payload = result
            return Response(status_code=204) if status == 204 else JSONResponse(payload, status_code=status)

        endpoint.__name__ = fn.__name__
        return endpoint

    def _int(value: Any) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise Refused(404, "Not found") from None

    def project(pid: Any) -> dict[str, Any]:
        p = t.projects.get(_int(pid))
        if p is None:
            raise Refused(404, "Project not found")
        return p

    def dataset(did: Any) -> dict[str, Any]:
        d = t.datasets.get(_int(did))
        if d is None:
            raise Refused(404, "Dataset not found")
        return d

    def model(mid: Any) -> TModel:
        m = t.models.get(_int(mid))
        if m is None:
            raise Refused(404, "Model not found")
        return m

    def training(now: float, **where: Any) -> list[TModel]:
        return [m for m in t.models.values() if t.model_status(m, now) in ("InProgress", "Stopping")
                and all(getattr(m, k) == v for k, v in where.items())]

    # ---------------------------------------------------------------- projects
    def create_project(request, body, rule):
        name, medium, ip_type = body.get("project_name"), body.get("ip_medium"), body.get("ip_type")
        if not isinstance(name, str) or not name.strip():
            raise Refused(400, "project_name is required")
        if medium not in IP_MEDIA:
            raise Refused(400, f"ip_medium must be one of {', '.join(IP_MEDIA)}")
        if ip_type not in IP_TYPES:
            raise Refused(400, f"ip_type must be one of {', '.join(IP_TYPES)}")
        if ip_type == "defined_character" and not body.get("ip_name"):
            raise Refused(400, "ip_name is required for defined_character")
        p = {"id": t.next_id(), "project_name": name, "project_description": body.get("project_description") or "",
             "ip_name": body.get("ip_name"), "ip_description": body.get("ip_description"), "ip_medium": medium,
             "ip_type": ip_type, "status": "active", "created_at": _now_iso(), "updated_at": _now_iso()}
        t.projects[p["id"]] = p
        return 201, project_doc(p)

    def update_project(request, body, rule, project_id):
        p = project(project_id)
        for key in ("project_name", "project_description", "ip_name", "ip_description"):
            if key in body:
                p[key] = body[key]
        p["updated_at"] = _now_iso()
        return 200, project_doc(p)

    def delete_project(request, body, rule, project_id):
        p = project(project_id)
        if training(time.monotonic(), project_id=p["id"]):
            raise Refused(409, "Cannot delete project while models are in training")
        for d in [d for d in t.datasets.values() if d["project_id"] == p["id"]]:
            for i in t.dataset_images(d["id"]):
                del t.images[i.id]
            del t.datasets[d["id"]]
        for m in [m for m in t.models.values() if m.project_id == p["id"]]:
            del t.models[m.id]
        del t.projects[p["id"]]
        return 204, None

    def get_project(request, body, rule, project_id):
        return 200, project_doc(project(project_id))

    # ---------------------------------------------------------------- datasets
    def create_dataset(request, body, rule):
        p = project(body.get("project_id"))
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Refused(400, "name is required")
        d = {"id": t.next_id(), "project_id": p["id"], "name": name, "caption_prefix": None, "status": "draft",
             "captions_update_status": "empty", "upload_type": "basic", "created_at": _now_iso(),
             "updated_at": _now_iso()}
        t.datasets[d["id"]] = d
        return 201, dataset_doc(t, d)

    def get_dataset(request, body, rule, dataset_id):
        d = dataset(dataset_id)
        return 200, {**dataset_doc(t, d), "images": [image_doc(request, i) for i in t.dataset_images(d["id"])]}

    def update_dataset(request, body, rule, dataset_id):
        d = dataset(dataset_id)
        status = body.get("status")
        if status is not None and status not in ("draft", "completed"):
            raise Refused(400, "status must be draft or completed")
        if status == "completed" and len(t.dataset_images(d["id"])) < MIN_IMAGES:
            raise Refused(409, f"Insufficient images to complete: at least {MIN_IMAGES} are required")
        if "caption_prefix" in body and d["status"] == "completed" and status != "draft":
            raise Refused(409, "Cannot update the caption prefix of a completed dataset")
        for key in ("name", "caption_prefix", "status"):
            if key in body:
                d[key] = body[key]
        d["updated_at"] = _now_iso()
        return 200, dataset_doc(t, d)

    def delete_dataset(request, body, rule, dataset_id):
        d = dataset(dataset_id)
        if training(time.monotonic(), dataset_id=d["id"]):
            raise Refused(409, "Cannot delete a dataset that is used by a model in training")
        for i in t.dataset_images(d["id"]):
            del t.images[i.id]
        del t.datasets[d["id"]]
        return 204, None

    # ---------------------------------------------------------------- images
    def upload_image(request, body, rule, dataset_id):
        d = dataset(dataset_id)
        if d["status"] == "completed":
            raise Refused(409, "Cannot upload to a completed dataset")
        if len(t.dataset_images(d["id"])) >= MAX_IMAGES:
            raise Refused(409, f"Dataset cannot exceed {MAX_IMAGES} images")
        file = body.get("file")
        if not isinstance(file, str) or not file:
            raise Refused(400, "file (base64 image) is required")  # image_url uploads are not simulated
        try:
            data = base64.b64decode(file, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(400, "file is not valid base64") from None
        if len(data) > MAX_IMAGE_BYTES:
            raise Refused(413, "image too large")
        try:
            img = edit.load(data)
            fmt = Image.open(io.BytesIO(data)).format
        except Exception:
            raise Refused(415, "Unsupported Media Type: use jpg, jpeg, png or webp") from None
        if fmt not in ("JPEG", "PNG", "WEBP"):
            raise Refused(415, "Unsupported Media Type: use jpg, jpeg, png or webp")
        w, h = img.size
        minimum = RECOMMENDED_SIDE if body.get("increase_resolution") is False else MIN_SIDE
        if min(w, h) < minimum:
            raise Refused(412, f"Precondition Failed: the image is {w}x{h}; the minimum is {minimum}x{minimum}")
        pixels = img.convert("RGB")
        pixels.thumbnail((256, 256))
        image = TImage(id=t.next_id(), dataset_id=d["id"], image_name=body.get("image_name"), width=w, height=h,
                       palette=palette_of(img), pixels=pixels, caption=caption_for(img, d.get("caption_prefix")),
                       caption_source="automatic")
        t.images[image.id] = image
        t.files[f"{image.id}.png"] = (edit.png(img), "image/png")
        return 201, image_doc(request, image)

    def list_images(request, body, rule, dataset_id):
        d = dataset(dataset_id)
        dataset_doc(t, d)  # finishes a due re-captioning
        return 200, [image_doc(request, i) for i in t.dataset_images(d["id"])]

    def regenerate_captions(request, body, rule, dataset_id):
        d = dataset(dataset_id)
        d["captions_update_status"] = "in_progress"
        d["captions_due"] = time.monotonic() + t.captions_seconds
        return 202, {k: v for k, v in d.items() if k != "captions_due"}

    def image_of(d: dict[str, Any], image_id: Any) -> TImage:
        image = t.images.get(_int(image_id))
        if image is None or image.dataset_id != d["id"]:
            raise Refused(404, "Image or dataset not found")
        return image

    def get_image(request, body, rule, dataset_id, image_id):
        return 200, image_doc(request, image_of(dataset(dataset_id), image_id))

    def update_caption(request, body, rule, dataset_id, image_id):
        d = dataset(dataset_id)
        image = image_of(d, image_id)
        if d["status"] == "completed":
            raise Refused(409, "Cannot update caption in a completed dataset")
        caption, regenerate = body.get("caption"), bool(body.get("regenerate_caption"))
        if caption is not None and regenerate:
            raise Refused(400, "Cannot provide both caption and regenerate_caption")
        if regenerate:
            image.caption = caption_for(image.pixels, d.get("caption_prefix"), (image.width, image.height))
            image.caption_source = "automatic"
        elif isinstance(caption, str) and caption.strip():
            image.caption, image.caption_source = caption, "manual"
        else:
            raise Refused(400, "caption or regenerate_caption is required")
        return 200, image_doc(request, image)

    def delete_image(request, body, rule, dataset_id, image_id):
        d = dataset(dataset_id)
        image = image_of(d, image_id)
        if d["status"] == "completed":
            raise Refused(409, "Cannot delete an image from a completed dataset")
        del t.images[image.id]
        t.files.pop(f"{image.id}.png", None)
        return 204, None

    # ---------------------------------------------------------------- models and training
    def create_model(request, body, rule):
        d = dataset(body.get("dataset_id"))
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Refused(400, "name is required")
        version = body.get("training_version", "light")
        if version not in TRAINING_VERSIONS:
            raise Refused(400, f"training_version must be one of {', '.join(TRAINING_VERSIONS)}")
        m = TModel(id=t.next_id(), name=name, description=body.get("description"), dataset_id=d["id"],
                   project_id=d["project_id"], training_version=version)
        t.models[m.id] = m
        return 201, model_doc(t, m)

    def get_model(request, body, rule, model_id):
        return 200, model_doc(t, model(model_id))

    def update_model(request, body, rule, model_id):
        m = model(model_id)
        m.name = body.get("name", m.name)
        m.description = body.get("description", m.description)
        return 200, model_doc(t, m)

    def delete_model(request, body, rule, model_id):
        m = model(model_id)
        if t.model_status(m, time.monotonic()) in ("InProgress", "Stopping"):
            raise Refused(409, "Cannot delete a model that is currently in training")
        del t.models[m.id]
        return 204, None

    def start_training(request, body, rule, model_id):
        m = model(model_id)
        if t.model_status(m, time.monotonic()) != "Created":
            raise Refused(409, "Training already started/cannot be resumed")
        d = t.datasets.get(m.dataset_id)
        if d is None or d["status"] != "completed":
            raise Refused(412, "Dataset status must be 'completed' to start training")
        m.status, m.started = "InProgress", time.monotonic()
        m.fail = rule is not None and rule.kind == "error"
        return 200, model_doc(t, m)

    def stop_training(request, body, rule, model_id):
        m = model(model_id)
        if t.model_status(m, time.monotonic()) != "InProgress":
            raise Refused(409, "Training already stopped/not in training")
        m.status, m.stop_requested = "Stopping", time.monotonic()
        return 200, model_doc(t, m)

    # ---------------------------------------------------------------- generation
    async def generate(request, body, rule, model_id, kind):
        m = model(model_id)
        if t.model_status(m, time.monotonic()) != "Completed":
            raise Refused(409, f"Model {m.id} is not trained (status {m.status})")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise Refused(422, "prompt is required")
        ratio = body.get("aspect_ratio", "1:1")
        if ratio not in ASPECT_RATIOS:
            raise Refused(422, f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
        count = body.get("num_results", 1)
        if not isinstance(count, int) or not 1 <= count <= 4:
            raise Refused(422, "num_results must be between 1 and 4")
        if body.get("fast") and m.training_version == "max":
            raise Refused(400, "fast is not supported by models trained with the max version")
        seed = body.get("seed")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else random.randrange(2**31)
        palette, key = list(m.palette), f"model-{m.id}"

        def produce() -> list[tuple[bytes, str, str]]:
            out = []
            for s in range(seed, seed + count):
                raster = render_tailored(palette, key, prompt, s, ratio)
                if kind == "vector":
                    out.append((edit.trace_svg(edit.load(raster), colours=min(8, max(2, len(palette)))),
                                "image/svg+xml", "svg"))
                else:
                    out.append((raster, "image/png", "png"))
            return out

        await asyncio.sleep(sim.latency)
        files = await run_in_threadpool(produce)  # renders off the event loop; touches no state
        result = []
        for i, (data, media_type, ext) in enumerate(files):
            name = f"gen-{secrets.token_hex(8)}.{ext}"
            t.files[name] = (data, media_type)
            result.append({"urls": [f"{request.base_url}files/tailored/{name}"], "seed": seed + i})
        return 200, {"result": result}

    def gen_image(request, body, rule, model_id):
        return generate(request, body, rule, model_id, "image")

    def gen_vector(request, body, rule, model_id):
        return generate(request, body, rule, model_id, "vector")

    routes = [
        ("POST", f"{B}/projects", create_project), ("GET", f"{B}/projects/{{project_id}}", get_project),
        ("PUT", f"{B}/projects/{{project_id}}", update_project),
        ("DELETE", f"{B}/projects/{{project_id}}", delete_project),
        ("POST", f"{B}/datasets", create_dataset), ("GET", f"{B}/datasets/{{dataset_id}}", get_dataset),
        ("PUT", f"{B}/datasets/{{dataset_id}}", update_dataset),
        ("DELETE", f"{B}/datasets/{{dataset_id}}", delete_dataset),
        ("POST", f"{B}/datasets/{{dataset_id}}/images", upload_image),
        ("GET", f"{B}/datasets/{{dataset_id}}/images", list_images),
        ("PUT", f"{B}/datasets/{{dataset_id}}/images", regenerate_captions),
        ("GET", f"{B}/datasets/{{dataset_id}}/images/{{image_id}}", get_image),
        ("PUT", f"{B}/datasets/{{dataset_id}}/images/{{image_id}}", update_caption),
        ("DELETE", f"{B}/datasets/{{dataset_id}}/images/{{image_id}}", delete_image),
        ("POST", f"{B}/models", create_model), ("GET", f"{B}/models/{{model_id}}", get_model),
        ("PUT", f"{B}/models/{{model_id}}", update_model), ("DELETE", f"{B}/models/{{model_id}}", delete_model),
        ("POST", f"{B}/models/{{model_id}}/start_training", start_training),
        ("POST", f"{B}/models/{{model_id}}/stop_training", stop_training),
        ("POST", "/v1/text-to-image/tailored/{model_id}", gen_image),
        ("POST", "/v1/text-to-vector/tailored/{model_id}", gen_vector),
    ]
    for method, path, fn in routes:
        router.add_api_route(path, handler(fn), methods=[method])

    @router.get("/files/tailored/{name}")
    async def tailored_file(name: str) -> Response:
        sim.count("download")
        entry = t.files.get(name)
        if entry is None:
            return _error(404, "Not Found", f"no file named {name}")
        return Response(content=entry[0], media_type=entry[1])

    @router.post("/_sim/tailored/config")
    async def tailored_config(config: TailoredConfig) -> dict[str, Any]:
        if config.training_seconds is not None:
            t.training_seconds = config.training_seconds
        if config.captions_seconds is not None:
            t.captions_seconds = config.captions_seconds
        return {"training_seconds": t.training_seconds, "captions_seconds": t.captions_seconds}

    before = len(app.router.routes)
    app.include_router(router)
    # Put these routes first: the simulator's generic "POST /v1/{rest:path}" must not shadow them.
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
    return t
