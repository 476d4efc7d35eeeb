"""Vision Studio's OpenAI requests → OpenAI calls.

``params`` are the validated request's fields. The media they referenced (``image_url`` /
``image_file``, ``mask_url`` / ``mask_file``) arrive separately as raw bytes, already fetched and
checked against the intake limits by the gateway, so the builders never guess which field holds
what.

* generate-image → ``POST /images/generations``: ``model`` always (OpenAI's default is
  ``dall-e-2``), ``n ← number_of_images``, ``size`` from ``aspect_ratio``, ``quality`` and
  ``background`` passed through; a transparent background forces ``output_format=png``.
* edit-image → ``POST /images/edits``: the image(s), ``prompt``, ``n``, ``size``.
* inpaint → ``POST /images/edits`` with one image and a mask; no ``size`` is sent, so the model
  picks the supported size nearest the input's shape (``auto``).

**Mask convention.** OpenAI edits where the mask's alpha is 0 and keeps where it is opaque; the
mask must be a PNG of the image's size. Vision Studio documents the same ("the transparent areas
of the mask will be replaced"), so a mask that carries transparency is used as is. A mask
without transparency (greyscale, RGB, or RGBA that is opaque everywhere) is read as a black and
white mask where **white marks the area to edit**: the usual convention of painted masks, and
the one the Bria provider sends (its border mask is a white frame around a black centre). It is
converted to RGBA with alpha 0 where the luminance is ≥ 128 and 255 elsewhere. A mask of the
image's shape but another resolution is scaled to the image's size (nearest neighbour); any other
size is refused.

Sizes are read from image headers only (``Image.open(...).size``): the input image is never
decoded. Masks are decoded only when they must be converted, and border masks are written row by
row, so building one costs a row's memory, not the image's.
"""

from __future__ import annotations

import enum
import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Iterator

from PIL import Image

from providers.base import Permanent

ImageFile = tuple[str, bytes, str]  # (file name, bytes, media type)

SIZES: dict[str, str] = {"1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"}
DEFAULT_BORDER_PERCENTAGE = 0.05  # 004's default for border_percentage
MAX_EDIT_IMAGES = 16  # GPT image models take up to 16 input images
MAX_IMAGE_BYTES = 50 * 1024 * 1024  # each input image under 50 MB
MAX_MASK_BYTES = 4 * 1024 * 1024  # the mask under 4 MB
EDIT_FORMATS: dict[str, tuple[str, str]] = {  # Pillow format → (extension, media type)
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
}


@dataclass(frozen=True)
class EditCall:
    """The parts of one ``/images/edits`` request (see ``OpenAIClient.images_edit``)."""

    fields: dict[str, Any]
    images: list[ImageFile]
    mask: ImageFile | None = None


