"""The simulator's tailored generation, its handlers: Bria's management calls and tailored
generation, each ``(t, request, body, rule, **path ids) -> (status, payload)`` on the state ``t``
(the caller holds its lock), raising ``Refused`` with Bria's status and message."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import random
import secrets
import time
from typing import Any

from fastapi.concurrency import run_in_threadpool
from PIL import Image

from providers.bria.simulator import edit
from providers.bria.simulator.tailored_looks import caption_for, palette_of, render_tailored
from providers.bria.simulator.tailored_state import (IP_MEDIA, IP_TYPES, MAX_IMAGE_BYTES, MAX_IMAGES, MIN_IMAGES,
                                                     MIN_SIDE, RECOMMENDED_SIDE, TRAINING_VERSIONS, Refused,
                                                     TailoredState, TImage, TModel, dataset_doc, image_doc,
                                                     model_doc, now_iso, project_doc)
from providers.simulator.render import ASPECT_RATIOS


# --------------------------------------------------------------------------- projects
def create_project(t: TailoredState, request, body, rule):
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
         "ip_type": ip_type, "status": "active", "created_at": now_iso(), "updated_at": now_iso()}
    t.projects[p["id"]] = p
    return 201, project_doc(p)

def update_project(t: TailoredState, request, body, rule, project_id):
    p = t.project(project_id)
    for key in ("project_name", "project_description", "ip_name", "ip_description"):
        if key in body:
            p[key] = body[key]
    p["updated_at"] = now_iso()
    return 200, project_doc(p)

def delete_project(t: TailoredState, request, body, rule, project_id):
    p = t.project(project_id)
    if t.training(time.monotonic(), project_id=p["id"]):
        raise Refused(409, "Cannot delete project while models are in training")
    for d in [d for d in t.datasets.values() if d["project_id"] == p["id"]]:
        for i in t.dataset_images(d["id"]):
            del t.images[i.id]
        del t.datasets[d["id"]]
    for m in [m for m in t.models.values() if m.project_id == p["id"]]:
        del t.models[m.id]
    del t.projects[p["id"]]
    return 204, None

def get_project(t: TailoredState, request, body, rule, project_id):
    return 200, project_doc(t.project(project_id))

# --------------------------------------------------------------------------- datasets
def create_dataset(t: TailoredState, request, body, rule):
    p = t.project(body.get("project_id"))
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise Refused(400, "name is required")
    d = {"id": t.next_id(), "project_id": p["id"], "name": name, "caption_prefix": None, "status": "draft",
         "captions_update_status": "empty", "upload_type": "basic", "created_at": now_iso(),
         "updated_at": now_iso()}
    t.datasets[d["id"]] = d
    return 201, dataset_doc(t, d)

def get_dataset(t: TailoredState, request, body, rule, dataset_id):
    d = t.dataset(dataset_id)
    return 200, {**dataset_doc(t, d), "images": [image_doc(request, i) for i in t.dataset_images(d["id"])]}

def update_dataset(t: TailoredState, request, body, rule, dataset_id):
    d = t.dataset(dataset_id)
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
    d["updated_at"] = now_iso()
    return 200, dataset_doc(t, d)

def delete_dataset(t: TailoredState, request, body, rule, dataset_id):
    d = t.dataset(dataset_id)
    if t.training(time.monotonic(), dataset_id=d["id"]):
        raise Refused(409, "Cannot delete a dataset that is used by a model in training")
    for i in t.dataset_images(d["id"]):
        del t.images[i.id]
    del t.datasets[d["id"]]
    return 204, None

# --------------------------------------------------------------------------- images
def upload_image(t: TailoredState, request, body, rule, dataset_id):
    d = t.dataset(dataset_id)
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

def list_images(t: TailoredState, request, body, rule, dataset_id):
    d = t.dataset(dataset_id)
    dataset_doc(t, d)  # finishes a due re-captioning
    return 200, [image_doc(request, i) for i in t.dataset_images(d["id"])]

def regenerate_captions(t: TailoredState, request, body, rule, dataset_id):
    d = t.dataset(dataset_id)
    d["captions_update_status"] = "in_progress"
    d["captions_due"] = time.monotonic() + t.captions_seconds
    return 202, {k: v for k, v in d.items() if k != "captions_due"}

def get_image(t: TailoredState, request, body, rule, dataset_id, image_id):
    return 200, image_doc(request, t.image_of(t.dataset(dataset_id), image_id))

def update_caption(t: TailoredState, request, body, rule, dataset_id, image_id):
    d = t.dataset(dataset_id)
    image = t.image_of(d, image_id)
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

def delete_image(t: TailoredState, request, body, rule, dataset_id, image_id):
    d = t.dataset(dataset_id)
    image = t.image_of(d, image_id)
    if d["status"] == "completed":
        raise Refused(409, "Cannot delete an image from a completed dataset")
    del t.images[image.id]
    t.files.pop(f"{image.id}.png", None)
    return 204, None

# --------------------------------------------------------------------------- models and training
def create_model(t: TailoredState, request, body, rule):
    d = t.dataset(body.get("dataset_id"))
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

def get_model(t: TailoredState, request, body, rule, model_id):
    return 200, model_doc(t, t.model(model_id))

def update_model(t: TailoredState, request, body, rule, model_id):
    m = t.model(model_id)
    m.name = body.get("name", m.name)
    m.description = body.get("description", m.description)
    return 200, model_doc(t, m)

def delete_model(t: TailoredState, request, body, rule, model_id):
    m = t.model(model_id)
    if t.model_status(m, time.monotonic()) in ("InProgress", "Stopping"):
        raise Refused(409, "Cannot delete a model that is currently in training")
    del t.models[m.id]
    return 204, None

def start_training(t: TailoredState, request, body, rule, model_id):
    m = t.model(model_id)
    if t.model_status(m, time.monotonic()) != "Created":
        raise Refused(409, "Training already started/cannot be resumed")
    d = t.datasets.get(m.dataset_id)
    if d is None or d["status"] != "completed":
        raise Refused(412, "Dataset status must be 'completed' to start training")
    m.status, m.started = "InProgress", time.monotonic()
    m.fail = rule is not None and rule.kind == "error"
    return 200, model_doc(t, m)

def stop_training(t: TailoredState, request, body, rule, model_id):
    m = t.model(model_id)
    if t.model_status(m, time.monotonic()) != "InProgress":
        raise Refused(409, "Training already stopped/not in training")
    m.status, m.stop_requested = "Stopping", time.monotonic()
    return 200, model_doc(t, m)

# --------------------------------------------------------------------------- generation
async def generate(t: TailoredState, request, body, rule, model_id, *, sim: Any, kind: str):
    m = t.model(model_id)
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

def gen_image(t: TailoredState, request, body, rule, model_id):
    return generate(request, body, rule, model_id, "image")
