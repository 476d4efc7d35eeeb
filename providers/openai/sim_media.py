"""Image side of the OpenAI simulator: request checks in OpenAI's terms, real images, analysis.

* ``parse_image_request`` checks the fields of ``/images/generations`` and ``/images/edits`` the
  way OpenAI does for GPT image models and raises ``SimError`` (OpenAI's 400 shape) otherwise.
* ``generate`` / ``edit`` make real images: generated ones come from the Bria simulator's
  renderer (``providers/simulator/render.py``) scaled to the requested size, on a transparent
  canvas when asked; edits start from the first input image and repaint where the mask is
  transparent (the whole image, half-blended, without a mask).
* ``describe_image`` measures what an image shows (size, orientation, dominant colours,
  transparency) for the chat simulator's captions.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageOps

from providers.simulator.render import ASPECT_RATIOS, parse_ratio, render_png

GPT_SIZES = ("1024x1024", "1536x1024", "1024x1536")
QUALITIES = ("low", "medium", "high", "auto")
BACKGROUNDS = ("transparent", "opaque", "auto")
OUTPUT_FORMATS = ("png", "jpeg", "webp")
INPUT_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
MAX_INPUT_IMAGES = 16
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_MASK_BYTES = 4 * 1024 * 1024
EDIT_DEFAULT_MODEL = "gpt-image-1.5"  # the SDK's documented default for edits
# Output tokens per image for a 1024x1024 picture (larger sizes scale with their area).
OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
IMAGE_INPUT_TOKENS = 323


class SimError(Exception):
    """An OpenAI error answer: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = "invalid_value",
                 status: int = 400, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.kind = message, param, code, status, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class ImageRequest:
    prompt: str
    model: str
    n: int
    size: tuple[int, int] | None  # None: "auto"
    quality: str
    background: str
    output_format: str
    compression: int | None
    inputs: list[bytes] = field(default_factory=list)
    mask: bytes | None = None

    @property
    def transparent(self) -> bool:
        return self.background == "transparent"


