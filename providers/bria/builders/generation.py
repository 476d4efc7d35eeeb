"""Bria's generation calls: text-to-image (FIBO on API v2; Bria's v1 models for ControlNet
guidance), vectors, variations, prompt enhancement and tailored generation.

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
from urllib.parse import quote

from providers.base import Permanent
from providers.bria.builders.common import drop_none, first, is_url, pick, strip_data_url, v1_image
from providers.bria.tailored.client import TAILORED_MODEL_KEY

# Ranges for FIBO's tuning knobs. [unconfirmed] They come from a third-party v2 integration
# (guidance_scale 3–5, steps_num 35–50), not from a Bria page; Vision Studio allows 1–10 and
# 20–50 (defaults 5.0 and 30). We clamp so Vision Studio's defaults never make Bria reject a
# request; adjust here once Bria's reference confirms the bounds.
FIBO_GUIDANCE_SCALE_RANGE = (3, 5)
FIBO_STEPS_RANGE = (35, 50)

# Fields copied unchanged (same name and meaning in Vision Studio and Bria v2).
_PASS_THROUGH = ("prompt", "aspect_ratio", "seed", "negative_prompt", "prompt_content_moderation", "ip_signal")

# ControlNet guidance exists only on Bria's v1 text-to-image endpoints; v2 /image/generate has
# no equivalent, so silently dropping it would return an unguided image the client did not ask for.
_GUIDANCE_FIELDS = tuple(
    f"guidance_method_{n}{suffix}" for n in (1, 2) for suffix in ("", "_scale", "_image_url", "_image_file")
)

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
    p = drop_none(params)
    body = pick(p, *_V1_T2I_FIELDS)
    for n in (1, 2):
        image = first(p, f"guidance_method_{n}_image_url", f"guidance_method_{n}_image_file")
        if image is not None:
            body.update(v1_image(image, f"guidance_method_{n}_image_url", f"guidance_method_{n}_image_file"))
    urls = p.get("image_prompt_urls") or []
    if urls and all(is_url(u) for u in urls):
        body["image_prompt_urls"] = list(urls)
    elif urls:  # fetched: base64 now
        if len(urls) > 1:
            raise Permanent("Bria v1 takes one image prompt file; send one entry in image_prompt_urls",
                            code="unsupported_parameter")
        body["image_prompt_file"] = strip_data_url(urls[0])
    elif p.get("image_prompt_file"):
        body["image_prompt_file"] = strip_data_url(p["image_prompt_file"])
    return body


def uses_guidance(params: dict[str, Any]) -> bool:
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
    return pick(drop_none(params), *_LORA_IMAGE_FIELDS)


def build_lora_vector(params: dict[str, Any]) -> dict[str, Any]:
    """004 [17] → ``/v1/text-to-vector/tailored/{id}`` [T3, unconfirmed]: the v1 text-to-vector
    fields plus ``model_influence`` / ``include_generation_prefix`` [T2]. ``bria_model_version``
    is not sent: a tailored model is bound to the base model it was trained on. [unconfirmed]"""
    tailored_upstream_id(params)
    p = drop_none(params)
    body = build_v1_text_to_image({k: v for k, v in p.items() if k != "bria_model_version"})
    body.update(pick(p, "model_influence", "include_generation_prefix"))
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
    if uses_guidance(params):
        return f"/v1/text-to-image/base/{params.get('bria_model_version') or '3.2'}"
    return "/v2/image/generate"


def build_generate_image_routed(params: dict[str, Any]) -> dict[str, Any]:
    if params.get("model_id") is not None:
        tailored_upstream_id(params)
        return build_v1_text_to_image(params)
    return build_v1_text_to_image(params) if uses_guidance(params) else build_generate_image(params)


def route_vector_base(params: dict[str, Any]) -> str:
    if params.get("model_id") is not None:
        return _tailored_path("vector", params)
    return f"/v1/text-to-vector/base/{params.get('bria_model_version') or '3.2'}"


def build_variation(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/reimagine`` [S5, unconfirmed]: the reference image is Bria's structure image."""
    p = drop_none(params)
    body = pick(p, "prompt", "num_results", "fast", "steps_num", "include_generation_prefix", "enhance_image",
                 "prompt_content_moderation", "content_moderation", "ip_signal", "seed", "tailored_model_influence")
    if p.get("tailored_model_id") is not None:  # the tenant's model, resolved at intake to Bria's id
        body["tailored_model_id"] = tailored_upstream_id(p, "tailored_model_id")
    body["structure_ref_influence"] = p.get("ref_image_influence", 0.75)
    body.update(v1_image(first(p, "image_url", "image_file"), "structure_image_url", "structure_image_file"))
    return body
