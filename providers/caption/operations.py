"""The two caption endpoints of the reference (``/api/v1/caption/image``, ``/caption/video``).

``caption/image``: the worker fetches ``image_url`` (SSRF-safe, checked from its header like every
image input) and the text model sees the image. ``mode``: ``simple`` (one sentence), ``expert``
(a detailed description: subject, composition, lighting, colours, style, text in the image),
``image_tagging`` (``nbr_tags`` tags, chosen from ``possible_tags`` when given).
``caption/video`` (Gemini only, as the reference says): the worker fetches ``video_url``
(checked from the container's metadata), samples frames evenly and sends them with their times;
its seven modes ask for a caption, a description, tags or timed segments.

The result (the reference gives none; ours, docs/providers/caption.md): ``{"text", "tags"?,
"segments"?, "mode", "provider", "model", "temperature", "usage", "expires_at"}``.
"""

from __future__ import annotations

from typing import Any

from providers.base import MB, Kind, MediaInput, MediaLimits, Operation
from providers.caption import schemas_gen as S

TAG = "Media Captioning"

# OpenAI takes images up to 50 MB and Gemini inline data up to 20 MB per request; both work at
# about 1–2 MP. The image is sent as fetched, so it must fit Gemini's request: 16 MB.
CAPTION_IMAGE = MediaLimits(max_bytes=16 * MB, max_pixels=4096 * 4096, max_side=8192)
# Frames are sampled from the video in the worker: the bytes are held in memory once; 100 MB,
# 10 minutes and 4K bound that work.
CAPTION_VIDEO = MediaLimits(max_bytes=100 * MB, max_pixels=3840 * 2160, max_side=3840, max_duration=600.0)

_DOC = ("Answered synchronously (up to the server's sync deadline; then 202 with a status_url at "
        "GET /api/v1/jobs/{id}). `result`: `text`, `tags` (tagging modes), `segments` (timestamp modes), "
        "`mode`, `provider`, `model`, `temperature`, `usage`, `expires_at`.")

OPERATIONS = [
    Operation(name="caption.image", provider="caption", method="POST", path="/api/v1/caption/image",
              request_model=S.ImageCaptionRequest, kind=Kind.JOB, summary="Caption Image", tags=(TAG,),
              output="text", cost=lambda _p: 1, description=_DOC,
              inputs=(MediaInput("image_url", kind="image", limits=CAPTION_IMAGE),)),
    Operation(name="caption.video", provider="caption", method="POST", path="/api/v1/caption/video",
              request_model=S.VideoCaptionRequest, kind=Kind.JOB, summary="Caption Video", tags=(TAG,),
              output="text", cost=lambda _p: 1, description=_DOC,
              inputs=(MediaInput("video_url", kind="video", formats=(), as_data=True, limits=CAPTION_VIDEO),)),
]

SYSTEM = ("You describe images and videos for a media library. Describe only what is visible; never guess "
          "names, brands or places that are not shown.")

IMAGE_MODES: dict[str, str] = {
    "simple": "Write a one-sentence caption of this image.",
    "expert": ("Describe this image in detail for a professional: subject, composition, lighting, colours, "
               "style and any text in it. One paragraph."),
}

VIDEO_MODES: dict[str, str] = {
    "simple": "Write a one-sentence caption of this video.",
    "expert": "Describe this video for a professional: subjects, action, camera, lighting, colours, style.",
    "detailed": "Describe this video in detail, scene by scene, in one paragraph per scene.",
}


def tags_schema(count: int, choices: list[str] | None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "string"}
    if choices:
        item["enum"] = list(dict.fromkeys(choices))
    return {"type": "object", "properties": {"tags": {"type": "array", "items": item, "minItems": 1,
                                                      "maxItems": count}},
            "required": ["tags"], "additionalProperties": False}


def segments_schema(with_tags: bool, count: int) -> dict[str, Any]:
    segment: dict[str, Any] = {"start_seconds": {"type": "number"}, "end_seconds": {"type": "number"},
                               "description": {"type": "string"}}
    if with_tags:
        segment["tags"] = {"type": "array", "items": {"type": "string"}, "maxItems": count}
    return {"type": "object", "properties": {"segments": {"type": "array", "items": {
        "type": "object", "properties": segment, "required": list(segment), "additionalProperties": False}}},
        "required": ["segments"], "additionalProperties": False}
