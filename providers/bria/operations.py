"""Bria operations: the Vision Studio endpoints this gateway serves through Bria, one row each.

A row names the endpoint (path, request model, summary, tag), the upstream call (its path, the
body builder of providers/bria/builders/, a route where the path depends on the request), the
media inputs with Bria's limits, and the intake hook (a tailored model id resolved against the
tenant's models: providers/bria/tailored/service.py). 003's legacy paths are deprecated aliases
(providers/bria/legacy.py).
"""

from __future__ import annotations

from typing import Any

from providers.base import Kind, MediaInput, Operation, one_per_output
from providers.bria import schemas as S
from providers.bria.builders.common import BRIA_IMAGE, BRIA_UPSCALE_INPUT, BRIA_VIDEO, UPSCALE_MAX_OUTPUT_SIDE
from providers.bria.builders.editing import (build_background_by_image, build_background_by_text,
                                             build_blur_background, build_crop_foreground, build_enhance,
                                             build_erase, build_erase_foreground, build_expand,
                                             build_generate_background, build_get_masks, build_inpaint,
                                             build_product_cutout, build_product_shadow, build_remove_background,
                                             build_solid_background, build_upscale, build_video_remove_background)
from providers.bria.builders.generation import (build_enhance_prompt, build_generate_image_routed,
                                                build_lora_image, build_lora_vector, build_v1_text_to_image,
                                                build_variation, route_generate_image, route_lora_image,
                                                route_lora_vector, route_vector_base)
from providers.bria.legacy import alias
from providers.bria.schemas import BriaGenerateImageRequest
from providers.bria.tailored.service import resolver

# Operations whose Bria v2 endpoint yields exactly one image per request. Evidence: docs.bria.ai
# "Async requests, webhooks and polling" and "Status service" – a COMPLETED ``result`` carries a
# single ``image_url``; Bria-AI/bria-client ``GenerateImageRequestPayload`` has no
# ``num_results``; the current Bria-AI/bria-skill ``api-endpoints.md`` dropped the
# ``num_results`` (1–4) an earlier revision listed. For these operations the provider turns
# ``num_results`` = N into N upstream requests (seed, seed+1, … when a seed is given).
ONE_IMAGE_PER_REQUEST: frozenset[str] = frozenset({"bria.generate_image"})

# Media inputs per row, with Bria's limits (builders/common.py), checked from the file's header
# (images) or container metadata (video) before anything decodes it (core/media.py).
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


_BY_NAME = {op.name: op for op in CANONICAL}


def _alias(path: str, target: str, ignored: tuple[str, ...] = (), body: str = "json") -> Operation:
    return alias(_BY_NAME[f"bria.{target}"], path, ignored, body)


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
