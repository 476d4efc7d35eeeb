"""Bria / Bria-LoRA request models: the module the rest of the code imports.

The field-level contract (names, types, defaults, enums, limits, ``format: uri``) is generated
from the Vision Studio API reference into ``schemas_gen.py`` (see scripts/gen_schemas.py) and
re-exported here unchanged. This module adds the rules that 004 states only in prose, as
subclasses with the SAME class name (so OpenAPI titles and descriptions stay those of the seed),
and a ``REQUEST_MODELS`` mapping that points at those subclasses.

So far only ``BriaGenerateImageRequest`` (POST /api/v1/bria/image/generation/generate-image)
carries prose rules; sources are 004's docstring for that endpoint (004 line ~1441) and
INVENTORY.md §4 [10] / §8 item 29:

(a) "guidance_method_N_image_file / _image_url: Required if guidance_method_N is specified"
    -> when ``guidance_method_N`` is set, one of the two image inputs must be given
    (error type ``guidance_image_missing``, loc ``guidance_method_N``).
(b) "num_results: ... Use 1 when using guidance methods"
    -> ``num_results`` must be 1 when ``guidance_method_1`` or ``guidance_method_2`` is set
    (error type ``num_results_with_guidance``, loc ``num_results``). The image prompt
    (IP-Adapter) is not a "guidance method" in 004's wording and does not trigger this rule.
(c) Image prompt (``image_prompt_mode`` / ``image_prompt_file`` / ``image_prompt_urls`` /
    ``image_prompt_scale``): 004's docstring marks all four optional and states no dependency
    between them, and §8 lists none, so no cross-field rule is enforced. (003's comment that
    bria_model_version "2.3" is "Required for guidance methods" is an example, not the contract.)
(d) Base64 inputs (``guidance_method_N_image_file``, ``image_prompt_file``) must be valid
    standard base64 (alphabet A-Z a-z 0-9 + /, ``=`` padding, no whitespace), optionally prefixed
    with ``data:image/<type>;base64,`` (error type ``base64_invalid``, loc = the field). Whether
    the bytes are a supported image is checked later, not here.

Errors surface from FastAPI as 422 ``{"detail": [{"type", "loc", "msg", "input", "ctx"}]}`` with
``loc`` = ``["body", <field>]``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pydantic import BaseModel, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from providers.bria import schemas_gen as _gen
from providers.bria.schemas_gen import *  # noqa: F401,F403  (re-export of the generated models)
from providers.bria.schemas_gen import __all__ as _generated_names

__all__ = [*_generated_names, "check_base64"]

_DATA_IMAGE_PREFIX = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)
_BASE64_ALPHABET = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def check_base64(field: str, value: str) -> str:
    """Return ``value`` unchanged if it is base64 (optionally with a data:image/...;base64, prefix).

    Raises ``PydanticCustomError('base64_invalid', ...)`` whose message names the field and the
    rule that failed.
    """

    def fail(reason: str) -> PydanticCustomError:
        return PydanticCustomError(
            "base64_invalid",
            "{field} must be a base64-encoded image (optionally prefixed with "
            "'data:image/<type>;base64,'): {reason}",
            {"field": field, "reason": reason},
        )

    prefix = _DATA_IMAGE_PREFIX.match(value)
    if prefix is not None:
        payload = value[prefix.end():]
    elif value[:5].lower() == "data:":
        raise fail("a data URI must start with 'data:image/<type>;base64,'")
    else:
        payload = value
    if not payload:
        raise fail("it is empty")
    if not _BASE64_ALPHABET.match(payload):
        raise fail("it contains characters outside the base64 alphabet (A-Z, a-z, 0-9, '+', '/', '=' padding; no whitespace)")
    if len(payload) % 4:
        raise fail(f"its length ({len(payload)}) is not a multiple of 4 (missing or extra padding)")
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the checks above catch these
        raise fail(str(exc)) from None
    return value


def _raise_all(model: type[BaseModel], errors: list[InitErrorDetails]) -> None:
    """Raise the collected rule violations with their own ``loc`` (pydantic keeps it)."""
    if errors:
        raise ValidationError.from_exception_data(model.__name__, errors)


class BriaGenerateImageRequest(_gen.BriaGenerateImageRequest):
    # Keep the seed's description (pydantic reads the class's own __doc__).
    __doc__ = _gen.BriaGenerateImageRequest.__doc__

    @field_validator("guidance_method_1_image_file", "guidance_method_2_image_file", "image_prompt_file")
    @classmethod
    def _base64_inputs(cls, value: str | None, info: Any) -> str | None:  # rule (d)
        if value is None:
            return value
        return check_base64(info.field_name, value)

    @model_validator(mode="after")
    def _prose_rules(self) -> BriaGenerateImageRequest:
        errors: list[InitErrorDetails] = []
        used: list[str] = []
        for n in (1, 2):
            method = getattr(self, f"guidance_method_{n}")
            if method is None:
                continue
            used.append(f"guidance_method_{n}")
            url = getattr(self, f"guidance_method_{n}_image_url")
            file = getattr(self, f"guidance_method_{n}_image_file")
            if url is None and file is None:  # rule (a)
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "guidance_image_missing",
                            "guidance_method_{n}_image_url or guidance_method_{n}_image_file is required "
                            "when guidance_method_{n} is set",
                            {"n": n, "guidance_method": str(method)},
                        ),
                        loc=(f"guidance_method_{n}",),
                        input=str(method),
                    )
                )
        if used and self.num_results != 1:  # rule (b)
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError(
                        "num_results_with_guidance",
                        "num_results must be 1 when a guidance method is used ({methods} set), got {num_results}",
                        {"methods": " and ".join(used), "num_results": self.num_results},
                    ),
                    loc=("num_results",),
                    input=self.num_results,
                )
            )
        _raise_all(type(self), errors)
        return self


# (method, path) -> request model, pointing at the rule-enforcing subclasses.
REQUEST_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    **_gen.REQUEST_MODELS,
    ("POST", "/api/v1/bria/image/generation/generate-image"): BriaGenerateImageRequest,
}


# =========================================================================== all other Bria endpoints
# 004's prose-only rules for the other /api/v1/bria/ endpoints (INVENTORY §4 notes and §8-D), and
# the legacy field names of 003's client examples (INVENTORY §8-A 3), applied as subclasses with
# the seed's class names so the OpenAPI document stays the seed's. Every rule error has its own
# type and a ``loc`` naming the field; several violations are reported together.
#
# Legacy names are accepted (and renamed before validation) at the canonical paths too, because
# 003 sends some of them to paths 004 kept (e.g. ``image_url`` to .../image/editing/remove-background).
# They are not part of the request schema; the deprecated alias routes document them.

_HEX_COLOUR = re.compile(r"^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$")
ALPHA_CODECS = ("webm_vp9", "mkv_vp9", "mov_proresks")  # Bria video docs: presets that carry alpha


def _err(kind: str, message: str, loc: str | tuple, input_value: Any, /, **ctx: Any) -> InitErrorDetails:
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


class _Rules(BaseModel):
    """Mixin: legacy names renamed before validation, ``RULES[<class name>]`` checked after."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_names(cls, data: Any) -> Any:
        return rename_legacy(cls.__name__, data)

    @model_validator(mode="after")
    def _prose_rules(self) -> Any:
        check = RULES.get(type(self).__name__)
        if check is not None:
            _raise_all(type(self), check(self))
        return self


