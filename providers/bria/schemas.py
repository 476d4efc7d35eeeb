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
from providers.bria.schema_rules import RULES, model_id_invalid, rename_legacy
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


# =========================================================================== the rules attached
# The prose rules (schema_rules.py) and 003's legacy names, applied as subclasses with the seed's
# class names so the OpenAPI document stays the seed's. Legacy names are accepted (and renamed
# before validation) at the canonical paths too, because 003 sends some of them to paths 004 kept
# (e.g. ``image_url`` to .../image/editing/remove-background). They are not part of the request
# schema; the deprecated alias routes document them.
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
            raise model_id_invalid(model_id)
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
