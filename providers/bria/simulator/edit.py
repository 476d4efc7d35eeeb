"""Real image operations behind the simulator's editing, product and vector endpoints.

Nothing here is generative AI; every output is a deterministic function of the inputs computed
with Pillow, so tests can check it is the *right kind* of media: a cut-out has alpha where the
subject is not, an upscale is exactly 2×/4×, an expansion has the requested canvas, a vector is a
parseable SVG made of polygons, masks are binary images of the input's size.

The subject ("foreground") is found by a simple segmentation: the background colour is the
median of a strip along the border, pixels far enough from it are foreground, and a
closing/opening (max/min filters) removes speckles. An input that already has transparency uses
its alpha instead (unless ``force`` asks for detection).
"""

from __future__ import annotations

import hashlib
import io
import random
import warnings
import zipfile
from typing import Iterable

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from providers.simulator.render import render_png

THRESHOLD = 48  # distance (max over RGB) from the background colour that counts as foreground
# The largest input the simulator decodes: the gateway sends at most 16.8 MP per image (its
# per-operation limits), so this only stops what would exhaust the simulator's memory. Pillow
# refuses anything larger when opening it (an error, not its default warning), before decoding.
MAX_INPUT_PIXELS = 8192 * 8192
Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
PALETTE_SIZE = 8  # colours of a traced vector
TRACE_GRID = 96  # cells along the long side of a traced vector


# --------------------------------------------------------------------------- io helpers
def load(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))  # reads the header only
    width, height = img.size
    if width * height > MAX_INPUT_PIXELS:  # checked here too, whatever warnings filters say
        raise ValueError(f"the image is {width}x{height}; the simulator decodes at most {MAX_INPUT_PIXELS} pixels")
    img.load()
    return img


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def has_transparency(img: Image.Image) -> bool:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        alpha = img.convert("RGBA").getchannel("A")
        return alpha.getextrema()[0] < 255
    return False


def parse_colour(value: str | None, default: tuple[int, int, int, int] = (255, 255, 255, 255)):
    """``#RGB``/``#RRGGBB``/names used by Bria's video endpoint → RGBA; "transparent" → alpha 0."""
    if not value:
        return default
    named = {"transparent": (0, 0, 0, 0), "black": (0, 0, 0, 255), "white": (255, 255, 255, 255),
             "gray": (128, 128, 128, 255), "red": (255, 0, 0, 255), "green": (0, 128, 0, 255),
             "blue": (0, 0, 255, 255), "yellow": (255, 255, 0, 255), "cyan": (0, 255, 255, 255),
             "magenta": (255, 0, 255, 255), "orange": (255, 165, 0, 255)}
    if value.lower() in named:
        return named[value.lower()]
    text = value.lstrip("#")
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16), 255)