# ----------------------------------------------------------------------- rule functions
def _one_image(m: Any, url: str = "image_url", file: str = "image_file") -> list[InitErrorDetails]:
    """v1-style pair: both optional in the schema, one required by the docstring; URL wins."""
    if getattr(m, url) is None and getattr(m, file) is None:
        return [_err("image_required", "{url} or {file} is required ({url} takes precedence over {file})",
                     url, None, url=url, file=file)]
    return []


def _pair(m: Any, field: str, required: bool = False) -> list[InitErrorDetails]:
    value = getattr(m, field)
    if value is None:
        return [_err("missing", "{field} is required here", field, None, field=field)] if required else []
    if len(value) != 2:
        return [_err("pair_required", "{field} must be two integers [width, height] or [x, y], got {n} item(s)",
                     field, value, field=field, n=len(value))]
    return []


def _colour(m: Any, field: str, allow_transparent: bool) -> list[InitErrorDetails]:
    value = getattr(m, field)
    if value is None or _HEX_COLOUR.match(value) or (allow_transparent and value.lower() == "transparent"):
        return []
    extra = " or 'transparent'" if allow_transparent else ""
    return [_err("colour_invalid", "{field} must be a hex colour like #FFFFFF{extra}, got '{value}'",
                 field, value, field=field, extra=extra, value=value)]


