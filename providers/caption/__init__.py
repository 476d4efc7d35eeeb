"""Captions of images and videos (``/api/v1/caption/…``) from OpenAI or Gemini vision models.

``PLUGIN`` is what ``providers/registry.py`` lists; the calls use the OpenAI and Google
settings and simulators (see ``providers/prompt/backends.py``)."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

from PIL import Image as PILImage

from providers.base import Finished, Operation, Permanent
from providers.caption.frames import sample_frames
from providers.caption.operations import (IMAGE_MODES, OPERATIONS, SYSTEM, VIDEO_MODES, segments_schema,
                                          tags_schema)
from providers.plugin import Dialect, Plugin, UpstreamDefaults
from providers.prompt.backends import TextSettings, text_models
from providers.prompt.llm import Image, TextModels


def _image(b64: str) -> Image:
    data = base64.b64decode(b64)
    with PILImage.open(io.BytesIO(data)) as img:  # header only: the format
        mime = PILImage.MIME.get(img.format or "", "image/jpeg")
    return Image(data, mime)


class CaptionProvider:
    """The ``AsyncProvider`` of the captions: one vision-model call per job."""

    name = "caption"

    def __init__(self, models: TextModels, max_in_flight: int):
        self.models = models
        self.max_in_flight = max_in_flight

    async def run(self, op: Operation, params: dict[str, Any]) -> Finished:
        mode = str(params.get("mode") or "simple")
        count = int(params.get("nbr_tags") or 5)
        if op.name == "caption.image":
            provider = str(params.get("model_provider") or "openai")
            images = [_image(params["image_url"])]
            note = ""
        else:
            provider = "gemini"  # the reference: Gemini only
            frames = await asyncio.to_thread(sample_frames, base64.b64decode(params["video_url"]))
            if not frames:
                raise Permanent("video_url: the video has no decodable frame", code="not_a_video")
            images = [Image(jpeg, "image/jpeg") for _, jpeg in frames]
            note = " Frames in order, at " + ", ".join(f"{t:g} s" for t, _ in frames) + "."
        temperature = 0.2
        if mode in ("image_tagging", "tagging"):
            answer = await self.models.complete(
                provider, system=SYSTEM, temperature=temperature, images=images, schema_name="tags",
                schema=tags_schema(count, params.get("possible_tags")),
                text=f"Give {count} tags for this {'image' if note == '' else 'video'}.{note}"
                     + (" Choose only from the allowed tags." if params.get("possible_tags") else ""))
            tags = [str(t) for t in (answer.pop("json") or {}).get("tags", [])][:count]
            answer.update(tags=tags, text=", ".join(tags))
        elif mode.startswith("segment_timestamps"):
            answer = await self.models.complete(
                provider, system=SYSTEM, temperature=temperature, images=images, schema_name="segments",
                schema=segments_schema(mode.endswith("_tags"), count),
                text="Split this video into its scenes with their start and end times in seconds"
                     + (", each with a detailed description" if mode.endswith("descriptive") else "")
                     + (f" and up to {count} tags" if mode.endswith("_tags") else "") + "." + note)
            segments = (answer.pop("json") or {}).get("segments", [])
            answer.update(segments=segments, text=" ".join(str(s.get("description", "")) for s in segments
                                                           if isinstance(s, dict)).strip())
        else:
            modes = IMAGE_MODES if op.name == "caption.image" else VIDEO_MODES
            answer = await self.models.complete(provider, system=SYSTEM, temperature=temperature, images=images,
                                                text=modes.get(mode, modes["simple"]) + note)
        answer["mode"] = mode
        return Finished([], answer)

    async def aclose(self) -> None:
        await self.models.aclose()


def build(settings: TextSettings, defaults: UpstreamDefaults) -> CaptionProvider:
    return CaptionProvider(text_models(defaults), settings.max_in_flight)


PLUGIN = Plugin(
    name="caption",
    operations=tuple(OPERATIONS),
    settings=TextSettings,
    build=build,
    dialect=Dialect(always_sync=True),
    upstream_limits={"rpm": 3000, "concurrency": None},
    docs="docs/providers/caption.md",
)