def _choice(fields: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = fields.get(name)
    if value is None or value == "":
        return default
    if value not in allowed:
        listed = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"
        raise SimError(f"Invalid value: '{value}'. Supported values are: {listed}.", param=name)
    return str(value)


def _integer(fields: dict[str, Any], name: str, low: int, high: int, default: int | None) -> int | None:
    value = fields.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
        if isinstance(value, float) or isinstance(value, bool):
            raise ValueError
    except (TypeError, ValueError):
        raise SimError(f"Invalid type for '{name}': expected an integer, but got {value!r} instead.",
                       param=name, code="invalid_type") from None
    if number < low:
        raise SimError(f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but got "
                       f"{number} instead.", param=name, code="integer_below_min_value")
    if number > high:
        raise SimError(f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, but got "
                       f"{number} instead.", param=name, code="integer_above_max_value")
    return number


def parse_image_request(fields: dict[str, Any], *, edit: bool) -> ImageRequest:
    """The checked fields of one images call (JSON values, or multipart text values)."""
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SimError("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if len(prompt) > 32000:
        raise SimError("Invalid 'prompt': string too long. Expected a string with maximum length 32000.",
                       param="prompt", code="string_above_max_length")
    model = fields.get("model") or (EDIT_DEFAULT_MODEL if edit else "dall-e-2")
    if not str(model).startswith(("gpt-image", "chatgpt-image")):
        raise SimError(f"The simulator serves GPT image models only; this request uses '{model}' (OpenAI "
                       "falls back to dall-e-2 when 'model' is not sent).", param="model", code="unsupported_model")
    size = _choice(fields, "size", (*GPT_SIZES, "auto"), "auto")
    request = ImageRequest(
        prompt=prompt, model=str(model), n=_integer(fields, "n", 1, 10, 1) or 1,
        size=None if size == "auto" else tuple(int(v) for v in size.split("x")),  # type: ignore[arg-type]
        quality=_choice(fields, "quality", QUALITIES, "auto"),
        background=_choice(fields, "background", BACKGROUNDS, "auto"),
        output_format=_choice(fields, "output_format", OUTPUT_FORMATS, "png"),
        compression=_integer(fields, "output_compression", 0, 100, None),
    )
    if request.transparent and request.output_format == "jpeg":
        raise SimError("Transparent background is not supported for the jpeg output format; use png or webp.",
                       param="background")
    if edit:
        _choice(fields, "input_fidelity", ("high", "low"), "low")
    return request


def check_edit_inputs(request: ImageRequest, images: list[bytes], mask: bytes | None) -> None:
    """OpenAI's rules for edit inputs, read from the headers: 1–16 PNG/JPEG/WebP images under
    50 MB; the mask a PNG with an alpha channel, under 4 MB, of the first image's size."""
    if not images:
        raise SimError("Missing required parameter: 'image'.", param="image", code="missing_required_parameter")
    if len(images) > MAX_INPUT_IMAGES:
        raise SimError(f"Invalid 'image': array too long. Expected an array with maximum length "
                       f"{MAX_INPUT_IMAGES}, but got {len(images)} instead.", param="image",
                       code="array_above_max_length")
    first_size = None
    for data in images:
        fmt, size, _ = image_header(data, "image")
        if fmt not in INPUT_FORMATS or len(data) >= MAX_IMAGE_BYTES:
            raise SimError(f"Invalid file 'image': unsupported mimetype or size ({fmt}, {len(data)} bytes). Supported "
                           "file formats are 'image/jpeg', 'image/png', and 'image/webp', under 50 MB.",
                           param="image", code="unsupported_file_mimetype")
        first_size = first_size or size
    if mask is not None:
        fmt, size, has_alpha = image_header(mask, "mask")
        if fmt != "PNG":
            raise SimError(f"Invalid mask image format - mask must be a PNG file (got {fmt}).", param="mask")
        if not has_alpha:
            raise SimError("Invalid mask image - the mask must have an alpha channel (transparent areas are "
                           "edited).", param="mask")
        if size != first_size:
            raise SimError(f"Invalid mask image - mask size {size[0]}x{size[1]} does not match the image size "
                           f"{first_size[0]}x{first_size[1]}.", param="mask")  # type: ignore[index]
        if len(mask) >= MAX_MASK_BYTES:
            raise SimError("Invalid mask image - the mask must be under 4 MB.", param="mask")
    request.inputs, request.mask = images, mask


def image_header(data: bytes, what: str) -> tuple[str, tuple[int, int], bool]:
    try:
        with Image.open(io.BytesIO(data)) as img:
            alpha = img.mode in ("RGBA", "LA", "PA") or img.has_transparency_data
            return str(img.format), img.size, alpha
    except Exception:
        raise SimError(f"Invalid {what} file: the file could not be read as an image.", param=what,
                       code="invalid_image_file") from None


def usage(request: ImageRequest, size: tuple[int, int]) -> dict[str, Any]:
    quality = "medium" if request.quality == "auto" else request.quality
    per_image = round(OUTPUT_TOKENS[quality] * size[0] * size[1] / (1024 * 1024))
    text_tokens = max(1, len(request.prompt) // 4)
    image_tokens = IMAGE_INPUT_TOKENS * len(request.inputs)
    output = per_image * request.n
    return {"input_tokens": text_tokens + image_tokens, "output_tokens": output,
            "total_tokens": text_tokens + image_tokens + output,
            "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens}}


# --------------------------------------------------------------------------- images
def closest_ratio(width: int, height: int) -> str:
    target = math.log(width / height)
    return min(ASPECT_RATIOS, key=lambda r: abs(math.log(parse_ratio(r)) - target))


def painting(prompt: str, index: int, size: tuple[int, int]) -> Image.Image:
    """The simulator's picture for ``prompt`` (image ``index`` of a call), at ``size``, RGBA."""
    img = Image.open(io.BytesIO(render_png(prompt, index, closest_ratio(*size)))).convert("RGBA")
    return img if img.size == size else img.resize(size, Image.Resampling.BILINEAR)


def generate(request: ImageRequest, index: int) -> bytes:
    size = request.size or (1024, 1024)
    img = painting(request.prompt, index, size)
    if request.transparent:  # the subject (an ellipse of the picture) on a fully transparent canvas
        canvas = Image.new("RGBA", size, (0, 0, 0, 0))
        shape = Image.new("L", size, 0)
        w, h = size
        ImageDraw.Draw(shape).ellipse((w * 0.2, h * 0.2, w * 0.8, h * 0.8), fill=255)
        canvas.paste(img, (0, 0), shape)
        return encode(canvas, request)
    return encode(img.convert("RGB"), request)


def edit(request: ImageRequest, index: int) -> bytes:
    """Image ``index`` of an edit: the first input at the output size (the requested size, else
    the input's), repainted where the mask's alpha is 0 (everywhere, half-blended, without a
    mask); further inputs appear as thumbnails along the bottom edge."""
    with Image.open(io.BytesIO(request.inputs[0])) as first:
        had_alpha = first.mode in ("RGBA", "LA", "PA") or first.has_transparency_data
        base = first.convert("RGBA")
    size = request.size or base.size
    if base.size != size:
        base = base.resize(size, Image.Resampling.BILINEAR)
    painted = painting(request.prompt, index, size)
    if request.mask is not None:
        with Image.open(io.BytesIO(request.mask)) as mask:
            alpha = mask.convert("RGBA").getchannel("A")
        if alpha.size != size:
            alpha = alpha.resize(size, Image.Resampling.NEAREST)
        result = Image.composite(painted, base, ImageOps.invert(alpha))
    else:
        result = Image.blend(base, painted, 0.5)
    thumb_side = max(16, min(size) // 6)
    for k, data in enumerate(request.inputs[1:]):
        with Image.open(io.BytesIO(data)) as extra:
            extra.draft("RGB", (thumb_side, thumb_side))
            thumb = extra.convert("RGBA")
        thumb.thumbnail((thumb_side, thumb_side))
        x = min(k * thumb_side, max(0, size[0] - thumb.size[0]))
        result.alpha_composite(thumb, (x, max(0, size[1] - thumb.size[1])))
    keep_alpha = request.transparent or (had_alpha and request.background != "opaque")
    return encode(result if keep_alpha else result.convert("RGB"), request)


def encode(img: Image.Image, request: ImageRequest) -> bytes:
    buffer = io.BytesIO()
    quality = 90 if request.compression is None else max(1, request.compression)
    if request.output_format == "jpeg":
        img.convert("RGB").save(buffer, format="JPEG", quality=quality)
    elif request.output_format == "webp":
        img.save(buffer, format="WEBP", quality=quality)
    else:
        img.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


# --------------------------------------------------------------------------- analysis
COLOUR_NAMES: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "silver": (192, 192, 192),
    "red": (220, 30, 30), "dark red": (128, 0, 0), "orange": (255, 140, 0), "yellow": (250, 220, 40),
    "olive": (128, 128, 0), "green": (40, 170, 60), "dark green": (0, 90, 30), "teal": (0, 128, 128),
    "cyan": (0, 220, 230), "blue": (30, 80, 220), "navy": (0, 0, 110), "purple": (128, 40, 160),
    "magenta": (230, 0, 200), "pink": (255, 170, 200), "brown": (130, 80, 30), "beige": (225, 205, 160),
}


def colour_name(rgb: tuple[int, int, int]) -> str:
    return min(COLOUR_NAMES, key=lambda name: sum((a - b) ** 2 for a, b in zip(rgb, COLOUR_NAMES[name])))


def describe_image(data: bytes) -> dict[str, Any]:
    """``{format, width, height, orientation, colours, transparent_share}`` of an image: the
    colours are the names of the most common ones among its visible pixels (up to three, each
    covering at least 5 % of them), measured on a thumbnail."""
    with Image.open(io.BytesIO(data)) as img:
        fmt, (width, height) = str(img.format), img.size
        img.draft("RGB", (96, 96))  # JPEG: decode at reduced scale
        small = img.convert("RGBA")
    small.thumbnail((48, 48))
    counts: dict[str, int] = {}
    raw = small.tobytes()  # RGBA, 4 bytes a pixel
    pixels = [raw[i:i + 4] for i in range(0, len(raw), 4)]
    visible = [(p[0], p[1], p[2]) for p in pixels if p[3] >= 128]
    for rgb in visible:
        name = colour_name(rgb)
        counts[name] = counts.get(name, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    colours = [name for name, count in ranked if count >= 0.05 * len(visible)][:3]
    orientation = "square" if abs(width - height) <= 0.02 * max(width, height) else (
        "landscape" if width > height else "portrait")
    return {"format": fmt, "width": width, "height": height, "orientation": orientation, "colours": colours,
            "transparent_share": round(1 - len(visible) / max(1, len(pixels)), 3)}
