"""004's prose-only rules of the Bria and Bria-LoRA request models, as functions: each takes a
validated model and answers its violations (pydantic error items, each with its own ``type`` and a
``loc`` naming the field; several are reported together). ``RULES`` maps a request model's class
name to its check; schemas.py attaches them to the models. Sources: INVENTORY §4 notes and §8-D
for /api/v1/bria/, §4.8/§4.9, [16]/[17], §8-D 28/29 and §8-E 35/36 for /api/v1/bria-lora/.

Also 003's legacy field names (INVENTORY §8-A 3: ``LEGACY_FIELDS``, ``LEGACY_SPLIT``), renamed to
004's before validation (``rename_legacy``).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

_HEX_COLOUR = re.compile(r"^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$")
ALPHA_CODECS = ("webm_vp9", "mkv_vp9", "mov_proresks")  # Bria video docs: presets that carry alpha


def err(kind: str, message: str, loc: str | tuple, input_value: Any, /, **ctx: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message, ctx or None),
                            loc=(loc,) if isinstance(loc, str) else loc, input=input_value)


def _to_data_uri(value: Any) -> Any:
    """A raw base64 string as a data URI (the form ``ref_images`` items accept)."""
    if isinstance(value, str) and not value.startswith(("http://", "https://", "data:")):
        return "data:;base64," + value
    return value


# legacy name -> (canonical name, converter); the first legacy name present wins for a target,
# and a canonical name sent by the client always wins over legacy ones.
_IMAGE = {"image_url": ("image", None), "image_file": ("image", None)}
_MASK = {"mask_url": ("mask", None), "mask_file": ("mask", None)}
LEGACY_FIELDS: dict[str, dict[str, tuple[str, Any]]] = {
    "BriaRemoveBackgroundRequest": {**_IMAGE},
    "BriaCropForegroundRequest": {**_IMAGE, "force_rmbg": ("force_background_detection", None)},
    "BriaEraserRequest": {**_IMAGE, **_MASK},
    "BriaEraseForegroundRequest": {**_IMAGE},
    "BriaInpaintingRequest": {**_IMAGE, **_MASK},
    "BriaExpandImageRequest": {**_IMAGE},
    "BriaBlurBackgroundRequest": {**_IMAGE, "blur_scale": ("scale", None)},
    "BriaGenerateBackgroundRequest": {
        **_IMAGE, "bg_prompt": ("prompt", None), "force_rmbg": ("force_background_detection", None),
        "enhance_ref_image": ("enhance_ref_images", None),
        "ref_image_url": ("ref_images", lambda v: v if isinstance(v, list) else [v]),
        "ref_image_file": ("ref_images", lambda v: [_to_data_uri(x) for x in (v if isinstance(v, list) else [v])]),
    },
    "BriaEnhanceImageRequest": {**_IMAGE},
    "BriaUpscaleImageRequest": {**_IMAGE},
    "BriaVideoRemoveBackgroundRequest": {"video_url": ("video", None)},
}
# Legacy flags that fan out to several canonical ones.
LEGACY_SPLIT: dict[str, dict[str, tuple[str, ...]]] = {
    "BriaUpscaleImageRequest": {"content_moderation": ("visual_input_content_moderation",
                                                       "visual_output_content_moderation")},
}


def rename_legacy(model_name: str, data: Any) -> Any:
    """``data`` with 003's legacy field names replaced by 004's (see LEGACY_FIELDS)."""
    renames = LEGACY_FIELDS.get(model_name)
    splits = LEGACY_SPLIT.get(model_name, {})
    if not isinstance(data, dict) or not (renames or splits):
        return data
    out = dict(data)
    for legacy, (target, convert) in (renames or {}).items():
        if legacy not in out:
            continue
        value = out.pop(legacy)
        if value is None or out.get(target) is not None:
            continue
        out[target] = convert(value) if convert else value
    for legacy, targets in splits.items():
        if legacy in out:
            value = out.pop(legacy)
            for target in targets:
                out.setdefault(target, value)
    return out


# --------------------------------------------------------------------------- /api/v1/bria/ endpoints
def _one_image(m: Any, url: str = "image_url", file: str = "image_file") -> list[InitErrorDetails]:
    """v1-style pair: both optional in the schema, one required by the docstring; URL wins."""
    if getattr(m, url) is None and getattr(m, file) is None:
        return [err("image_required", "{url} or {file} is required ({url} takes precedence over {file})",
                     url, None, url=url, file=file)]
    return []


def _pair(m: Any, field: str, required: bool = False) -> list[InitErrorDetails]:
    value = getattr(m, field)
    if value is None:
        return [err("missing", "{field} is required here", field, None, field=field)] if required else []
    if len(value) != 2:
        return [err("pair_required", "{field} must be two integers [width, height] or [x, y], got {n} item(s)",
                     field, value, field=field, n=len(value))]
    return []


def _colour(m: Any, field: str, allow_transparent: bool) -> list[InitErrorDetails]:
    value = getattr(m, field)
    if value is None or _HEX_COLOUR.match(value) or (allow_transparent and value.lower() == "transparent"):
        return []
    extra = " or 'transparent'" if allow_transparent else ""
    return [err("colour_invalid", "{field} must be a hex colour like #FFFFFF{extra}, got '{value}'",
                 field, value, field=field, extra=extra, value=value)]


def model_id_invalid(model_id: Any) -> ValidationError:
    return ValidationError.from_exception_data("model_id", [err(
        "model_id_type", "model_id must be the id (a string or an integer) of one of your tailored models",
        "model_id", model_id)])


def _rules_variation(m: Any) -> list[InitErrorDetails]:
    errors = _one_image(m)
    if not m.fast and m.num_results != 1:
        errors.append(err("num_results_without_fast", "num_results must be 1 when fast is false (got {n})",
                           "num_results", m.num_results, n=m.num_results))
    return errors


def _rules_inpaint(m: Any) -> list[InitErrorDetails]:
    if m.mask is None and m.mask_type != "border_only":
        return [err("mask_required", "mask is required unless mask_type is 'border_only' (mask_type is '{t}')",
                     "mask", None, t=str(m.mask_type.value if hasattr(m.mask_type, "value") else m.mask_type))]
    return []


_PADDINGS = ("padding_left", "padding_right", "padding_top", "padding_bottom")


def _rules_expand(m: Any) -> list[InitErrorDetails]:
    errors: list[InitErrorDetails] = []
    paddings = [p for p in _PADDINGS if getattr(m, p) is not None]
    if m.canvas_size is None and m.aspect_ratio is None and not paddings:
        errors.append(err("expand_target_missing",
                           "one of canvas_size, aspect_ratio or padding_left/right/top/bottom is required",
                           "canvas_size", None))
    if m.canvas_size is not None:
        errors += _pair(m, "canvas_size")
        if len(m.canvas_size) == 2 and not all(1 <= v <= 16000 for v in m.canvas_size):
            errors.append(err("canvas_size_invalid", "canvas_size values must be between 1 and 16000 pixels",
                               "canvas_size", m.canvas_size))
    if m.position is not None and paddings:
        errors.append(err("position_with_padding",
                           "position and padding_* are alternative ways to place the image; send one of them "
                           "(got position and {paddings})", "position", str(m.position.value),
                           paddings=", ".join(paddings)))
    for a, b in (("padding_left", "padding_right"), ("padding_top", "padding_bottom")):
        total = (getattr(m, a) or 0) + (getattr(m, b) or 0)
        if total >= 1:
            errors.append(err("padding_too_large", "{a} + {b} must be less than 1 (the image needs room), got {t}",
                               a, getattr(m, a), a=a, b=b, t=f"{total:g}"))
    return errors


def _rules_generate_background(m: Any) -> list[InitErrorDetails]:
    errors = []
    if not m.prompt and not m.ref_images:
        errors.append(err("prompt_or_ref_images_required", "either ref_images or prompt is required", "prompt", None))
    if m.negative_prompt is not None and m.fast:
        errors.append(err("negative_prompt_requires_slow_mode", "negative_prompt is only used when fast is false",
                           "negative_prompt", m.negative_prompt))
    return errors


def _rules_shadow(m: Any) -> list[InitErrorDetails]:
    return [*_one_image(m), *_colour(m, "shadow_color", False), *_colour(m, "background_color", True),
            *_pair(m, "shadow_offset")]


def _placement(m: Any) -> list[InitErrorDetails]:
    errors = [*_pair(m, "canvas_for_packshot_size"), *_pair(m, "foreground_image_size"),
              *_pair(m, "foreground_image_location")]
    if str(m.placement_type.value) == "custom_coordinates":
        for field in ("foreground_image_size", "foreground_image_location"):
            if getattr(m, field) is None:
                errors.append(err("custom_coordinates_incomplete",
                                   "{field} is required when placement_type is 'custom_coordinates'",
                                   field, None, field=field))
    return errors


def _rules_by_text(m: Any) -> list[InitErrorDetails]:
    errors = [*_one_image(m), *_placement(m)]
    if m.exclude_elements is not None and m.fast:
        errors.append(err("exclude_elements_requires_slow_mode",
                           "exclude_elements requires fast=false (fast is true; it defaults to true)",
                           "exclude_elements", m.exclude_elements))
    return errors


def _rules_by_image(m: Any) -> list[InitErrorDetails]:
    errors = [*_one_image(m), *_placement(m)]
    if not m.ref_image_urls and m.ref_image_file is None:
        errors.append(err("reference_required", "ref_image_urls or ref_image_file is required", "ref_image_urls", None))
    return errors


def _rules_video(m: Any) -> list[InitErrorDetails]:
    transparent = (m.background_color or "Transparent") == "Transparent"
    if transparent and (m.output_container_and_codec or "webm_vp9") not in ALPHA_CODECS:
        return [err("codec_without_alpha",
                     "background_color 'Transparent' needs an output that carries alpha ({codecs}); "
                     "'{codec}' has none: choose a background colour or an alpha codec",
                     "output_container_and_codec", m.output_container_and_codec,
                     codecs=", ".join(ALPHA_CODECS), codec=m.output_container_and_codec)]
    return []


RULES: dict[str, Any] = {
    "BriaGenerateVariationRequest": _rules_variation,
    "BriaGetMasksRequest": _one_image,
    "BriaProductCutoutRequest": _one_image,
    "BriaInpaintingRequest": _rules_inpaint,
    "BriaExpandImageRequest": _rules_expand,
    "BriaGenerateSolidBackgroundRequest": lambda m: [*_one_image(m), *_colour(m, "background_color", True)],
    "BriaGenerateBackgroundRequest": _rules_generate_background,
    "BriaGenerateProductShadowRequest": _rules_shadow,
    "BriaGenerateProductBackgroundByTextRequest": _rules_by_text,
    "BriaGenerateProductBackgroundByImageRequest": _rules_by_image,
    "BriaVideoRemoveBackgroundRequest": _rules_video,
}


# --------------------------------------------------------------------------- /api/v1/bria-lora/ endpoints
# 004's prose-only rules of the LoRA endpoints (INVENTORY §4.8/§4.9, [16]/[17], §8-D 28/29 and
# §8-E 35/36). Rules that depend on the tenant's objects (the model's training version, ids in the
# path) are checked by the tailored routes (tailored/routes_common.py, tailored/service.py).
def _rules_create_project(m: Any) -> list[InitErrorDetails]:
    if m.ip_type == "defined_character" and not (m.ip_name or "").strip():
        return [err("ip_name_required", "ip_name is required when ip_type is 'defined_character' "
                     "(the character's name, e.g. 'Lora')", "ip_name", m.ip_name)]
    return []


def _rules_upload_image(m: Any) -> list[InitErrorDetails]:
    if m.file_path is not None:
        return [err("file_path_not_supported",
                     "file_path names a file on the gateway's own disk and is refused: a client may not read "
                     "server files through this API. Send image_url (a public http(s) URL of a JPEG, PNG or "
                     "WEBP image, at least 256x256, at most 12 MB), image_file (the image as base64) or a "
                     "multipart/form-data upload with the image in the field `file` instead",
                     "file_path", m.file_path)]
    return []  # image_url or image_file (an extension field): checked by the route


def _rules_caption(m: Any) -> list[InitErrorDetails]:
    if m.caption is not None and m.regenerate_caption:
        return [err("caption_conflict", "send either caption (a manual caption) or regenerate_caption: true, "
                     "not both (Bria refuses both at once)", "caption", m.caption)]
    if m.caption is None and not m.regenerate_caption:
        return [err("caption_required", "caption or regenerate_caption: true is required", "caption", None)]
    if m.caption is not None and not m.caption.strip():
        return [err("caption_empty", "caption must not be empty", "caption", m.caption)]
    return []


def _rules_lora_image(m: Any) -> list[InitErrorDetails]:
    # [16]: "When fast=false, the default value is 30, the minimum is 20 and the maximum is 50".
    if not m.fast and m.steps_num is not None and m.steps_num < 20:
        return [err("steps_num_without_fast", "steps_num must be between 20 and 50 when fast is false (got {n}); "
                     "4–50 applies to fast: true", "steps_num", m.steps_num, n=m.steps_num)]
    return []


def _rules_lora_vector(m: Any) -> list[InitErrorDetails]:
    # [17]: the same guidance rules as generate-image (a) and (b) above.
    errors: list[InitErrorDetails] = []
    used = []
    for n in (1, 2):
        method = getattr(m, f"guidance_method_{n}")
        if method is None:
            continue
        used.append(f"guidance_method_{n}")
        if getattr(m, f"guidance_method_{n}_image_url") is None and getattr(m, f"guidance_method_{n}_image_file") is None:
            errors.append(err("guidance_image_missing", "guidance_method_{n}_image_url or guidance_method_{n}_image_file "
                               "is required when guidance_method_{n} is set", f"guidance_method_{n}", str(method), n=n))
    if used and m.num_results != 1:
        errors.append(err("num_results_with_guidance", "num_results must be 1 when a guidance method is used "
                           "({methods} set), got {num_results}", "num_results", m.num_results,
                           methods=" and ".join(used), num_results=m.num_results))
    return errors


RULES.update({
    "BriaLoraCreateProjectRequest": _rules_create_project,
    "BriaLoraUploadImageRequest": _rules_upload_image,
    "BriaLoraUpdateImageCaptionRequest": _rules_caption,
    "BriaLoraGenerateImagesRequest": _rules_lora_image,
    "BriaLoraGenerateVectorRequest": _rules_lora_vector,
})