# --------------------------------------------------------------------------- requests
def _text(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def size_for_ratio(aspect_ratio: Any) -> str:
    """``"3:2"`` → ``"1536x1024"``; the three ratios 004 allows."""
    ratio = _text(aspect_ratio) or "1:1"
    try:
        return SIZES[ratio]
    except KeyError:
        raise Permanent(f"aspect_ratio must be one of {', '.join(SIZES)} (got {ratio!r})",
                        code="invalid_aspect_ratio") from None


def _count(params: dict[str, Any]) -> int:
    return int(params.get("number_of_images") or 1)


def generate_body(params: dict[str, Any], model: str) -> dict[str, Any]:
    """The JSON body of ``/images/generations`` for a generate-image request."""
    background = _text(params.get("background")) or "auto"
    body: dict[str, Any] = {
        "model": model,
        "prompt": params["prompt"],
        "n": _count(params),
        "size": size_for_ratio(params.get("aspect_ratio")),
        "quality": _text(params.get("quality")) or "auto",
        "background": background,
    }
    if background == "transparent":
        body["output_format"] = "png"  # transparency needs png or webp; png keeps it lossless
    return body


def edit_call(params: dict[str, Any], images: list[bytes], model: str) -> EditCall:
    """An edit-image request: every image is an input (OpenAI takes up to 16)."""
    if not images:
        raise Permanent("edit-image needs an input image", code="image_required")
    if len(images) > MAX_EDIT_IMAGES:
        raise Permanent(f"at most {MAX_EDIT_IMAGES} input images are accepted (got {len(images)})",
                        code="too_many_images")
    fields = {"model": model, "prompt": params["prompt"], "n": _count(params),
              "size": size_for_ratio(params.get("aspect_ratio"))}
    return EditCall(fields, [image_file(data, index) for index, data in enumerate(images, start=1)])


def inpaint_call(params: dict[str, Any], image: bytes | None, mask: bytes | None, model: str) -> EditCall:
    """An inpaint request: one image and a mask, either given (and converted to OpenAI's form
    when needed) or, with ``inpaint_border_only``, a transparent frame of ``border_percentage``."""
    if not image:
        raise Permanent("inpaint needs an input image (image_url or image_file)", code="image_required")
    source = image_file(image, 1)
    width, height = image_size(image, "image")
    if params.get("inpaint_border_only"):
        fraction = params.get("border_percentage")
        mask_png = border_mask(width, height, DEFAULT_BORDER_PERCENTAGE if fraction is None else float(fraction))
    elif mask is None:
        raise Permanent("mask_url or mask_file is required unless inpaint_border_only is true", code="mask_required")
    else:
        mask_png = prepare_mask(mask, (width, height))
    if len(mask_png) > MAX_MASK_BYTES:
        raise Permanent(f"the mask is {len(mask_png)} bytes as PNG; OpenAI accepts under {MAX_MASK_BYTES}",
                        code="mask_too_large")
    fields: dict[str, Any] = {"model": model, "prompt": params["prompt"]}
    if params.get("number_of_images"):
        fields["n"] = _count(params)
    return EditCall(fields, [source], ("mask.png", mask_png, "image/png"))


# --------------------------------------------------------------------------- images
def image_header(data: bytes, what: str = "image") -> tuple[str, int, int]:
    """``(format, width, height)`` read from the header; nothing is decoded."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return str(img.format), img.size[0], img.size[1]
    except Exception as exc:  # Pillow's own guard (DecompressionBomb*) included
        raise Permanent(f"the {what} is not a readable image: {exc}", code="invalid_image") from None


def image_size(data: bytes, what: str = "image") -> tuple[int, int]:
    _, width, height = image_header(data, what)
    return width, height


def image_file(data: bytes, index: int) -> ImageFile:
    """An input image as a multipart file part; only PNG, JPEG and WebP are accepted upstream."""
    fmt, _, _ = image_header(data)
    if fmt not in EDIT_FORMATS:
        raise Permanent(f"image {index} is {fmt}; OpenAI edits accept PNG, JPEG and WebP", code="invalid_image")
    if len(data) >= MAX_IMAGE_BYTES:
        raise Permanent(f"image {index} is {len(data)} bytes; OpenAI accepts under {MAX_IMAGE_BYTES}",
                        code="image_too_large")
    extension, media_type = EDIT_FORMATS[fmt]
    return f"image_{index}.{extension}", data, media_type


def _same_shape(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[0] * b[1] - a[1] * b[0]) <= 0.01 * a[0] * b[1]


def _transparency(img: Image.Image) -> Image.Image | None:
    """The alpha band when the image has transparency data, else ``None``."""
    if img.mode in ("RGBA", "LA", "PA") or img.has_transparency_data:
        return img.convert("RGBA").getchannel("A")
    return None


def prepare_mask(mask: bytes, size: tuple[int, int]) -> bytes:
    """The mask as OpenAI wants it: an RGBA PNG of ``size`` whose alpha is 0 where to edit (see
    the module docstring for how masks without transparency are read). A mask that is already
    such a PNG is returned unchanged."""
    fmt, mask_w, mask_h = image_header(mask, "mask")
    width, height = size
    if (mask_w, mask_h) != size and not _same_shape((mask_w, mask_h), size):
        raise Permanent(f"the mask is {mask_w}x{mask_h} but the image is {width}x{height}",
                        code="mask_size_mismatch")
    with Image.open(io.BytesIO(mask)) as img:
        alpha = _transparency(img)
        if alpha is not None and alpha.getextrema()[0] < 255:
            if fmt == "PNG" and img.mode == "RGBA" and img.size == size:
                return mask
        else:
            alpha = img.convert("L").point(lambda v: 0 if v >= 128 else 255)
    if alpha.getextrema()[0] == 255:  # only a luminance mask can get here fully opaque
        raise Permanent("the mask marks no area to edit (no transparent or white pixels)", code="empty_mask")
    if alpha.size != size:
        alpha = alpha.resize(size, Image.Resampling.NEAREST)
    out = Image.new("RGBA", size, (0, 0, 0, 255))
    out.putalpha(alpha)
    buffer = io.BytesIO()
    out.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


# --------------------------------------------------------------------------- border masks
def border_mask(width: int, height: int, fraction: float) -> bytes:
    """An RGBA PNG of ``width`` x ``height`` whose outer band is transparent (alpha 0: edit) and
    whose centre is opaque black (keep). The band is ``fraction`` of the width on the left and
    right and ``fraction`` of the height at the top and bottom (at least one pixel), as in the
    Bria provider's border mask. Written row by row: memory is one row, whatever the size."""
    if width < 1 or height < 1:
        raise ValueError(f"invalid mask size {width}x{height}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    dx, dy = max(1, round(width * fraction)), max(1, round(height * fraction))
    clear = b"\x00" * (4 * width)
    inner = max(0, width - 2 * dx)
    middle = b"\x00\x00\x00\x00" * min(dx, width) + b"\x00\x00\x00\xff" * inner
    middle += b"\x00\x00\x00\x00" * (width - len(middle) // 4)

    def rows() -> Iterator[bytes]:
        for y in range(height):
            yield middle if dy <= y < height - dy and inner else clear

    return png_rgba(width, height, rows())


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_rgba(width: int, height: int, rows: Iterator[bytes], *, flush_bytes: int = 1 << 20) -> bytes:
    """Encode 8-bit RGBA rows (``4 * width`` bytes each) as a PNG, streaming through zlib."""
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))]
    compressor = zlib.compressobj(6)
    pending: list[bytes] = []
    size = 0
    for row in rows:
        piece = compressor.compress(b"\x00" + row)  # filter type 0 (None)
        if piece:
            pending.append(piece)
            size += len(piece)
        if size >= flush_bytes:
            out.append(_chunk(b"IDAT", b"".join(pending)))
            pending, size = [], 0
    pending.append(compressor.flush())
    out.append(_chunk(b"IDAT", b"".join(pending)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)
