"""Bria's request mapping: a Vision Studio generate-image request → Bria's v2 body."""

from __future__ import annotations

import pytest

from providers.base import Permanent
from providers.bria.builders.common import strip_data_url
from providers.bria.builders.generation import build_generate_image
from providers.bria.operations import OPERATIONS
from providers.bria.schemas import BriaGenerateImageRequest

GENERATE = next(op for op in OPERATIONS if op.name == "bria.generate_image")


# =========================================================================== request mapping
def vision_studio_params(**fields) -> dict:
    """Exactly what the API hands the worker: the validated request, dumped with its defaults."""
    return BriaGenerateImageRequest(**fields).model_dump(mode="json")


def test_operation_entry():
    op = GENERATE
    assert (op.name, op.provider, op.method) == ("bria.generate_image", "bria", "POST")
    assert op.path == "/api/v1/bria/image/generation/generate-image"
    assert op.request_model is BriaGenerateImageRequest
    assert op.kind.value == "job"
    assert op.summary == "Bria Generate Image"
    assert op.tags == ("Image Generation",)
    assert op.upstream_path == "/v2/image/generate"
    assert op.output == "image"
    # FIBO without ControlNet guidance; guidance requests go to Bria's v1 base model.
    assert op.route({"prompt": "a cat"}) == "/v2/image/generate"
    assert op.build({"prompt": "a cat sits"}) == build_generate_image({"prompt": "a cat sits"})


def test_defaults_map_to_a_minimal_bria_body():
    body = build_generate_image(vision_studio_params(prompt="a red fox in the snow"))
    assert body == {
        "prompt": "a red fox in the snow",
        "aspect_ratio": "1:1",
        "guidance_scale": 5,
        "steps_num": 35,  # Vision Studio's default 30 is below FIBO's range
        "prompt_content_moderation": False,
        "ip_signal": False,
        "visual_input_content_moderation": False,
        "visual_output_content_moderation": False,
    }


def test_full_mapping():
    body = build_generate_image(
        vision_studio_params(
            prompt="a red fox in the snow",
            aspect_ratio="16:9",
            num_results=3,
            sync=True,
            seed=99,
            negative_prompt="blurry",
            steps_num=50,
            text_guidance_scale=3.6,
            medium="photography",
            prompt_enhancement=True,
            enhance_image=True,
            prompt_content_moderation=True,
            content_moderation=True,
            ip_signal=True,
            bria_model_version="2.3",
        )
    )
    assert body == {
        "prompt": "a red fox in the snow",
        "aspect_ratio": "16:9",
        "seed": 99,
        "negative_prompt": "blurry",
        "steps_num": 50,
        "guidance_scale": 4,
        "style_id": "photoreal",
        "resolution": "4MP",
        "prompt_content_moderation": True,
        "visual_input_content_moderation": True,
        "visual_output_content_moderation": True,
        "ip_signal": True,
    }
    for dropped in ("sync", "num_results", "bria_model_version", "prompt_enhancement", "text_guidance_scale", "medium"):
        assert dropped not in body


def test_art_medium_keeps_default_style_and_guidance_is_clamped():
    body = build_generate_image({"prompt": "an abstract poster", "medium": "art", "text_guidance_scale": 10, "steps_num": 20})
    assert "style_id" not in body
    assert body["guidance_scale"] == 5
    assert body["steps_num"] == 35


def test_image_prompt_file_is_sent_as_raw_base64():
    body = build_generate_image({"prompt": "in this style", "image_prompt_file": "data:image/png;base64,iVBORw0KGgo=", "image_prompt_scale": 0.5})
    assert body["images"] == ["iVBORw0KGgo="]
    assert "image_prompt_file" not in body and "image_prompt_scale" not in body


def test_image_prompt_url_wins_over_file():
    body = build_generate_image(
        {"prompt": "in this style", "image_prompt_urls": ["https://example.com/ref.png"], "image_prompt_file": "iVBORw0KGgo="}
    )
    assert body["images"] == ["https://example.com/ref.png"]


def test_more_than_one_image_prompt_url_is_refused():
    with pytest.raises(Permanent) as info:
        build_generate_image({"prompt": "x y z w", "image_prompt_urls": ["https://a/1.png", "https://a/2.png"]})
    assert info.value.code == "unsupported_parameter"


def test_controlnet_guidance_is_refused_not_dropped():
    with pytest.raises(Permanent) as info:
        build_generate_image({"prompt": "a house", "guidance_method_1": "controlnet_canny", "guidance_method_1_image_url": "https://a/e.png"})
    assert info.value.code == "unsupported_parameter"
    assert "guidance_method_1" in info.value.message


def test_strip_data_url():
    assert strip_data_url("data:image/jpeg;base64,/9j/4AAQ") == "/9j/4AAQ"
    assert strip_data_url("/9j/4AAQ") == "/9j/4AAQ"