def _model_id_invalid(model_id: Any) -> ValidationError:
    return ValidationError.from_exception_data("model_id", [_err(
        "model_id_type", "model_id must be the id (a string or an integer) of one of your tailored models",
        "model_id", model_id)])


def _rules_variation(m: Any) -> list[InitErrorDetails]:
    errors = _one_image(m)
    if not m.fast and m.num_results != 1:
        errors.append(_err("num_results_without_fast", "num_results must be 1 when fast is false (got {n})",
                           "num_results", m.num_results, n=m.num_results))
    return errors


def _rules_inpaint(m: Any) -> list[InitErrorDetails]:
    if m.mask is None and m.mask_type != "border_only":
        return [_err("mask_required", "mask is required unless mask_type is 'border_only' (mask_type is '{t}')",
                     "mask", None, t=str(m.mask_type.value if hasattr(m.mask_type, "value") else m.mask_type))]
    return []


_PADDINGS = ("padding_left", "padding_right", "padding_top", "padding_bottom")


def _rules_expand(m: Any) -> list[InitErrorDetails]:
    errors: list[InitErrorDetails] = []
    paddings = [p for p in _PADDINGS if getattr(m, p) is not None]
    if m.canvas_size is None and m.aspect_ratio is None and not paddings:
        errors.append(_err("expand_target_missing",
                           "one of canvas_size, aspect_ratio or padding_left/right/top/bottom is required",
                           "canvas_size", None))
    if m.canvas_size is not None:
        errors += _pair(m, "canvas_size")
        if len(m.canvas_size) == 2 and not all(1 <= v <= 16000 for v in m.canvas_size):
            errors.append(_err("canvas_size_invalid", "canvas_size values must be between 1 and 16000 pixels",
                               "canvas_size", m.canvas_size))
    if m.position is not None and paddings:
        errors.append(_err("position_with_padding",
                           "position and padding_* are alternative ways to place the image; send one of them "
                           "(got position and {paddings})", "position", str(m.position.value),
                           paddings=", ".join(paddings)))
    for a, b in (("padding_left", "padding_right"), ("padding_top", "padding_bottom")):
        total = (getattr(m, a) or 0) + (getattr(m, b) or 0)
        if total >= 1:
            errors.append(_err("padding_too_large", "{a} + {b} must be less than 1 (the image needs room), got {t}",
                               a, getattr(m, a), a=a, b=b, t=f"{total:g}"))
    return errors


