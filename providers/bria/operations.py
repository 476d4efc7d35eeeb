"""Bria operations: the Vision Studio endpoints this gateway serves through Bria API v2.

Mapping sources (Bria's own pages and client, read for this table):

* docs.bria.ai "Image Generation" overview and "v2 endpoints / image generate"
  (``POST /v2/image/generate``, FIBO model: ``prompt`` | ``images`` | ``structured_prompt``,
  ``aspect_ratio``, ``resolution`` "1MP"/"4MP", ``negative_prompt``, ``seed``, ``sync``);
* docs.bria.ai "Async requests, webhooks and polling" (``sync=false`` default → 202; the
  COMPLETED ``result`` holds a single ``image_url``);
* docs.bria.ai "Working with images" / API overview: base64 inputs must be the raw string,
  without a ``data:image/...;base64,`` header;
* Bria-AI/bria-client ``schemas/image/generation.py`` (``GenerateImageRequestPayload``:
  ``prompt, images, structured_prompt, negative_prompt, guidance_scale, model_version,
  aspect_ratio, steps_num, seed, sync, ip_signal``) and ``schemas/base_models.py``
  (``prompt_content_moderation``, ``visual_input_content_moderation``,
  ``visual_output_content_moderation``);
* Bria-AI/bria-skill ``references/api-endpoints.md`` (``style_id`` "default"/"photoreal";
  ``images`` holds exactly one reference image).

Vision Studio's request ([10] in seeds/INVENTORY.md) was written for Bria's v1 text-to-image
models (2.3 / 3.2). Bria v2 serves one model family (FIBO), so several fields have no direct
counterpart; each is handled explicitly below, and the guesses are marked ``[unconfirmed]``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from urllib.parse import quote

from providers.base import Kind, MediaInput, MediaLimits, Operation, Permanent, one_per_output
from providers.bria import schemas as S
from providers.bria.tailored.client import TAILORED_MODEL_KEY
from providers.bria.tailored.service import resolver
from providers.bria.schemas import BriaGenerateImageRequest

# Ranges for FIBO's tuning knobs. [unconfirmed] They come from a third-party v2 integration
# (guidance_scale 3–5, steps_num 35–50), not from a Bria page; Vision Studio allows 1–10 and
# 20–50 (defaults 5.0 and 30). We clamp so Vision Studio's defaults never make Bria reject a
# request; adjust here once Bria's reference confirms the bounds.
FIBO_GUIDANCE_SCALE_RANGE = (3, 5)
FIBO_STEPS_RANGE = (35, 50)

# Operations whose Bria v2 endpoint yields exactly one image per request. Evidence: docs.bria.ai
# "Async requests, webhooks and polling" and "Status service" – a COMPLETED ``result`` carries a
# single ``image_url``; Bria-AI/bria-client ``GenerateImageRequestPayload`` has no
# ``num_results``; the current Bria-AI/bria-skill ``api-endpoints.md`` dropped the
# ``num_results`` (1–4) an earlier revision listed. For these operations the provider turns
# ``num_results`` = N into N upstream requests (seed, seed+1, … when a seed is given).
ONE_IMAGE_PER_REQUEST: frozenset[str] = frozenset({"bria.generate_image"})

# Fields copied unchanged (same name and meaning in Vision Studio and Bria v2).
_PASS_THROUGH = ("prompt", "aspect_ratio", "seed", "negative_prompt", "prompt_content_moderation", "ip_signal")

# ControlNet guidance exists only on Bria's v1 text-to-image endpoints; v2 /image/generate has
# no equivalent, so silently dropping it would return an unguided image the client did not ask for.
_GUIDANCE_FIELDS = tuple(
    f"guidance_method_{n}{suffix}" for n in (1, 2) for suffix in ("", "_scale", "_image_url", "_image_file")
)


def strip_data_url(value: str) -> str:
    """``data:image/png;base64,AAAA`` → ``AAAA``; Bria wants the raw base64 string."""
    if value.startswith("data:") and "," in value:
        return value.split(",", 1)[1]
    return value


def _clamp(value: float, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return int(min(max(round(value), low), high))


def _image_prompt(params: dict[str, Any]) -> list[str] | None:
    """Vision Studio's image prompt (IP-Adapter) → Bria v2's single reference image ``images``.

    URLs win over the file, following Vision Studio's v1 convention ("image_url takes precedence
    over image_file"). Bria accepts exactly one reference image.
    """
    urls = params.get("image_prompt_urls") or []
    if len(urls) > 1:
        raise Permanent(
            "Bria v2 accepts exactly one reference image; send one entry in image_prompt_urls",
            code="unsupported_parameter",
        )
    if urls:
        return [str(urls[0])]
    if params.get("image_prompt_file"):
        return [strip_data_url(params["image_prompt_file"])]
    return None


def build_generate_image(params: dict[str, Any]) -> dict[str, Any]:
    """Vision Studio ``BriaGenerateImageRequest`` fields → Bria ``POST /v2/image/generate`` body.

    ``sync`` and ``num_results`` are not mapped: the provider always submits asynchronously and
    fans ``num_results`` out into separate requests. ``None`` values are dropped.
    """
    p = {key: value for key, value in params.items() if value is not None}
    used_guidance = [name for name in _GUIDANCE_FIELDS if name in p]
    if used_guidance:
        raise Permanent(
            "ControlNet guidance (" + ", ".join(used_guidance) + ") is not available on Bria API v2 "
            "image generation; use image_prompt_urls / image_prompt_file for a reference image",
            code="unsupported_parameter",
        )

    body: dict[str, Any] = {key: p[key] for key in _PASS_THROUGH if key in p}
    if "text_guidance_scale" in p:
        # Bria v2 calls it guidance_scale and types it as an integer (bria-client).
        body["guidance_scale"] = _clamp(p["text_guidance_scale"], FIBO_GUIDANCE_SCALE_RANGE)
    if "steps_num" in p:
        body["steps_num"] = _clamp(p["steps_num"], FIBO_STEPS_RANGE)
    if "content_moderation" in p:
        # Vision Studio: "applies content moderation to both input visuals and generated outputs".
        body["visual_input_content_moderation"] = bool(p["content_moderation"])
        body["visual_output_content_moderation"] = bool(p["content_moderation"])
    if p.get("medium") == "photography":
        body["style_id"] = "photoreal"  # [unconfirmed] closest v2 style; "art" keeps the default style
    if p.get("enhance_image"):
        # [unconfirmed] v2 has no enhance_image flag; Bria documents "4MP" as improving image
        # details (at ~30 s extra latency), the closest match to "richer details, sharper textures".
        body["resolution"] = "4MP"
    images = _image_prompt(p)
    if images is not None:
        body["images"] = images
    # Deliberately not sent:
    # * bria_model_version ("3.2"/"2.3"): v1 model names; v2 accepts only model_version "FIBO"
    #   and runs it when the field is omitted.
    # * prompt_enhancement: FIBO always expands the prompt through its VLM bridge.
    # * image_prompt_mode, image_prompt_scale: [unconfirmed] no v2 counterpart found.
    return body


# =========================================================================== every other /api/v1/bria/ endpoint
# Upstream mapping. Sources, read for this table (look-ups listed so they can be re-checked):
#   [S1] Bria-AI/bria-skill skills/bria-ai/references/api-endpoints.md — v2 image editing paths
#        (/v2/image/edit/remove_background, gen_fill, erase, erase_foreground, replace_background,
#        blur_background, expand, enhance, increase_resolution, crop_foreground), the v1 product
#        paths (/v1/product/cutout, packshot, shadow, lifestyle_shot_by_text, _by_image: image_url
#        or `file` base64; cutout/packshot/shadow answer {"result_url"}; lifestyle answers
#        {"result": [[url, seed, session_id], ...]}).
#   [S2] Bria-AI/bria-skill skills/video-remove-background/references/api-endpoints.md —
#        POST /v2/video/edit/remove_background {video (public URL), background_color,
#        output_container_and_codec}; 202 + status; result.video_url; Transparent needs an alpha preset.
#   [S3] docs.bria.ai "Working with images and video" — v2 image fields take a public URL or raw
#        base64 (no data: prefix); mask-based endpoints take a mask of the input's size.
#   [S4] docs.bria.ai product-shot-editing/product-endpoints — /product/cutout, /product/packshot
#        (2000×2000 output), /product/shadow on https://engine.prod.bria-api.com/v1; image_url wins
#        over the base64 `file`; 12 MB.
#   [S5] third-party clients found in public code (not Bria's own pages), hence [unconfirmed]:
#        /v1/text-to-image/{base|fast|hd}/{model_version}, /v1/text-to-vector/{base|fast}/{model_version}
#        (answer {"result": [{"urls": [...], "seed": n}]}), /v1/reimagine (structure_image_url |
#        structure_image_file, structure_ref_influence, fast, steps_num, tailored_model_id, …),
#        /v1/objects/mask_generator ({"objects_masks": <zip url>}), /v1/prompt_enhancer
#        ({"prompt variations": "..."}).
# v1 endpoints have no status service: an async (sync=false) v1 call hands out URLs before the
# assets exist, so the adapter calls v1 with sync=true and treats the answer as the result.

ALPHA_CODECS = S.ALPHA_CODECS
MB = 1024 * 1024


def _drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


def _raw(value: Any) -> Any:
    """A media value as Bria wants it: a URL unchanged, base64 without its data: prefix."""
    return value if not isinstance(value, str) or _is_url(value) else strip_data_url(value)


def _first(params: dict[str, Any], *fields: str) -> Any:
    """The first field that is set: 004's v1 convention, ``image_url`` wins over ``image_file``."""
    for name in fields:
        if params.get(name) is not None:
            return params[name]
    return None


