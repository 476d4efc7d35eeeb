"""OpenAI's three endpoints of the reference, mapped onto the OpenAI Images API.

| path under /api/v1/openai | OpenAI call |
|---|---|
| `POST /image/generation/generate-image` | `POST /v1/images/generations` (JSON) |
| `POST /image/editing-generation/edit-image` | `POST /v1/images/edits` (multipart `image`) |
| `POST /image/editing-generation/inpaint` | `POST /v1/images/edits` (multipart `image` + `mask`; a border-only mask is ours) |

Every call is a job (persisted, queued, retried, billed one credit per image, batchable, visible
at ``GET /api/v1/jobs/{id}``). The reference gives these endpoints no status route: they answer
synchronously up to the sync deadline and past it 202 with ``status_url`` = the job view.
"""

from __future__ import annotations

import base64
from typing import Any

from providers.base import MB, Kind, MediaInput, MediaLimits, Operation
from providers.openai import schemas as S

TAG = "OpenAI Image Generation"

# OpenAI: png/webp/jpg "under 50 MB" per image, mask PNG "under 4 MB" (SDK docstrings,
# PROVIDERS.md §2.1). A request body is capped at 32 MiB here, so 25 MB per image; 16.8 MP /
# 8192 px as for every image we decode a header of.
OPENAI_IMAGE = MediaLimits(max_bytes=25 * MB, max_pixels=4096 * 4096, max_side=8192)
OPENAI_MASK = MediaLimits(max_bytes=4 * MB, max_pixels=4096 * 4096, max_side=8192)
FORMATS = ("PNG", "JPEG", "WEBP")


def images(params: dict[str, Any]) -> int:
    return int(params.get("number_of_images") or 1)


_SYNC = ("\n\nAnswered synchronously (up to the server's sync deadline; then 202 with `status_url`, the job "
         "view). `result`: `image_url`, `urls` (one per image; signed, expiring), `expires_at`.")

OPERATIONS = [
    Operation(name="openai.generate_image", provider="openai", method="POST",
              path="/api/v1/openai/image/generation/generate-image", request_model=S.GPTGenerateImageRequest,
              kind=Kind.JOB, summary="Gpt Generate Image", tags=(TAG,), cost=images,
              description="GPT image generation (OpenAI `POST /v1/images/generations`)." + _SYNC),
    Operation(name="openai.edit_image", provider="openai", method="POST",
              path="/api/v1/openai/image/editing-generation/edit-image", request_model=S.GPTEditImageRequest,
              kind=Kind.JOB, summary="Gpt Generate Edit", tags=(TAG,), cost=images,
              description="GPT image editing (OpenAI `POST /v1/images/edits`)." + _SYNC,
              inputs=(MediaInput("image_url", limits=OPENAI_IMAGE, formats=FORMATS),)),
    Operation(name="openai.inpaint", provider="openai", method="POST",
              path="/api/v1/openai/image/editing-generation/inpaint", request_model=S.GPTInpaintingRequest,
              kind=Kind.JOB, summary="Gpt Image Inpainting", tags=(TAG,), cost=images,
              description=("GPT inpainting (OpenAI `POST /v1/images/edits` with a mask). `image_url` or "
                           "`image_file`; `mask_url` or `mask_file` (white = the area to repaint, or a PNG whose "
                           "transparent pixels mark it) unless `inpaint_border_only`, where the gateway "
                           "builds a mask whose outer `border_percentage` is repainted." + _SYNC),
              inputs=(MediaInput("image_url", limits=OPENAI_IMAGE, formats=FORMATS),
                      MediaInput("image_file", limits=OPENAI_IMAGE, formats=FORMATS),
                      MediaInput("mask_url", limits=OPENAI_MASK, formats=FORMATS),
                      MediaInput("mask_file", limits=OPENAI_MASK, formats=FORMATS))),
]


def short_name(op: Operation) -> str:
    """``openai.edit_image`` → ``edit-image`` (the adapter's operation names)."""
    return op.name.split(".", 1)[1].replace("_", "-")


def media_of(params: dict[str, Any]) -> tuple[list[bytes], bytes | None]:
    """The input images and the mask, as the worker resolved them (raw base64): a URL wins over
    the file, as everywhere in the reference's v1 fields."""
    image = params.get("image_url") or params.get("image_file")
    mask = params.get("mask_url") or params.get("mask_file")
    return ([base64.b64decode(image)] if image else []), (base64.b64decode(mask) if mask else None)
