"""What Bria's request builders share: Bria's media limits, media values as Bria wants them
(a URL unchanged, base64 without its ``data:`` prefix), and small helpers on params."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

from providers.base import MediaLimits, Permanent

MB = 1024 * 1024

# Input limits per media row, checked from the file's header (images) or container metadata
# (video) before anything decodes it (core/media.py; providers.base.MediaLimits):
# * every image input: 12 MB, JPEG/PNG/WEBP (004: "Max 12MB. Formats: jpeg, jpg, png, webp").
#   Neither 004 nor Bria's pages state a pixel limit for them, so a conservative one applies:
#   16.8 MP (4096×4096) and 8192 px on the longest side (Bria's largest stated image size).
# * upscale input: < 2 MP (004: "The input image should be less than 2 megapixels") and, as the
#   output is at most 8192×8192 (004), 4096 px on the longest side at the smallest factor (×2);
#   ×4 is checked per request (``_upscale_check``).
# * video: 16000×16000 (004: "Input resolution supported up to 16000x16000 (16K)"); 60 s (Bria's
#   published schema as relayed by Comfy Router and Cloudflare, not in 004 [unconfirmed]); 200 MB
#   (stated nowhere: our choice).
UPSCALE_MAX_OUTPUT_SIDE = 8192  # 004: maximum output 8192×8192
BRIA_IMAGE = MediaLimits(max_bytes=12 * MB, max_pixels=4096 * 4096, max_side=8192)
BRIA_UPSCALE_INPUT = MediaLimits(max_bytes=12 * MB, max_pixels=2_000_000, max_side=UPSCALE_MAX_OUTPUT_SIDE // 2)
BRIA_VIDEO = MediaLimits(max_bytes=200 * MB, max_pixels=16000 * 16000, max_side=16000, max_duration=60.0)


def strip_data_url(value: str) -> str:
    """``data:image/png;base64,AAAA`` → ``AAAA``; Bria wants the raw base64 string."""
    if value.startswith("data:") and "," in value:
        return value.split(",", 1)[1]
    return value


def drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


def raw(value: Any) -> Any:
    """A media value as Bria wants it: a URL unchanged, base64 without its data: prefix."""
    return value if not isinstance(value, str) or is_url(value) else strip_data_url(value)


def first(params: dict[str, Any], *fields: str) -> Any:
    """The first field that is set: 004's v1 convention, ``image_url`` wins over ``image_file``."""
    for name in fields:
        if params.get(name) is not None:
            return params[name]
    return None


def v1_image(value: Any, url_key: str = "image_url", file_key: str = "file") -> dict[str, Any]:
    if value is None:
        return {}
    return {url_key: value} if is_url(value) else {file_key: strip_data_url(value)}


def pick(params: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: params[n] for n in names if params.get(n) is not None}


def image_size(value: Any, field: str, limits: MediaLimits | None = None) -> tuple[int, int]:
    """Width and height of a base64 media value, read from its header: nothing is decoded. The
    worker has resolved URLs to base64 and checked the limits; they are checked again here so a
    builder never works on an image beyond them (a border mask is width × height bytes)."""
    if value is None or is_url(value):
        raise Permanent(f"{field} must be available as image data here (it was not fetched)", code="input_unavailable")
    try:
        with Image.open(io.BytesIO(base64.b64decode(strip_data_url(value)))) as img:  # header only
            width, height = img.size
    except Exception as exc:  # Pillow's own guard (DecompressionBomb*) included
        raise Permanent(f"{field} is not a readable image: {exc}", code="not_an_image") from None
    limits = limits or BRIA_IMAGE
    problem = limits.size_problem("image", width, height)
    if problem:
        code = "image_too_many_pixels" if width * height > limits.max_pixels else "image_too_large"
        raise Permanent(f"{field}: {problem}", code=code)
    return width, height


def png_b64(img: Image.Image) -> str:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