def _rules_generate_background(m: Any) -> list[InitErrorDetails]:
    errors = []
    if not m.prompt and not m.ref_images:
        errors.append(_err("prompt_or_ref_images_required", "either ref_images or prompt is required", "prompt", None))
    if m.negative_prompt is not None and m.fast:
        errors.append(_err("negative_prompt_requires_slow_mode", "negative_prompt is only used when fast is false",
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
                errors.append(_err("custom_coordinates_incomplete",
                                   "{field} is required when placement_type is 'custom_coordinates'",
                                   field, None, field=field))
    return errors


def _rules_by_text(m: Any) -> list[InitErrorDetails]:
    errors = [*_one_image(m), *_placement(m)]
    if m.exclude_elements is not None and m.fast:
        errors.append(_err("exclude_elements_requires_slow_mode",
                           "exclude_elements requires fast=false (fast is true; it defaults to true)",
                           "exclude_elements", m.exclude_elements))
    return errors


def _rules_by_image(m: Any) -> list[InitErrorDetails]:
    errors = [*_one_image(m), *_placement(m)]
    if not m.ref_image_urls and m.ref_image_file is None:
        errors.append(_err("reference_required", "ref_image_urls or ref_image_file is required", "ref_image_urls", None))
    return errors


def _rules_video(m: Any) -> list[InitErrorDetails]:
    if (m.background_color or "Transparent") == "Transparent" and (m.output_container_and_codec or "webm_vp9") not in ALPHA_CODECS:
        return [_err("codec_without_alpha",
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


class _TailoredModelId(BaseModel):
    """003 sends ``model_id`` to the plain generate endpoints for tailored generation. 004 has no
    such field there, so it is not in the schema; it is kept beside the validated fields and
    appears in ``model_dump()`` only when given. The API's intake resolves it against the
    tenant's trained models (tailored/service.py ``resolver``): unknown, another tenant's or untrained →
    422 on ``model_id``; a trained model routes the request to Bria's tailored endpoint."""

    _tailored_model_ref: Any = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_model_id(cls, data: Any, handler: Any) -> Any:
        model_id = data.get("model_id") if isinstance(data, dict) else None
        if model_id is not None and (isinstance(model_id, bool) or not isinstance(model_id, (str, int))
                                     or model_id == ""):
            raise _model_id_invalid(model_id)
        instance = handler(data)
        if model_id is not None:
            instance._tailored_model_ref = str(model_id)
        return instance

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        out = super().model_dump(**kwargs)
        if self._tailored_model_ref is not None:
            out["model_id"] = self._tailored_model_ref
        return out


def _subclass(gen_cls: type[BaseModel], *mixins: type[BaseModel]) -> type[BaseModel]:
    """``gen_cls`` with the rule mixins, keeping its name, docstring and JSON schema."""
    ns = {"__doc__": gen_cls.__doc__, "__module__": __name__, "__qualname__": gen_cls.__name__}
    return type(gen_cls)(gen_cls.__name__, (gen_cls, *mixins), ns)


BriaGenerateImageFastRequest = _subclass(_gen.BriaGenerateImageFastRequest, _Rules)
BriaGenerateImageHDRequest = _subclass(_gen.BriaGenerateImageHDRequest, _Rules)
BriaGenerateVectorBaseRequest = _subclass(_gen.BriaGenerateVectorBaseRequest, _TailoredModelId, _Rules)
BriaGenerateVectorFastRequest = _subclass(_gen.BriaGenerateVectorFastRequest, _Rules)
BriaGenerateVariationRequest = _subclass(_gen.BriaGenerateVariationRequest, _Rules)
BriaGetMasksRequest = _subclass(_gen.BriaGetMasksRequest, _Rules)
BriaRemoveBackgroundRequest = _subclass(_gen.BriaRemoveBackgroundRequest, _Rules)
BriaProductCutoutRequest = _subclass(_gen.BriaProductCutoutRequest, _Rules)
BriaCropForegroundRequest = _subclass(_gen.BriaCropForegroundRequest, _Rules)
BriaEraserRequest = _subclass(_gen.BriaEraserRequest, _Rules)
BriaEraseForegroundRequest = _subclass(_gen.BriaEraseForegroundRequest, _Rules)
BriaInpaintingRequest = _subclass(_gen.BriaInpaintingRequest, _Rules)
BriaExpandImageRequest = _subclass(_gen.BriaExpandImageRequest, _Rules)
BriaBlurBackgroundRequest = _subclass(_gen.BriaBlurBackgroundRequest, _Rules)
BriaGenerateSolidBackgroundRequest = _subclass(_gen.BriaGenerateSolidBackgroundRequest, _Rules)
BriaGenerateBackgroundRequest = _subclass(_gen.BriaGenerateBackgroundRequest, _Rules)
BriaGenerateProductShadowRequest = _subclass(_gen.BriaGenerateProductShadowRequest, _Rules)
BriaGenerateProductBackgroundByTextRequest = _subclass(_gen.BriaGenerateProductBackgroundByTextRequest, _Rules)
BriaGenerateProductBackgroundByImageRequest = _subclass(_gen.BriaGenerateProductBackgroundByImageRequest, _Rules)
BriaEnhanceImageRequest = _subclass(_gen.BriaEnhanceImageRequest, _Rules)
BriaUpscaleImageRequest = _subclass(_gen.BriaUpscaleImageRequest, _Rules)
BriaVideoRemoveBackgroundRequest = _subclass(_gen.BriaVideoRemoveBackgroundRequest, _Rules)
Body_bria_enhance_prompt_api_v1_bria_prompt_enhance_prompt_post = _subclass(
    _gen.Body_bria_enhance_prompt_api_v1_bria_prompt_enhance_prompt_post, _Rules)

_RULED = {cls.__name__: cls for cls in (
    BriaGenerateImageFastRequest, BriaGenerateImageHDRequest, BriaGenerateVectorBaseRequest,
    BriaGenerateVectorFastRequest, BriaGenerateVariationRequest, BriaGetMasksRequest,
    BriaRemoveBackgroundRequest, BriaProductCutoutRequest, BriaCropForegroundRequest, BriaEraserRequest,
    BriaEraseForegroundRequest, BriaInpaintingRequest, BriaExpandImageRequest, BriaBlurBackgroundRequest,
    BriaGenerateSolidBackgroundRequest, BriaGenerateBackgroundRequest, BriaGenerateProductShadowRequest,
    BriaGenerateProductBackgroundByTextRequest, BriaGenerateProductBackgroundByImageRequest,
    BriaEnhanceImageRequest, BriaUpscaleImageRequest, BriaVideoRemoveBackgroundRequest,
    Body_bria_enhance_prompt_api_v1_bria_prompt_enhance_prompt_post)}
for _key, _model in list(REQUEST_MODELS.items()):
    if _model.__name__ in _RULED and _model is not BriaGenerateImageRequest:
        REQUEST_MODELS[_key] = _RULED[_model.__name__]

# generate-image keeps its own rules (above) and gains the model_id one.
BriaGenerateImageRequest = _subclass(BriaGenerateImageRequest, _TailoredModelId)  # type: ignore[misc]
REQUEST_MODELS[("POST", "/api/v1/bria/image/generation/generate-image")] = BriaGenerateImageRequest


# =========================================================================== /api/v1/bria-lora/ endpoints
# 004's prose-only rules of the LoRA endpoints (INVENTORY §4.8/§4.9, [16]/[17], §8-D 28/29 and
# §8-E 35/36). Rules that depend on the tenant's objects (the model's training version, ids in the
# path) are checked by the tailored routes (tailored/routes_common.py, tailored/service.py).
def _rules_create_project(m: Any) -> list[InitErrorDetails]:
    if m.ip_type == "defined_character" and not (m.ip_name or "").strip():
        return [_err("ip_name_required", "ip_name is required when ip_type is 'defined_character' "
                     "(the character's name, e.g. 'Lora')", "ip_name", m.ip_name)]
    return []


def _rules_upload_image(m: Any) -> list[InitErrorDetails]:
    if m.file_path is not None:
        return [_err("file_path_not_supported",
                     "file_path names a file on the gateway's own disk and is refused: a client may not read "
                     "server files through this API. Send image_url (a public http(s) URL of a JPEG, PNG or "
                     "WEBP image, at least 256x256, at most 12 MB), image_file (the image as base64) or a "
                     "multipart/form-data upload with the image in the field `file` instead",
                     "file_path", m.file_path)]
    return []  # image_url or image_file (an extension field): checked by the route


def _rules_caption(m: Any) -> list[InitErrorDetails]:
    if m.caption is not None and m.regenerate_caption:
        return [_err("caption_conflict", "send either caption (a manual caption) or regenerate_caption: true, "
                     "not both (Bria refuses both at once)", "caption", m.caption)]
    if m.caption is None and not m.regenerate_caption:
        return [_err("caption_required", "caption or regenerate_caption: true is required", "caption", None)]
    if m.caption is not None and not m.caption.strip():
        return [_err("caption_empty", "caption must not be empty", "caption", m.caption)]
    return []


def _rules_lora_image(m: Any) -> list[InitErrorDetails]:
    # [16]: "When fast=false, the default value is 30, the minimum is 20 and the maximum is 50".
    if not m.fast and m.steps_num is not None and m.steps_num < 20:
        return [_err("steps_num_without_fast", "steps_num must be between 20 and 50 when fast is false (got {n}); "
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
            errors.append(_err("guidance_image_missing", "guidance_method_{n}_image_url or guidance_method_{n}_image_file "
                               "is required when guidance_method_{n} is set", f"guidance_method_{n}", str(method), n=n))
    if used and m.num_results != 1:
        errors.append(_err("num_results_with_guidance", "num_results must be 1 when a guidance method is used "
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

BriaLoraCreateProjectRequest = _subclass(_gen.BriaLoraCreateProjectRequest, _Rules)
BriaLoraUploadImageRequest = _subclass(_gen.BriaLoraUploadImageRequest, _Rules)
BriaLoraUpdateImageCaptionRequest = _subclass(_gen.BriaLoraUpdateImageCaptionRequest, _Rules)
BriaLoraGenerateImagesRequest = _subclass(_gen.BriaLoraGenerateImagesRequest, _Rules)
BriaLoraGenerateVectorRequest = _subclass(_gen.BriaLoraGenerateVectorRequest, _Rules)
for _model in (BriaLoraCreateProjectRequest, BriaLoraUploadImageRequest, BriaLoraUpdateImageCaptionRequest,
               BriaLoraGenerateImagesRequest, BriaLoraGenerateVectorRequest):
    for _key, _generated in list(REQUEST_MODELS.items()):
        if _generated.__name__ == _model.__name__:
            REQUEST_MODELS[_key] = _model