# --------------------------------------------------------------------------- segmentation
def background_colour(img: Image.Image) -> tuple[int, int, int]:
    rgb = img.convert("RGB")
    w, h = rgb.size
    band = max(1, min(w, h) // 20)
    strips = [rgb.crop((0, 0, w, band)), rgb.crop((0, h - band, w, h)),
              rgb.crop((0, 0, band, h)), rgb.crop((w - band, 0, w, h))]
    values: list[list[int]] = [[], [], []]
    for strip in strips:
        small = strip.resize((max(1, strip.width // 4), max(1, strip.height // 4)))
        for pixel in small.getdata():
            for c in range(3):
                values[c].append(pixel[c])
    return tuple(sorted(v)[len(v) // 2] for v in values)  # type: ignore[return-value]


def foreground_mask(img: Image.Image, force: bool = False) -> Image.Image:
    """An L mask: 255 = subject, 0 = background (soft 1–2 px edge)."""
    if not force and has_transparency(img):
        return img.convert("RGBA").getchannel("A")
    rgb = img.convert("RGB")
    bg = Image.new("RGB", rgb.size, background_colour(rgb))
    diff = ImageChops.difference(rgb, bg)
    r, g, b = diff.split()
    distance = ImageChops.lighter(ImageChops.lighter(r, g), b)
    mask = distance.point(lambda v: 255 if v > THRESHOLD else 0)
    size = 5 if min(rgb.size) >= 64 else 3
    mask = mask.filter(ImageFilter.MaxFilter(size)).filter(ImageFilter.MinFilter(size))  # closing
    mask = mask.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))  # opening
    return mask.filter(ImageFilter.GaussianBlur(0.8))


def cutout(img: Image.Image, force: bool = False, preserve_alpha: bool = True) -> Image.Image:
    rgba = img.convert("RGBA")
    mask = foreground_mask(img, force)
    if preserve_alpha and has_transparency(img):
        mask = ImageChops.multiply(mask, rgba.getchannel("A"))
    rgba.putalpha(mask)
    return rgba


def _opaque(img: Image.Image, preserve_alpha: bool) -> Image.Image:
    """Keep the input's transparency only when asked to (and present)."""
    if preserve_alpha and has_transparency(img):
        return img.convert("RGBA")
    return img.convert("RGB")


# --------------------------------------------------------------------------- editing
def remove_background(img: Image.Image, preserve_alpha: bool = True, force: bool = False) -> Image.Image:
    return cutout(img, force=force, preserve_alpha=preserve_alpha)


def crop_foreground(img: Image.Image, padding: int = 0, force: bool = False, preserve_alpha: bool = True) -> Image.Image:
    cut = cutout(img, force=force, preserve_alpha=preserve_alpha)
    bbox = cut.getchannel("A").point(lambda v: 255 if v > 16 else 0).getbbox() or (0, 0, img.width, img.height)
    left, top, right, bottom = bbox
    cropped = cut.crop((left, top, right, bottom))
    if padding:
        canvas = Image.new("RGBA", (cropped.width + 2 * padding, cropped.height + 2 * padding), (0, 0, 0, 0))
        canvas.paste(cropped, (padding, padding))
        cropped = canvas
    return cropped


def _fill(img: Image.Image, mask: Image.Image) -> Image.Image:
    """Fill the masked area with what surrounds it: the background colour under a wide blur of
    the unmasked pixels (a cheap stand-in for erasing)."""
    rgb = img.convert("RGB")
    base = Image.new("RGB", rgb.size, background_colour(rgb))
    keep = ImageChops.invert(mask.convert("L").point(lambda v: 255 if v > 127 else 0))
    base.paste(rgb, mask=keep)
    radius = max(4, min(rgb.size) // 25)
    return base.filter(ImageFilter.GaussianBlur(radius))


def _binary(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    return mask.convert("L").resize(size).point(lambda v: 255 if v > 127 else 0)


def erase(img: Image.Image, mask: Image.Image, preserve_alpha: bool = True) -> Image.Image:
    m = _binary(mask, img.size).filter(ImageFilter.MaxFilter(5))
    out = _opaque(img, preserve_alpha)
    filled = _fill(img, m).convert(out.mode)
    out.paste(filled, mask=m.filter(ImageFilter.GaussianBlur(2)))
    return out


def erase_foreground(img: Image.Image, preserve_alpha: bool = True) -> Image.Image:
    return erase(img, foreground_mask(img, force=True).point(lambda v: 255 if v > 32 else 0), preserve_alpha)


def generative_fill(img: Image.Image, mask: Image.Image, prompt: str, seed: int, preserve_alpha: bool = True) -> Image.Image:
    m = _binary(mask, img.size)
    out = _opaque(img, preserve_alpha)
    generated = load(render_png(prompt, seed, "1:1")).resize(img.size).convert(out.mode)
    out.paste(generated, mask=m.filter(ImageFilter.GaussianBlur(3)))
    return out


def expand(img: Image.Image, canvas: tuple[int, int], size: tuple[int, int], location: tuple[int, int],
           preserve_alpha: bool = True) -> Image.Image:
    """Outpaint: the canvas is the image stretched and blurred (edges continue outwards), the
    original pasted at ``location`` with ``size``."""
    src = _opaque(img, preserve_alpha)
    fill = src.convert("RGB").resize((max(1, canvas[0] // 8), max(1, canvas[1] // 8))).resize(canvas, Image.Resampling.BILINEAR)
    fill = fill.filter(ImageFilter.GaussianBlur(max(2, min(canvas) // 40))).convert(src.mode)
    placed = src.resize(size, Image.Resampling.LANCZOS) if size != src.size else src
    fill.paste(placed, location, placed if placed.mode == "RGBA" else None)
    return fill


def blur_background(img: Image.Image, scale: int = 5, preserve_alpha: bool = True) -> Image.Image:
    out = _opaque(img, preserve_alpha)
    radius = scale * max(1.0, min(img.size) / 200)
    blurred = out.filter(ImageFilter.GaussianBlur(radius))
    blurred.paste(out, mask=foreground_mask(img, force=True))
    return blurred


def _scale_to_area(size: tuple[int, int], area: int) -> tuple[int, int]:
    w, h = size
    factor = (area / (w * h)) ** 0.5
    return max(1, round(w * factor)), max(1, round(h * factor))


def replace_background(img: Image.Image, background: Image.Image, original_quality: bool = False,
                       force: bool = False) -> Image.Image:
    cut = cutout(img, force=force)
    size = img.size if original_quality else _scale_to_area(img.size, 1024 * 1024)
    cut = cut.resize(size, Image.Resampling.LANCZOS)
    canvas = ImageOps.fit(background.convert("RGB"), size).convert("RGBA")
    canvas.alpha_composite(cut)
    return canvas.convert("RGB")


ENHANCE_AREAS = {"1MP": 1024 * 1024, "2MP": 2 * 1024 * 1024, "4MP": 4 * 1024 * 1024}


def enhance(img: Image.Image, resolution: str = "1MP", preserve_alpha: bool = True) -> Image.Image:
    out = _opaque(img, preserve_alpha)
    size = _scale_to_area(img.size, ENHANCE_AREAS.get(resolution, 1024 * 1024))
    return out.resize(size, Image.Resampling.LANCZOS).filter(ImageFilter.UnsharpMask(2, 120, 2))


def upscale(img: Image.Image, factor: int = 2, preserve_alpha: bool = True) -> Image.Image:
    out = _opaque(img, preserve_alpha)
    return out.resize((img.width * factor, img.height * factor), Image.Resampling.LANCZOS)


# --------------------------------------------------------------------------- product shots
def packshot(img: Image.Image, background_color: str = "#FFFFFF", force: bool = False) -> Image.Image:
    """2000×2000, the subject cropped and scaled to ~80 % of the frame, centred."""
    cut = crop_foreground(img, force=force)
    side = 2000
    scale = (0.8 * side) / max(cut.size)
    cut = cut.resize((max(1, round(cut.width * scale)), max(1, round(cut.height * scale))), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (side, side), parse_colour(background_color))
    canvas.alpha_composite(cut, ((side - cut.width) // 2, (side - cut.height) // 2))
    return canvas if parse_colour(background_color)[3] == 0 else canvas.convert("RGB")


def shadow(img: Image.Image, kind: str = "regular", colour: str = "#000000", intensity: int = 60,
           offset: Iterable[int] = (0, 15), blur: int = 15, width: int | None = None, height: int | None = None,
           background: str | None = None, force: bool = False) -> Image.Image:
    """A drop shadow (regular: the subject's silhouette, offset) or a floating ellipse under the
    subject, drawn beneath the cut-out, on the input's canvas size."""
    cut = cutout(img, force=force)
    alpha = cut.getchannel("A")
    dx, dy = list(offset)[:2]
    r, g, b, _ = parse_colour(colour, (0, 0, 0, 255))
    strength = max(0, min(100, intensity)) / 100
    silhouette = Image.new("L", img.size, 0)
    if kind == "float":
        bbox = alpha.getbbox() or (0, 0, img.width, img.height)
        cx = (bbox[0] + bbox[2]) / 2 + dx
        w = abs(width) if width else (bbox[2] - bbox[0]) * 0.8
        h = height or 70
        bottom = min(img.height - 1, bbox[3] + dy)
        ImageDraw.Draw(silhouette).ellipse((cx - w / 2, bottom - h / 2, cx + w / 2, bottom + h / 2), fill=255)
    else:
        silhouette.paste(alpha, (int(dx), int(dy)))
    silhouette = silhouette.filter(ImageFilter.GaussianBlur(max(0, blur))).point(lambda v: int(v * strength))
    layer = Image.new("RGBA", img.size, (r, g, b, 0))
    layer.putalpha(silhouette)
    canvas = Image.new("RGBA", img.size, parse_colour(background, (0, 0, 0, 0)) if background else (0, 0, 0, 0))
    canvas.alpha_composite(layer)
    canvas.alpha_composite(cut)
    return canvas


PLACEMENT_ANCHORS = {
    "upper_left": (0.0, 0.0), "upper_right": (1.0, 0.0), "bottom_left": (0.0, 1.0), "bottom_right": (1.0, 1.0),
    "right_center": (1.0, 0.5), "left_center": (0.0, 0.5), "upper_center": (0.5, 0.0), "bottom_center": (0.5, 1.0),
    "center_vertical": (0.5, 0.5), "center_horizontal": (0.5, 0.5),
}


def lifestyle(img: Image.Image, background: Image.Image, size: tuple[int, int], placement: str = "automatic",
              manual: str = "center_horizontal", padding: Iterable[int] = (0, 0, 0, 0),
              fg_size: Iterable[int] | None = None, fg_location: Iterable[int] | None = None,
              force: bool = False) -> Image.Image:
    """The product cut out and placed on ``background`` (fitted to ``size``)."""
    cut = crop_foreground(img, force=force)
    canvas = ImageOps.fit(background.convert("RGB"), size).convert("RGBA")
    cw, ch = size
    if placement == "custom_coordinates" and fg_size and fg_location:
        w, h = list(fg_size)[:2]
        x, y = list(fg_location)[:2]
    elif placement == "manual_padding":
        left, right, top, bottom = list(padding)[:4]
        box_w, box_h = max(1, cw - left - right), max(1, ch - top - bottom)
        scale = min(box_w / cut.width, box_h / cut.height)
        w, h = cut.width * scale, cut.height * scale
        x, y = left + (box_w - w) / 2, top + (box_h - h) / 2
    else:
        scale = min(0.6 * cw / cut.width, 0.6 * ch / cut.height)
        w, h = cut.width * scale, cut.height * scale
        ax, ay = PLACEMENT_ANCHORS.get(manual, (0.5, 0.5)) if placement == "manual_placement" else (0.5, 0.6)
        x, y = ax * (cw - w), ay * (ch - h)
    placed = cut.resize((max(1, int(w)), max(1, int(h))), Image.Resampling.LANCZOS)
    canvas.alpha_composite(placed, (int(x), int(y)))
    return canvas.convert("RGB")


# --------------------------------------------------------------------------- masks
def object_masks(img: Image.Image, limit: int = 16) -> list[Image.Image]:
    """One binary mask (input size) per connected foreground region, largest first."""
    fg = foreground_mask(img, force=True).point(lambda v: 255 if v > 127 else 0)
    work_size = (max(1, img.width // 4), max(1, img.height // 4))
    work = fg.resize(work_size, Image.Resampling.NEAREST)
    remaining = work.copy()
    masks: list[tuple[int, Image.Image]] = []
    label = 1
    while len(masks) < limit:
        bbox = remaining.getbbox()
        if bbox is None:
            break
        x0, y0, x1, _ = bbox
        seed = next((x, y0) for x in range(x0, x1) if remaining.getpixel((x, y0)) == 255)
        region = remaining.copy()
        ImageDraw.floodfill(region, seed, 128)
        component = region.point(lambda v: 255 if v == 128 else 0)
        remaining = ImageChops.subtract(remaining, component)
        area = sum(1 for v in component.getdata() if v)
        if area >= 4:  # speckles are not objects
            full = component.resize(img.size, Image.Resampling.NEAREST)
            masks.append((area, ImageChops.multiply(full, fg)))
        label += 1
    masks.sort(key=lambda item: -item[0])
    return [m for _, m in masks]


def masks_zip(masks: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, mask in enumerate(masks, start=1):
            info = zipfile.ZipInfo(f"mask_{i}.png", date_time=(2024, 1, 1, 0, 0, 0))
            archive.writestr(info, png(mask))
    return buffer.getvalue()


# --------------------------------------------------------------------------- variation
def reimagine(reference: Image.Image, prompt: str, seed: int, influence: float = 0.75) -> Image.Image:
    """The reference's structure (its luminance) recoloured with a palette drawn from the prompt
    and seed, blended with the prompt's render by ``1 - influence``."""
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    dark = tuple(rng.randrange(128) for _ in range(3))
    light = tuple(128 + rng.randrange(128) for _ in range(3))
    size = _scale_to_area(reference.size, 1024 * 1024)
    structure = ImageOps.colorize(ImageOps.grayscale(reference).resize(size), dark, light)
    render = load(render_png(prompt, seed, "1:1")).convert("RGB").resize(size)
    return Image.blend(structure, render, max(0.0, min(1.0, 1 - influence)) * 0.5)


# --------------------------------------------------------------------------- vectors
def trace_svg(img: Image.Image, colours: int = PALETTE_SIZE, grid: int = TRACE_GRID) -> bytes:
    """Posterise ``img`` to ``colours`` colours on a ``grid``-cell raster and trace every colour
    region into rectilinear polygons (rows of runs merged vertically), one ``<path>`` per colour."""
    w, h = img.size
    gw = grid if w >= h else max(1, round(grid * w / h))
    gh = grid if h >= w else max(1, round(grid * h / w))
    small = img.convert("RGB").resize((gw, gh), Image.Resampling.BOX)
    poster = small.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = poster.getpalette() or []
    px = poster.load()
    sx, sy = w / gw, h / gh
    rects: dict[int, list[tuple[int, int, int, int]]] = {}
    open_runs: dict[tuple[int, int, int], list[int]] = {}  # (index, x0, x1) -> [y0, height]
    for y in range(gh + 1):
        runs: list[tuple[int, int, int]] = []
        if y < gh:
            x = 0
            while x < gw:
                index, start = px[x, y], x
                while x < gw and px[x, y] == index:
                    x += 1
                runs.append((index, start, x))
        current = set(runs)
        for key in list(open_runs):
            if key not in current:
                y0, height = open_runs.pop(key)
                rects.setdefault(key[0], []).append((key[1], y0, key[2] - key[1], height))
        for key in runs:
            if key in open_runs:
                open_runs[key][1] += 1
            else:
                open_runs[key] = [y, 1]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">']
    for index in sorted(rects):
        r, g, b = palette[3 * index: 3 * index + 3]
        d = "".join(
            f"M{x * sx:.1f} {y * sy:.1f}h{rw * sx:.1f}v{rh * sy:.1f}h{-rw * sx:.1f}z" for x, y, rw, rh in rects[index])
        parts.append(f'<path fill="#{r:02x}{g:02x}{b:02x}" d="{d}"/>')
    parts.append("</svg>")
    return "\n".join(parts).encode()
