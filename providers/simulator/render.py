"""Deterministic placeholder images for the Bria simulator.

The simulator must hand back *real* images so the whole pipeline (download, storage, content-type
sniffing, thumbnails, size checks) is exercised exactly as with Bria. Two properties matter:

* **Determinism** – the same ``(prompt, seed, aspect_ratio, resolution)`` always yields the same
  PNG bytes (no timestamps, no metadata chunks, fixed zlib settings), so tests can compare bytes
  and a reused seed reproduces an image, as it does upstream.
* **Plausible geometry** – Bria's models are "1K" models: outputs are about one megapixel in the
  requested aspect ratio ("4MP" for the high-resolution option). ``size_for`` picks dimensions
  that are multiples of 16, within 1 % of the requested ratio and within 10 % of the target area.

The picture itself is a two-colour gradient with translucent shapes and the prompt written on it;
every choice is drawn from a SHA-256 of the inputs, so a different seed gives a different image.
"""

from __future__ import annotations

import hashlib
import io
import random
import textwrap
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps

# The nine ratios Bria's image endpoints accept (docs.bria.ai, image generation pages).
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9")

# Target pixel counts for Bria's ``resolution`` option ("1MP" is the default).
RESOLUTION_AREAS: dict[str, int] = {"1MP": 1024 * 1024, "2MP": 2 * 1024 * 1024, "4MP": 2048 * 2048}

_STEP = 16  # latent-diffusion models work on 8/16-pixel blocks; stay on that grid
_MAX_RATIO_ERROR = 0.01
_MAX_AREA_ERROR = 0.10


def parse_ratio(aspect_ratio: str) -> float:
    """``"16:9"`` → ``1.777…``; raises ``ValueError`` for anything else."""
    w, sep, h = aspect_ratio.partition(":")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) == 0 or int(h) == 0:
        raise ValueError(f"invalid aspect ratio {aspect_ratio!r}")
    return int(w) / int(h)


@lru_cache(maxsize=64)
def size_for(aspect_ratio: str, resolution: str = "1MP") -> tuple[int, int]:
    """Width and height for an aspect ratio at Bria's resolution (multiples of 16).

    Searches the 16-pixel grid for the size that best matches both the ratio and the target
    area, weighting the ratio ten times more (a client asked for a shape, not a pixel count).
    """
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValueError(f"unsupported aspect ratio {aspect_ratio!r}; expected one of {ASPECT_RATIOS}")
    if resolution not in RESOLUTION_AREAS:
        raise ValueError(f"unsupported resolution {resolution!r}; expected one of {tuple(RESOLUTION_AREAS)}")
    ratio = parse_ratio(aspect_ratio)
    area = RESOLUTION_AREAS[resolution]
    best: tuple[float, int, int] | None = None
    for height in range(_STEP, 4 * int(area**0.5), _STEP):
        width = max(_STEP, round(height * ratio / _STEP) * _STEP)
        ratio_error = abs(width / height - ratio) / ratio
        area_error = abs(width * height - area) / area
        if ratio_error > _MAX_RATIO_ERROR or area_error > _MAX_AREA_ERROR:
            continue
        score = 10 * ratio_error + area_error
        if best is None or score < best[0]:
            best = (score, width, height)
    if best is None:  # cannot happen for the supported ratios; guards future additions
        raise ValueError(f"no {_STEP}-pixel size fits {aspect_ratio} at {resolution}")
    return best[1], best[2]


def _rng(prompt: str, seed: int, aspect_ratio: str) -> random.Random:
    digest = hashlib.sha256(f"{prompt}\x00{seed}\x00{aspect_ratio}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _colour(rng: random.Random, alpha: int | None = None) -> tuple[int, ...]:
    rgb = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    return rgb if alpha is None else (*rgb, alpha)


def _background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A two-colour linear gradient at a random angle.

    Built at 256×256 and scaled up, which is far cheaper than drawing it at full size: a 512-pixel
    gradient is rotated and its centre cropped, so no corner is left unfilled by the rotation.
    """
    gradient = Image.linear_gradient("L").resize((512, 512), Image.Resampling.BILINEAR)
    gradient = gradient.rotate(rng.uniform(0, 360), resample=Image.Resampling.BILINEAR).crop((128, 128, 384, 384))
    gradient = gradient.resize(size, Image.Resampling.BILINEAR)
    return ImageOps.colorize(gradient, _colour(rng), _colour(rng)).convert("RGBA")


def _shapes(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    width, height = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    unit = min(width, height)
    for _ in range(rng.randint(6, 14)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.3) * unit
        fill = _colour(rng, alpha=rng.randint(60, 170))
        kind = rng.choice(("ellipse", "rectangle", "polygon"))
        if kind == "ellipse":
            draw.ellipse((cx - r, cy - r * rng.uniform(0.5, 1.5), cx + r, cy + r), fill=fill)
        elif kind == "rectangle":
            draw.rounded_rectangle((cx - r, cy - r / 2, cx + r, cy + r / 2), radius=r / 5, fill=fill)
        else:
            draw.regular_polygon((cx, cy, r), n_sides=rng.randint(3, 8), rotation=rng.uniform(0, 360), fill=fill)
    return layer


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _caption(prompt: str, seed: int, size: tuple[int, int]) -> Image.Image:
    """The prompt (wrapped, at most four lines) and the seed on a translucent band at the bottom."""
    width, height = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font_size = max(12, min(width, height) // 24)
    font = _font(font_size)
    chars_per_line = max(10, int(width / (font_size * 0.55)))
    lines = textwrap.wrap(prompt, chars_per_line)[:4] or [""]
    lines.append(f"seed {seed}")
    line_height = int(font_size * 1.3)
    band_top = height - line_height * len(lines) - font_size
    draw.rectangle((0, band_top, width, height), fill=(0, 0, 0, 140))
    for i, line in enumerate(lines):
        position = (font_size // 2, band_top + font_size // 2 + i * line_height)
        draw.text(position, line, font=font, fill=(255, 255, 255, 235))
    return layer


@lru_cache(maxsize=16)  # deterministic, so identical requests (load tests, batches) render once
def render_png(prompt: str, seed: int, aspect_ratio: str = "1:1", resolution: str = "1MP") -> bytes:
    """Render the simulator's image for these inputs as PNG bytes (byte-for-byte reproducible)."""
    size = size_for(aspect_ratio, resolution)
    rng = _rng(prompt, seed, aspect_ratio)
    image = _background(rng, size)
    image.alpha_composite(_shapes(rng, size))
    image.alpha_composite(_caption(prompt, seed, size))
    buffer = io.BytesIO()
    # Fixed compression settings and no metadata: Pillow writes no tIME/tEXt chunks unless asked.
    image.convert("RGB").save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()