def _v1_image(value: Any, url_key: str = "image_url", file_key: str = "file") -> dict[str, Any]:
    if value is None:
        return {}
    return {url_key: value} if _is_url(value) else {file_key: strip_data_url(value)}


def _pick(params: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: params[n] for n in names if params.get(n) is not None}


def image_size(value: Any, field: str, limits: MediaLimits | None = None) -> tuple[int, int]:
    """Width and height of a base64 media value, read from its header: nothing is decoded. The
    worker has resolved URLs to base64 and checked the limits; they are checked again here so a
    builder never works on an image beyond them (a border mask is width × height bytes)."""
    import base64
    import io

    from PIL import Image

    if value is None or _is_url(value):
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


def _png_b64(img) -> str:
    import base64
    import io

    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- quick: enhance prompt
def build_enhance_prompt(params: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/prompt_enhancer {"prompt"}`` [S5, unconfirmed]."""
    return {"prompt": params["prompt"]}


# --------------------------------------------------------------------------- generation (v1 text-to-image / vector)
_V1_T2I_FIELDS = ("prompt", "num_results", "aspect_ratio", "steps_num", "text_guidance_scale", "prompt_enhancement",
                  "enhance_image", "prompt_content_moderation", "content_moderation", "ip_signal", "seed",
                  "negative_prompt", "medium", "guidance_method_1", "guidance_method_1_scale", "guidance_method_2",
                  "guidance_method_2_scale", "image_prompt_mode", "image_prompt_scale")


def build_v1_text_to_image(params: dict[str, Any]) -> dict[str, Any]:
    """Vision Studio's generation fields are Bria v1's text-to-image/vector fields one to one
    [S5]; only the media change form: guidance images go as base64 ``…_image_file`` (the worker
    fetched any URL), the image prompt as ``image_prompt_file`` (one image) or URLs."""
    p = _drop_none(params)
    body = _pick(p, *_V1_T2I_FIELDS)
    for n in (1, 2):
        image = _first(p, f"guidance_method_{n}_image_url", f"guidance_method_{n}_image_file")
        if image is not None:
            body.update(_v1_image(image, f"guidance_method_{n}_image_url", f"guidance_method_{n}_image_file"))
    urls = p.get("image_prompt_urls") or []
    if urls and all(_is_url(u) for u in urls):
        body["image_prompt_urls"] = list(urls)
    elif urls:  # fetched: base64 now
        if len(urls) > 1:
            raise Permanent("Bria v1 takes one image prompt file; send one entry in image_prompt_urls",
                            code="unsupported_parameter")
        body["image_prompt_file"] = strip_data_url(urls[0])
    elif p.get("image_prompt_file"):
        body["image_prompt_file"] = strip_data_url(p["image_prompt_file"])
    return body


def _uses_guidance(params: dict[str, Any]) -> bool:
    return bool(params.get("guidance_method_1") or params.get("guidance_method_2"))


# --------------------------------------------------------------------------- tailored (LoRA) generation
# A tailored model is named by the client's id (model_id / tailored_model_id); the API's intake
# hook (``resolve``, tailored/service.py) checks it is the tenant's trained model and stores Bria's id
# under TAILORED_MODEL_KEY. Only that id is ever sent upstream. Upstream endpoints:
#   POST /v1/text-to-image/tailored/{model_id}   [T2: Bria-AI/ComfyUI-BRIA-API tailored_gen_node.py]
#   POST /v1/text-to-vector/tailored/{model_id}  [T3, unconfirmed]
# both v1 and synchronous (sync=true), answering {"result": [{"urls": [url], "seed": n}]} like the
# other v1 text-to-image endpoints. Sources [T1]–[T3]: providers/bria/tailored/client.py.
def tailored_upstream_id(params: dict[str, Any], field: str = "model_id") -> str:
    """Bria's id of the tenant's model, as resolved at intake; a job whose model was never
    resolved (a batch line: batches have no intake hook) is refused rather than sending the
    client's id, which could name another tenant's model on the shared Bria account."""
    value = params.get(TAILORED_MODEL_KEY)
    if not value:
        raise Permanent(f"{field} {params.get(field)!r} was not resolved to one of your trained tailored models "
                        "(tailored generation runs only through its endpoint, not in batches)",
                        code="tailored_model_unresolved")
    return str(value)


def _tailored_path(kind: str, params: dict[str, Any]) -> str:
    return f"/v1/text-to-{kind}/tailored/{quote(tailored_upstream_id(params), safe='')}"


_LORA_IMAGE_FIELDS = ("prompt", "num_results", "aspect_ratio", "fast", "steps_num", "model_influence",
                      "include_generation_prefix", "seed")


def build_lora_image(params: dict[str, Any]) -> dict[str, Any]:
    """004 [16] → ``/v1/text-to-image/tailored/{id}`` [T2]: the same names one to one."""
    tailored_upstream_id(params)
    return _pick(_drop_none(params), *_LORA_IMAGE_FIELDS)


def build_lora_vector(params: dict[str, Any]) -> dict[str, Any]:
    """004 [17] → ``/v1/text-to-vector/tailored/{id}`` [T3, unconfirmed]: the v1 text-to-vector
    fields plus ``model_influence`` / ``include_generation_prefix`` [T2]. ``bria_model_version``
    is not sent: a tailored model is bound to the base model it was trained on. [unconfirmed]"""
    tailored_upstream_id(params)
    p = _drop_none(params)
    body = build_v1_text_to_image({k: v for k, v in p.items() if k != "bria_model_version"})
    body.update(_pick(p, "model_influence", "include_generation_prefix"))
    return body


def route_lora_image(params: dict[str, Any]) -> str:
    return _tailored_path("image", params)


def route_lora_vector(params: dict[str, Any]) -> str:
    return _tailored_path("vector", params)


def route_generate_image(params: dict[str, Any]) -> str:
    """FIBO (``/v2/image/generate``) unless ControlNet guidance is asked for, which only Bria's
    v1 base model has: ``/v1/text-to-image/base/{bria_model_version}`` [S5, unconfirmed]. With a
    tailored ``model_id`` (003's tailored-generation call): ``/v1/text-to-image/tailored/{id}``."""
    if params.get("model_id") is not None:
        return _tailored_path("image", params)
    if _uses_guidance(params):
        return f"/v1/text-to-image/base/{params.get('bria_model_version') or '3.2'}"
    return "/v2/image/generate"


def build_generate_image_routed(params: dict[str, Any]) -> dict[str, Any]:
    if params.get("model_id") is not None:
        tailored_upstream_id(params)
        return build_v1_text_to_image(params)
    return build_v1_text_to_image(params) if _uses_guidance(params) else build_generate_image(params)


def route_vector_base(params: dict[str, Any]) -> str:
    if params.get("model_id") is not None:
        return _tailored_path("vector", params)
    return f"/v1/text-to-vector/base/{params.get('bria_model_version') or '3.2'}"


def build_variation(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/reimagine`` [S5, unconfirmed]: the reference image is Bria's structure image."""
    p = _drop_none(params)
    body = _pick(p, "prompt", "num_results", "fast", "steps_num", "include_generation_prefix", "enhance_image",
                 "prompt_content_moderation", "content_moderation", "ip_signal", "seed", "tailored_model_influence")
    if p.get("tailored_model_id") is not None:  # the tenant's model, resolved at intake to Bria's id
        body["tailored_model_id"] = tailored_upstream_id(p, "tailored_model_id")
    body["structure_ref_influence"] = p.get("ref_image_influence", 0.75)
    body.update(_v1_image(_first(p, "image_url", "image_file"), "structure_image_url", "structure_image_file"))
    return body


# --------------------------------------------------------------------------- image editing
_V2_MODERATION = ("visual_input_content_moderation", "visual_output_content_moderation")


def _v2(params: dict[str, Any], *names: str) -> dict[str, Any]:
    p = _drop_none(params)
    body = _pick(p, *names)
    for media in ("image", "mask"):
        if media in body:
            body[media] = _raw(body[media])
    return body


def build_get_masks(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/objects/mask_generator`` [S5, unconfirmed] → ``objects_masks``: a ZIP of masks."""
    return _v1_image(_first(params, "image_url", "image_file"))


def build_remove_background(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "preserve_alpha", *_V2_MODERATION)


def build_product_cutout(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/product/cutout`` [S1][S4]."""
    return {**_v1_image(_first(params, "image_url", "image_file")), "force_rmbg": bool(params.get("force_rmbg"))}


def build_crop_foreground(params: dict[str, Any]) -> dict[str, Any]:
    # [unconfirmed] padding / force_background_detection names on Bria's side (S1 shows only image).
    return _v2(params, "image", "padding", "force_background_detection", "preserve_alpha", *_V2_MODERATION)


def build_erase(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "mask", "mask_type", "preserve_alpha", *_V2_MODERATION)


def build_erase_foreground(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "preserve_alpha", *_V2_MODERATION)


DEFAULT_BORDER_PERCENTAGE = 0.1  # our choice: 004 leaves border_percentage without a default


def border_mask(width: int, height: int, fraction: float):
    """White frame (area to fill) of ``fraction`` of each side around a black (kept) centre."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (width, height), 255)
    dx, dy = round(width * fraction), round(height * fraction)
    if width - 2 * dx > 0 and height - 2 * dy > 0:
        ImageDraw.Draw(mask).rectangle((dx, dy, width - dx - 1, height - dy - 1), fill=0)
    return mask


def build_inpaint(params: dict[str, Any]) -> dict[str, Any]:
    """``/v2/image/edit/gen_fill`` [S1]. Bria's gen_fill knows masks "manual"/"automatic";
    Vision Studio's "border_only" (kept "for backward compatibility") is served by drawing the
    border mask here from ``border_percentage`` and sending it as a manual mask."""
    body = _v2(params, "image", "mask", "prompt", "mask_type", "negative_prompt", "seed", "preserve_alpha",
               "prompt_content_moderation", *_V2_MODERATION)
    if params.get("mask_type") == "border_only":
        width, height = image_size(params.get("image"), "image")
        fraction = params.get("border_percentage")
        fraction = DEFAULT_BORDER_PERCENTAGE if fraction is None else fraction
        body["mask"] = _png_b64(border_mask(width, height, fraction))
        body["mask_type"] = "manual"
    return body


def _parse_ratio(text: str) -> float:
    w, h = text.split(":")
    return int(w) / int(h)


def expand_geometry(size: tuple[int, int], params: dict[str, Any]) -> dict[str, Any]:
    """Vision Studio's expand request → Bria's ``canvas_size`` / ``original_image_size`` /
    ``original_image_location`` (all in pixels).

    * canvas: ``canvas_size`` if given (it overrides ``aspect_ratio``); else the smallest canvas
      of ``aspect_ratio`` that holds the image at its size plus the paddings; else the image plus
      the paddings.
    * paddings (0–1) are fractions of the canvas left free on each side; the image is scaled to
      fit the remaining box (never up) and centred in it.
    * ``position`` (ManualPlacement) pins the image, at its size or scaled down to fit, to an
      edge/corner; center_vertical and center_horizontal both centre it. Default: centred.
    """
    w, h = size
    pads = {k: float(params.get(f"padding_{k}") or 0.0) for k in ("left", "right", "top", "bottom")}
    free_x, free_y = 1 - pads["left"] - pads["right"], 1 - pads["top"] - pads["bottom"]
    if params.get("canvas_size"):
        cw, ch = (int(v) for v in params["canvas_size"])
    else:
        cw, ch = w / free_x, h / free_y
        if params.get("aspect_ratio"):
            ratio = _parse_ratio(params["aspect_ratio"])
            if cw / ch < ratio:
                cw = ch * ratio
            else:
                ch = cw / ratio
        cw, ch = max(w, round(cw)), max(h, round(ch))
    box_w, box_h = cw * free_x, ch * free_y
    scale = min(1.0, box_w / w, box_h / h)
    iw, ih = max(1, int(w * scale)), max(1, int(h * scale))
    left, top = cw * pads["left"], ch * pads["top"]
    position = str(params.get("position") or "")
    if "left" in position:
        x = 0
    elif "right" in position:
        x = cw - iw
    else:
        x = left + (box_w - iw) / 2
    if position.startswith("upper"):
        y = 0
    elif position.startswith("bottom"):
        y = ch - ih
    else:
        y = top + (box_h - ih) / 2
    return {"canvas_size": [int(cw), int(ch)], "original_image_size": [iw, ih],
            "original_image_location": [int(round(x)), int(round(y))]}


def build_expand(params: dict[str, Any]) -> dict[str, Any]:
    """``/v2/image/edit/expand`` [S1]: ``aspect_ratio`` alone is passed as is (Bria centres the
    image); any placement (canvas, position, paddings) is computed into pixel geometry.
    [unconfirmed] names original_image_size / original_image_location."""
    body = _v2(params, "image", "prompt", "seed", "negative_prompt", "preserve_alpha", "prompt_content_moderation",
               *_V2_MODERATION)
    if not body.get("prompt"):
        body.pop("prompt", None)  # 004's default "" means "no prompt"
    placed = params.get("canvas_size") or params.get("position") or any(
        params.get(f"padding_{k}") is not None for k in ("left", "right", "top", "bottom"))
    if not placed:
        body["aspect_ratio"] = params.get("aspect_ratio")
        return body
    body.update(expand_geometry(image_size(params.get("image"), "image"), params))
    return body


def build_blur_background(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "scale", "preserve_alpha", *_V2_MODERATION)


def build_solid_background(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/product/packshot`` [S1][S4]: 2000×2000, ``background_color`` hex or "transparent"."""
    return {**_v1_image(_first(params, "image_url", "image_file")),
            "background_color": params.get("background_color") or "#FFFFFF",
            "force_rmbg": bool(params.get("force_rmbg"))}


def build_generate_background(params: dict[str, Any]) -> dict[str, Any]:
    """``/v2/image/edit/replace_background`` [S1]; [unconfirmed] names of the options beyond
    image/prompt (ref_images, enhance_ref_images, refine_prompt, original_quality, fast, …)."""
    body = _v2(params, "image", "prompt", "enhance_ref_images", "refine_prompt", "prompt_content_moderation",
               "negative_prompt", "original_quality", "force_background_detection", "fast", "seed", *_V2_MODERATION)
    if params.get("ref_images"):
        body["ref_images"] = [_raw(v) for v in params["ref_images"]]
    return body


SHADOW_BLUR_DEFAULT = {"regular": 15, "float": 20}  # 004 docstring defaults (not in the schema)
SHADOW_HEIGHT_DEFAULT = 70


def build_product_shadow(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/product/shadow`` [S1][S4]. ``background_color`` "transparent" (003) = omitted (004)."""
    p = _drop_none(params)
    kind = p.get("shadow_type", "regular")
    body: dict[str, Any] = {**_v1_image(_first(p, "image_url", "image_file")), "type": kind,
                            "shadow_color": p.get("shadow_color", "#000000"),
                            "shadow_intensity": p.get("shadow_intensity", 60),
                            "shadow_offset": p.get("shadow_offset", [0, 15]),
                            "shadow_blur": p.get("shadow_blur", SHADOW_BLUR_DEFAULT.get(kind, 15)),
                            "force_rmbg": bool(p.get("force_rmbg"))}
    if kind == "float":
        body["shadow_height"] = p.get("shadow_height", SHADOW_HEIGHT_DEFAULT)
        if "shadow_width" in p:
            body["shadow_width"] = p["shadow_width"]
    background = p.get("background_color")
    if background and background.lower() != "transparent":
        body["background_color"] = background
    return body


_LIFESTYLE = ("num_results", "fast", "original_quality", "force_rmbg", "placement_type", "manual_placement_selection",
              "padding_values", "foreground_image_size", "foreground_image_location", "aspect_ratio")


def _lifestyle(p: dict[str, Any]) -> dict[str, Any]:
    body = _pick(p, *_LIFESTYLE)
    if p.get("canvas_for_packshot_size"):
        body["shot_size"] = p["canvas_for_packshot_size"]  # 004's docstring name is shot_size
    body.update(_v1_image(_first(p, "image_url", "image_file")))
    return body


def build_background_by_text(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/product/lifestyle_shot_by_text`` [S1]."""
    p = _drop_none(params)
    return {**_lifestyle(p), **_pick(p, "scene_description", "optimize_description", "exclude_elements")}


def build_background_by_image(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/product/lifestyle_shot_by_image`` [S1]: references as URLs, else one base64 file."""
    p = _drop_none(params)
    body = {**_lifestyle(p), **_pick(p, "enhance_ref_image", "ref_image_influence")}
    refs = p.get("ref_image_urls") or []
    if refs and all(_is_url(r) for r in refs):
        body["ref_image_urls"] = list(refs)
    elif refs:
        body["ref_image_file"] = strip_data_url(refs[0])  # fetched: the first reference as base64
    elif p.get("ref_image_file"):
        body["ref_image_file"] = strip_data_url(p["ref_image_file"])
    return body


def build_enhance(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "seed", "steps_num", "resolution", "preserve_alpha", *_V2_MODERATION)


def build_upscale(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "desired_increase", "preserve_alpha", *_V2_MODERATION)


def build_video_remove_background(params: dict[str, Any]) -> dict[str, Any]:
    """``/v2/video/edit/remove_background`` [S2]: the video goes as its public URL."""
    return _pick(_drop_none(params), "video", "background_color", "output_container_and_codec")


# --------------------------------------------------------------------------- media specs
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
IMAGE = dict(kind="image", limits=BRIA_IMAGE)


def _upscale_check(width: int, height: int, params: dict[str, Any]) -> str | None:
    factor = int(params.get("desired_increase") or 2)
    if max(width, height) * factor > UPSCALE_MAX_OUTPUT_SIDE:
        return (f"{width}x{height} upscaled {factor}x would exceed the maximum output of "
                f"{UPSCALE_MAX_OUTPUT_SIDE}x{UPSCALE_MAX_OUTPUT_SIDE}")
    return None


def _img(field: str, **kw: Any) -> MediaInput:
    return MediaInput(field, **{**IMAGE, **kw})


_GUIDANCE_INPUTS = (*(_img(f"guidance_method_{n}_image_{k}") for n in (1, 2) for k in ("url", "file")),
                    _img("image_prompt_urls", many=True), _img("image_prompt_file"))
_V1_PAIR = (_img("image_url"), _img("image_file"))


def _job(name: str, path: str, model: type, summary: str, tag: str, upstream: str, build: Any, **kw: Any) -> Operation:
    return Operation(name=f"bria.{name}", provider="bria", method="POST", path=path, request_model=model,
                     kind=Kind.JOB, summary=summary, tags=(tag,), upstream_path=upstream, build=build, **kw)


GEN, EDIT, EDIT_GEN, VIDEO, PROMPT = ("Image Generation", "Image Editing", "Image Editing Generation",
                                      "Video Editing", "Prompt Enhancement")
B = "/api/v1/bria"

CANONICAL: list[Operation] = [
    Operation(name="bria.enhance_prompt", provider="bria", method="POST", path=f"{B}/prompt/enhance-prompt",
              request_model=S.Body_bria_enhance_prompt_api_v1_bria_prompt_enhance_prompt_post, kind=Kind.QUICK,
              summary="Bria Enhance Prompt", tags=(PROMPT,), upstream_path="/v1/prompt_enhancer",
              build=build_enhance_prompt, output="json", body="form",
              description="Enhances a prompt with Bria's prompt enhancer (form data, not JSON)."),
    _job("generate_image", f"{B}/image/generation/generate-image", BriaGenerateImageRequest, "Bria Generate Image",
         GEN, "/v2/image/generate", build_generate_image_routed, route=route_generate_image,
         inputs=_GUIDANCE_INPUTS, upstream_requests=one_per_output, resolve=resolver("model_id"),
         description="Text-to-image with Bria: FIBO (API v2); with ControlNet guidance, Bria's v1 base model; "
                     "with `model_id` (one of your trained tailored models), Bria's tailored generation."),
    _job("generate_image_fast", f"{B}/image/generation/generate-image-fast", S.BriaGenerateImageFastRequest,
         "Bria Generate Image Fast", GEN, "/v1/text-to-image/fast/2.3", build_v1_text_to_image,
         inputs=_GUIDANCE_INPUTS),
    _job("generate_image_hd", f"{B}/image/generation/generate-image-hd", S.BriaGenerateImageHDRequest,
         "Bria Generate Image Hd", GEN, "/v1/text-to-image/hd/2.2", build_v1_text_to_image),
    _job("generate_vector_base", f"{B}/image/generation/generate-vector-base", S.BriaGenerateVectorBaseRequest,
         "Bria Generate Vector Base", GEN, "/v1/text-to-vector/base/3.2", build_v1_text_to_image,
         route=route_vector_base, inputs=_GUIDANCE_INPUTS, output="vector", resolve=resolver("model_id")),
    _job("generate_vector_fast", f"{B}/image/generation/generate-vector-fast", S.BriaGenerateVectorFastRequest,
         "Bria Vector Generation Fast", GEN, "/v1/text-to-vector/fast/2.3", build_v1_text_to_image,
         inputs=_GUIDANCE_INPUTS, output="vector"),
    _job("generate_variation", f"{B}/image/generation/generate-variation", S.BriaGenerateVariationRequest,
         "Bria Generate Variation", GEN, "/v1/reimagine", build_variation, inputs=_V1_PAIR,
         resolve=resolver("tailored_model_id")),
    _job("get_masks", f"{B}/image/editing/get-masks", S.BriaGetMasksRequest, "Bria Get Masks", EDIT,
         "/v1/objects/mask_generator", build_get_masks, inputs=_V1_PAIR, output="archive",
         description="Segmentation masks: the result is a ZIP of mask PNGs (one per object)."),
    _job("remove_background", f"{B}/image/editing/remove-background", S.BriaRemoveBackgroundRequest,
         "Bria Remove Background", EDIT, "/v2/image/edit/remove_background", build_remove_background,
         inputs=(_img("image"),)),
    _job("product_cutout", f"{B}/image/editing/product-cutout", S.BriaProductCutoutRequest, "Bria Product Cutout",
         EDIT, "/v1/product/cutout", build_product_cutout, inputs=_V1_PAIR),
    _job("crop_foreground", f"{B}/image/editing/crop-foreground", S.BriaCropForegroundRequest,
         "Bria Crop Foreground", EDIT, "/v2/image/edit/crop_foreground", build_crop_foreground,
         inputs=(_img("image"),)),
    _job("erase", f"{B}/image/editing-generation/erase", S.BriaEraserRequest, "Bria Erase", EDIT_GEN,
         "/v2/image/edit/erase", build_erase, inputs=(_img("image"), _img("mask"))),
    _job("erase_foreground", f"{B}/image/editing-generation/erase-foreground", S.BriaEraseForegroundRequest,
         "Bria Erase Foreground", EDIT_GEN, "/v2/image/edit/erase_foreground", build_erase_foreground,
         inputs=(_img("image"),)),
    _job("inpaint", f"{B}/image/editing-generation/inpaint", S.BriaInpaintingRequest, "Bria Inpainting", EDIT_GEN,
         "/v2/image/edit/gen_fill", build_inpaint, inputs=(_img("image"), _img("mask"))),
    _job("expand_image", f"{B}/image/editing-generation/expand-image", S.BriaExpandImageRequest,
         "Bria Expand Image", EDIT_GEN, "/v2/image/edit/expand", build_expand, inputs=(_img("image"),)),
    _job("blur_background", f"{B}/image/editing-generation/blur-background", S.BriaBlurBackgroundRequest,
         "Bria Blur Background", EDIT_GEN, "/v2/image/edit/blur_background", build_blur_background,
         inputs=(_img("image"),)),
    _job("generate_solid_background", f"{B}/image/editing-generation/generate-solid-background",
         S.BriaGenerateSolidBackgroundRequest, "Bria Generate Solid Background", EDIT_GEN, "/v1/product/packshot",
         build_solid_background, inputs=_V1_PAIR),
    _job("generate_background", f"{B}/image/editing-generation/generate-background", S.BriaGenerateBackgroundRequest,
         "Bria Generate Background", EDIT_GEN, "/v2/image/edit/replace_background", build_generate_background,
         inputs=(_img("image"), _img("ref_images", many=True))),
    _job("generate_product_shadow", f"{B}/image/editing-generation/generate-product-shadow",
         S.BriaGenerateProductShadowRequest, "Bria Generate Product Shadow", EDIT_GEN, "/v1/product/shadow",
         build_product_shadow, inputs=_V1_PAIR),
    _job("generate_product_background_by_text", f"{B}/image/editing-generation/generate-product-background-by-text",
         S.BriaGenerateProductBackgroundByTextRequest, "Bria Generate Product Background By Text", EDIT_GEN,
         "/v1/product/lifestyle_shot_by_text", build_background_by_text, inputs=_V1_PAIR),
    _job("generate_product_background_by_image",
         f"{B}/image/editing-generation/generate-product-background-by-image",
         S.BriaGenerateProductBackgroundByImageRequest, "Bria Generate Product Background By Image", EDIT_GEN,
         "/v1/product/lifestyle_shot_by_image", build_background_by_image,
         inputs=(*_V1_PAIR, _img("ref_image_urls", many=True), _img("ref_image_file"))),
    _job("enhance_image", f"{B}/image/editing-generation/enhance-image", S.BriaEnhanceImageRequest,
         "Bria Enhance Image", EDIT_GEN, "/v2/image/edit/enhance", build_enhance, inputs=(_img("image"),)),
    _job("upscale_image", f"{B}/image/editing-generation/upscale-image", S.BriaUpscaleImageRequest,
         "Bria Upscale Image", EDIT_GEN, "/v2/image/edit/increase_resolution", build_upscale,
         inputs=(_img("image", limits=BRIA_UPSCALE_INPUT, check=_upscale_check),)),
    _job("video_remove_background", f"{B}/video/editing/remove-background", S.BriaVideoRemoveBackgroundRequest,
         "Bria Video Remove Background", VIDEO, "/v2/video/edit/remove_background", build_video_remove_background,
         inputs=(MediaInput("video", kind="video", limits=BRIA_VIDEO, formats=(), url_only=True),),
         output="video", description="Video background removal (asynchronous: poll the status URL)."),
    # Tailored generation with the tenant's trained LoRA models (the management endpoints are
    # routes of providers/bria/tailored/). Status: GET /api/v1/bria/status/{request_id}.
    _job("lora_generate_image", "/api/v1/bria-lora/image/generation/generate-image", S.BriaLoraGenerateImagesRequest,
         "Generate Images", "Bria LoRA Generation", "/v1/text-to-image/tailored/{model_id}", build_lora_image,
         route=route_lora_image, resolve=resolver("model_id", lora_rules=True),
         description="Generates images with one of your trained tailored (LoRA) models: `model_id` is the id "
                     "of GET /api/v1/bria-lora/models (status Completed)."),
    _job("lora_generate_vector", "/api/v1/bria-lora/image/generation/generate-vector", S.BriaLoraGenerateVectorRequest,
         "Generate Vector", "Bria LoRA Generation", "/v1/text-to-vector/tailored/{model_id}", build_lora_vector,
         route=route_lora_vector, inputs=_GUIDANCE_INPUTS, output="vector", resolve=resolver("model_id"),
         description="Generates SVG vector graphics with one of your trained tailored (LoRA) models."),
]


# =========================================================================== 003's legacy paths (deprecated aliases)
# 003's client examples call nine editing-generation endpoints under /image/editing/ and the video
# endpoint as /video/editing/video-remove-background with form data (INVENTORY §8-A 1–3). Each is
# an alias row: its own request model (the canonical one plus 003's field names, marked
# deprecated), routed as deprecated, normalised into the canonical operation's params and
# validated again by the canonical model, so 004's limits and rules apply unchanged. Aliases never
# become jobs of their own: the job is the canonical operation's.
_LEGACY_DOC = {
    "image_url": "Deprecated (003): URL of the input image; use `image`.",
    "image_file": "Deprecated (003): base64 input image; use `image`.",
    "mask_url": "Deprecated (003): URL of the mask; use `mask`.",
    "mask_file": "Deprecated (003): base64 mask; use `mask`.",
    "blur_scale": "Deprecated (003): use `scale`.",
    "bg_prompt": "Deprecated (003): use `prompt`.",
    "force_rmbg": "Deprecated (003): use `force_background_detection`.",
    "enhance_ref_image": "Deprecated (003): use `enhance_ref_images`.",
    "ref_image_url": "Deprecated (003): use `ref_images`.",
    "ref_image_file": "Deprecated (003): use `ref_images`.",
    "content_moderation": "Deprecated (003): sets visual_input_content_moderation and visual_output_content_moderation.",
    "video_url": "Deprecated (003): URL of the input video; use `video`.",
}
_IGNORED_DOC = "Deprecated (003): 004 has no such field; ignored."


def legacy_model(canonical: type[BaseModel], ignored: tuple[str, ...] = ()) -> type[BaseModel]:
    """The alias's request model: ``canonical`` plus 003's names (deprecated); the canonical
    fields those names stand for become optional here (the canonical model requires them again)."""
    from pydantic import Field, create_model

    renames = {**S.LEGACY_FIELDS.get(canonical.__name__, {}),
               **{k: (v[0], None) for k, v in S.LEGACY_SPLIT.get(canonical.__name__, {}).items()}}
    fields: dict[str, Any] = {}
    for legacy, (target, _convert) in renames.items():
        info = canonical.model_fields[target]
        if info.is_required():
            fields[target] = (Any, Field(None, title=info.title, description=f"{info.description} "
                                         f"(or the deprecated {', '.join(k for k, v in renames.items() if v[0] == target)})"))
        if legacy == "content_moderation":
            kind: Any = bool | None
        elif legacy in ("ref_image_url", "ref_image_file"):
            kind = str | list[str] | None
        elif legacy in ("force_rmbg", "enhance_ref_image"):
            kind = bool | None
        elif legacy == "blur_scale":
            kind = int | None
        else:
            kind = str | None
        fields[legacy] = (kind, Field(None, description=_LEGACY_DOC.get(legacy), json_schema_extra={"deprecated": True}))
    for name in ignored:
        fields[name] = (Any, Field(None, description=_IGNORED_DOC, json_schema_extra={"deprecated": True}))
    return create_model(f"{canonical.__name__}Legacy", __base__=canonical,
                        __doc__=f"{canonical.__name__} with the field names of the older client examples (003).",
                        **fields)


def canonical_params(canonical: type[BaseModel]) -> Any:
    """Normaliser: alias params → the canonical request, validated by ``canonical`` (pydantic's
    ValidationError escapes; the API turns it into a 422)."""

    fields = canonical.model_fields

    def normalize(params: dict[str, Any]) -> dict[str, Any]:
        # Unset and default values are left out, so the canonical defaults apply (and are not
        # validated: expand-image's default prompt "" is below its own minLength).
        given = {k: v for k, v in params.items()
                 if v is not None and not (k in fields and not fields[k].is_required() and fields[k].default == v)}
        return canonical.model_validate(given).model_dump(mode="json")

    return normalize


_BY_NAME = {op.name: op for op in CANONICAL}


def _alias(path: str, target: str, ignored: tuple[str, ...] = (), body: str = "json") -> Operation:
    op = _BY_NAME[f"bria.{target}"]
    return Operation(name=f"{op.name}.legacy", provider="bria", method="POST", path=path,
                     request_model=legacy_model(op.request_model, ignored), kind=op.kind,
                     summary=f"{op.summary} (legacy path)", tags=op.tags, output=op.output, body=body,
                     deprecated=True, alias_of=op.name, normalize=canonical_params(op.request_model),
                     description=f"Deprecated alias of `{op.method} {op.path}` kept for older clients; "
                                 "same behaviour and limits.")


ALIASES: list[Operation] = [
    _alias(f"{B}/image/editing/expand-image", "expand_image"),
    _alias(f"{B}/image/editing/inpaint", "inpaint", ("num_results",)),
    _alias(f"{B}/image/editing/blur-background", "blur_background", ("force_rmbg",)),
    _alias(f"{B}/image/editing/generate-solid-background", "generate_solid_background"),
    _alias(f"{B}/image/editing/generate-background", "generate_background", ("num_results",)),
    _alias(f"{B}/image/editing/generate-product-shadow", "generate_product_shadow"),
    _alias(f"{B}/image/editing/generate-product-background-by-text", "generate_product_background_by_text"),
    _alias(f"{B}/image/editing/generate-product-background-by-image", "generate_product_background_by_image"),
    _alias(f"{B}/image/editing/upscale-image", "upscale_image"),
    _alias(f"{B}/video/editing/video-remove-background", "video_remove_background", body="form"),
]

OPERATIONS: list[Operation] = [*CANONICAL, *ALIASES]
