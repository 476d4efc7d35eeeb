"""The simulator's Bria endpoints beyond ``/v2/image/generate``: body parsing (Bria-style minimal
validation) and the recipe that makes each endpoint's outputs (see ``edit.py``/``video.py``).

Paths and field names follow the adapter's mapping (providers/bria/builders/, sources
[S1]–[S5] there). v2 endpoints answer 202 + status like generation; v1 endpoints answer
synchronously in their own shapes (``result_url``; ``result: [{urls, seed}]``; lifestyle
``result: [[url, seed, session_id]]``; ``objects_masks``; ``prompt variations``).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from providers.bria.simulator import edit
from providers.simulator.render import ASPECT_RATIOS, render_png, size_for

Produce = Callable[[], list[tuple[bytes, str, str]]]
_DATA_PREFIX = re.compile(r"^data:[^,]*;base64,", re.IGNORECASE)
MAX_INPUT_BYTES = 200 * 1024 * 1024


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class SimJob:
    produce: Produce
    result_key: str = "image_url"
    meta: dict[str, Any] = field(default_factory=dict)
    v1_shape: str | None = None  # None: a v2 async endpoint
    seeds: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------- inputs
def fetch_bytes(value: Any, name: str) -> bytes:
    """A URL (fetched, as Bria would) or a base64 string (raw, or tolerated with a data: prefix)."""
    if not isinstance(value, str) or not value:
        raise BadRequest(422, f"{name} must be a URL or a base64 string")
    if value.startswith(("http://", "https://")):
        try:
            response = httpx.get(value, timeout=10, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise BadRequest(422, f"{name}: could not download {value}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise BadRequest(422, f"{name}: downloading {value} answered {response.status_code}")
        if len(response.content) > MAX_INPUT_BYTES:
            raise BadRequest(413, f"{name} is too large")
        return response.content
    try:
        return base64.b64decode(_DATA_PREFIX.sub("", value), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(422, f"{name} is neither a URL nor valid base64") from None


def load_image(value: Any, name: str):
    data = fetch_bytes(value, name)
    try:
        return edit.load(data)
    except Exception:
        raise BadRequest(422, f"{name} is not a supported image (JPEG, PNG, WEBP)") from None


def _required(body: dict[str, Any], name: str) -> Any:
    if body.get(name) in (None, ""):
        raise BadRequest(422, f"{name} is required")
    return body[name]


def _seed(body: dict[str, Any]) -> int:
    seed = body.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else secrets.randbelow(2**31)


def _image(img) -> Produce:
    return lambda: [(edit.png(img() if callable(img) else img), "image/png", "png")]


def _v1_image(body: dict[str, Any], url_key: str = "image_url", file_key: str = "file"):
    if body.get(url_key):
        return load_image(body[url_key], url_key)
    if body.get(file_key):
        return load_image(body[file_key], file_key)
    raise BadRequest(422, f"{url_key} or {file_key} is required")


# --------------------------------------------------------------------------- v2 image editing
def remove_background(body):
    img = load_image(_required(body, "image"), "image")
    return SimJob(_image(lambda: edit.remove_background(img, bool(body.get("preserve_alpha", True)))))


def crop_foreground(body):
    img = load_image(_required(body, "image"), "image")
    return SimJob(_image(lambda: edit.crop_foreground(img, int(body.get("padding") or 0),
                                                      bool(body.get("force_background_detection")),
                                                      bool(body.get("preserve_alpha", True)))))


def erase(body):
    img = load_image(_required(body, "image"), "image")
    mask = load_image(_required(body, "mask"), "mask")
    return SimJob(_image(lambda: edit.erase(img, mask, bool(body.get("preserve_alpha", True)))))


def erase_foreground(body):
    img = load_image(_required(body, "image"), "image")
    return SimJob(_image(lambda: edit.erase_foreground(img, bool(body.get("preserve_alpha", True)))))


def gen_fill(body):
    img = load_image(_required(body, "image"), "image")
    mask = load_image(_required(body, "mask"), "mask")
    prompt = _required(body, "prompt")
    if body.get("mask_type", "manual") not in ("manual", "automatic"):
        raise BadRequest(422, "mask_type must be 'manual' or 'automatic'")
    seed = _seed(body)
    return SimJob(_image(lambda: edit.generative_fill(img, mask, prompt, seed, bool(body.get("preserve_alpha", True)))),
                  meta={"seed": seed, "prompt": prompt})


def expand(body):
    img = load_image(_required(body, "image"), "image")
    if body.get("canvas_size"):
        try:
            canvas = tuple(int(v) for v in body["canvas_size"])
            size = tuple(int(v) for v in body.get("original_image_size") or img.size)
            location = tuple(int(v) for v in body.get("original_image_location") or (0, 0))
            assert len(canvas) == len(size) == len(location) == 2 and min(canvas) > 0 and min(size) > 0
        except (TypeError, ValueError, AssertionError):
            raise BadRequest(422, "canvas_size, original_image_size and original_image_location must be [int, int]") from None
        if max(canvas) > 16000:
            raise BadRequest(422, "canvas_size exceeds 16000 pixels")
    elif body.get("aspect_ratio"):
        ratio = body["aspect_ratio"]
        try:
            w, h = (int(v) for v in str(ratio).split(":"))
            target = w / h
        except ValueError:
            raise BadRequest(422, f"aspect_ratio must look like '16:9', got {ratio!r}") from None
        iw, ih = img.size
        canvas = (max(iw, round(ih * target)), max(ih, round(iw / target)))
        wide = canvas[0] / canvas[1] >= target
        canvas = (canvas[0], round(canvas[0] / target)) if wide else (round(canvas[1] * target), canvas[1])
        size, location = img.size, ((canvas[0] - iw) // 2, (canvas[1] - ih) // 2)
    else:
        raise BadRequest(422, "one of canvas_size or aspect_ratio is required")
    seed = _seed(body)
    return SimJob(_image(lambda: edit.expand(img, canvas, size, location, bool(body.get("preserve_alpha", True)))),
                  meta={"seed": seed})


def blur_background(body):
    img = load_image(_required(body, "image"), "image")
    scale = body.get("scale", 5)
    if not isinstance(scale, int) or not 1 <= scale <= 5:
        raise BadRequest(422, "scale must be an integer between 1 and 5")
    return SimJob(_image(lambda: edit.blur_background(img, scale, bool(body.get("preserve_alpha", True)))))


def replace_background(body):
    img = load_image(_required(body, "image"), "image")
    refs = body.get("ref_images") or []
    prompt = body.get("prompt")
    if not refs and not prompt:
        raise BadRequest(422, "prompt or ref_images is required")
    seed = _seed(body)
    reference = load_image(refs[0], "ref_images[0]") if refs else None
    background = (lambda: reference) if reference is not None else (
        lambda: edit.load(render_png(prompt, seed, "1:1")))
    return SimJob(_image(lambda: edit.replace_background(img, background(), bool(body.get("original_quality")),
                                                         bool(body.get("force_background_detection")))),
                  meta={"seed": seed, **({"prompt": prompt} if prompt else {})})


def enhance(body):
    img = load_image(_required(body, "image"), "image")
    resolution = body.get("resolution", "1MP")
    if resolution not in edit.ENHANCE_AREAS:
        raise BadRequest(422, "resolution must be 1MP, 2MP or 4MP")
    return SimJob(_image(lambda: edit.enhance(img, resolution, bool(body.get("preserve_alpha", True)))),
                  meta={"seed": _seed(body)})


def increase_resolution(body):
    img = load_image(_required(body, "image"), "image")
    factor = body.get("desired_increase", 2)
    if factor not in (2, 4):
        raise BadRequest(422, "desired_increase must be 2 or 4")
    if max(img.size) * factor > 8192:
        raise BadRequest(422, "the output would exceed 8192x8192")
    return SimJob(_image(lambda: edit.upscale(img, factor, bool(body.get("preserve_alpha", True)))))


VIDEO_COLOURS = ("Transparent", "Black", "White", "Gray", "Red", "Green", "Blue", "Yellow", "Cyan", "Magenta", "Orange")


def video_remove_background(body):
    from providers.bria.simulator import video

    url = _required(body, "video")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise BadRequest(422, "video must be a publicly accessible URL")
    colour = body.get("background_color") or "Transparent"
    preset = body.get("output_container_and_codec") or "webm_vp9"
    if colour not in VIDEO_COLOURS:
        raise BadRequest(422, "background_color must be a predefined colour name; hex values are not supported")
    if preset not in video.PRESETS:
        raise BadRequest(422, f"unsupported output_container_and_codec {preset!r}")
    if colour == "Transparent" and preset not in ("webm_vp9", "mkv_vp9", "mov_proresks"):
        raise BadRequest(422, f"{preset} cannot carry transparency; choose webm_vp9, mkv_vp9 or mov_proresks")
    data = fetch_bytes(url, "video")

    def produce():
        out, mime, ext = video.remove_background(data, colour, preset)
        return [(out, mime, ext)]

    return SimJob(produce, result_key="video_url")


V2_EDIT: dict[str, Callable[[dict[str, Any]], SimJob]] = {
    "/v2/image/edit/remove_background": remove_background,
    "/v2/image/edit/crop_foreground": crop_foreground,
    "/v2/image/edit/erase": erase,
    "/v2/image/edit/erase_foreground": erase_foreground,
    "/v2/image/edit/gen_fill": gen_fill,
    "/v2/image/edit/expand": expand,
    "/v2/image/edit/blur_background": blur_background,
    "/v2/image/edit/replace_background": replace_background,
    "/v2/image/edit/enhance": enhance,
    "/v2/image/edit/increase_resolution": increase_resolution,
    "/v2/video/edit/remove_background": video_remove_background,
}


# --------------------------------------------------------------------------- v1 (synchronous)
def _count(body: dict[str, Any]) -> int:
    n = body.get("num_results", 1)
    if not isinstance(n, int) or not 1 <= n <= 4:
        raise BadRequest(422, "num_results must be between 1 and 4")
    return n


def _ratio(body: dict[str, Any]) -> str:
    ratio = body.get("aspect_ratio", "1:1")
    if ratio not in ASPECT_RATIOS:
        raise BadRequest(422, f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
    return ratio


def text_to_image(body, resolution: str = "1MP", vector: bool = False):
    prompt = _required(body, "prompt")
    ratio, count, seed = _ratio(body), _count(body), _seed(body)
    for n in (1, 2):
        if body.get(f"guidance_method_{n}") and not (body.get(f"guidance_method_{n}_image_file")
                                                     or body.get(f"guidance_method_{n}_image_url")):
            raise BadRequest(422, f"guidance_method_{n}_image_file is required with guidance_method_{n}")
    seeds = [seed + i for i in range(count)]

    def produce():
        files = []
        for s in seeds:
            raster = render_png(prompt, s, ratio, resolution)
            if vector:
                files.append((edit.trace_svg(edit.load(raster)), "image/svg+xml", "svg"))
            else:
                files.append((raster, "image/png", "png"))
        return files

    return SimJob(produce, v1_shape="urls", seeds=seeds, meta={"prompt": prompt})


def reimagine(body):
    prompt = _required(body, "prompt")
    reference = _v1_image(body, "structure_image_url", "structure_image_file")
    count, seed = _count(body), _seed(body)
    influence = float(body.get("structure_ref_influence", 0.75))
    seeds = [seed + i for i in range(count)]
    return SimJob(lambda: [(edit.png(edit.reimagine(reference, prompt, s, influence)), "image/png", "png") for s in seeds],
                  v1_shape="urls", seeds=seeds)


def mask_generator(body):
    img = _v1_image(body)
    return SimJob(lambda: [(edit.masks_zip(edit.object_masks(img)), "application/zip", "zip")], v1_shape="masks")


def product_cutout(body):
    img = _v1_image(body)
    return SimJob(_image(lambda: edit.remove_background(img, force=bool(body.get("force_rmbg")))), v1_shape="result_url")


def _check_colour(value: Any, name: str, transparent: bool = True) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not (re.match(r"^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$", value)
                                          or (transparent and value.lower() == "transparent")):
        raise BadRequest(422, f"{name} must be a hex colour")


def packshot(body):
    img = _v1_image(body)
    colour = body.get("background_color", "#FFFFFF")
    _check_colour(colour, "background_color")
    return SimJob(_image(lambda: edit.packshot(img, colour, bool(body.get("force_rmbg")))), v1_shape="result_url")


def product_shadow(body):
    img = _v1_image(body)
    kind = body.get("type", "regular")
    if kind not in ("regular", "float"):
        raise BadRequest(422, "type must be 'regular' or 'float'")
    _check_colour(body.get("shadow_color"), "shadow_color", transparent=False)
    _check_colour(body.get("background_color"), "background_color")
    return SimJob(_image(lambda: edit.shadow(
        img, kind, body.get("shadow_color", "#000000"), int(body.get("shadow_intensity", 60)),
        body.get("shadow_offset") or (0, 15), int(body.get("shadow_blur", 15)), body.get("shadow_width"),
        body.get("shadow_height"), body.get("background_color"), bool(body.get("force_rmbg")))),
        v1_shape="result_url")


def _lifestyle(body, background_for: Callable[[int], Any]):
    img = _v1_image(body)
    count, seed = _count(body), _seed(body)
    placement = body.get("placement_type", "original")
    if placement == "original" and body.get("original_quality"):
        size = img.size
    elif body.get("shot_size"):
        size = tuple(int(v) for v in body["shot_size"])
    else:
        size = size_for(_ratio(body))
    seeds = [seed + i for i in range(count)]

    def produce():
        return [(edit.png(edit.lifestyle(img, background_for(s), size, placement,
                                         body.get("manual_placement_selection", "center_horizontal"),
                                         body.get("padding_values") or (0, 0, 0, 0),
                                         body.get("foreground_image_size"), body.get("foreground_image_location"),
                                         bool(body.get("force_rmbg")))), "image/png", "png") for s in seeds]

    return SimJob(produce, v1_shape="lifestyle", seeds=seeds)


def lifestyle_by_text(body):
    scene = _required(body, "scene_description")
    return _lifestyle(body, lambda s: edit.load(render_png(scene, s, "1:1")))


def lifestyle_by_image(body):
    refs = body.get("ref_image_urls") or []
    if refs:
        reference = load_image(refs[0], "ref_image_urls[0]")
    elif body.get("ref_image_file"):
        reference = load_image(body["ref_image_file"], "ref_image_file")
    else:
        raise BadRequest(422, "ref_image_urls or ref_image_file is required")
    return _lifestyle(body, lambda s: reference)


def prompt_enhancer(body):
    prompt = _required(body, "prompt")
    return f"{prompt.strip().rstrip('.')}, highly detailed, soft natural light, balanced composition, sharp focus"


_V1_FIXED: dict[str, Callable[[dict[str, Any]], SimJob]] = {
    "/v1/text-to-image/fast/2.3": text_to_image,
    "/v1/text-to-image/hd/2.2": lambda b: text_to_image(b, resolution="2MP"),
    "/v1/text-to-vector/fast/2.3": lambda b: text_to_image(b, vector=True),
    "/v1/reimagine": reimagine,
    "/v1/objects/mask_generator": mask_generator,
    "/v1/product/cutout": product_cutout,
    "/v1/product/packshot": packshot,
    "/v1/product/shadow": product_shadow,
    "/v1/product/lifestyle_shot_by_text": lifestyle_by_text,
    "/v1/product/lifestyle_shot_by_image": lifestyle_by_image,
}


def v1_handler(path: str) -> Callable[[dict[str, Any]], SimJob] | None:
    if path in _V1_FIXED:
        return _V1_FIXED[path]
    match = re.fullmatch(r"/v1/text-to-(image|vector)/base/(2\.3|3\.2)", path)
    if match:
        vector = match.group(1) == "vector"
        return lambda b: text_to_image(b, vector=vector)
    return None


V1_PATHS = (*_V1_FIXED, "/v1/text-to-image/base/{version}", "/v1/text-to-vector/base/{version}")
