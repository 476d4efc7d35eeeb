"""Every request of 003 (Vision Studio's BRIA client examples), sent as a client would send it:
same paths (including the older ones), same field names, same encodings (form data where 003
uses ``data=``); only the example URLs are replaced by images served locally and
``image_base64`` is a real JPEG.

Each is accepted, except those that break a limit 004 states; those get a 422 naming the field
and the rule (listed in REFUSED below, with the reason).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration.bria_media import Files, b64, mask_for, subject
from tests.integration.conftest import Client
from tests.integration.system import System

pytestmark = pytest.mark.integration

API = "/api/v1/bria"


@pytest.fixture(scope="module")
def urls(files: Files) -> dict[str, str]:
    img = subject((320, 240))
    cut = subject((320, 240), alpha=True)
    from providers.bria.simulator.video import make_test_video

    return {
        "https://example.com/depth_map.jpg": files.image("003/depth_map.jpg", img, "JPEG"),
        "https://example.com/style_reference.jpg": files.image("003/style_reference.jpg", img, "JPEG"),
        "https://example.com/source_image.jpg": files.image("003/source_image.jpg", img, "JPEG"),
        "https://example.com/portrait.jpg": files.image("003/portrait.jpg", img, "JPEG"),
        "https://example.com/product_photo.jpg": files.image("003/product_photo.jpg", img, "JPEG"),
        "https://example.com/product_with_background.jpg": files.image("003/product_with_background.jpg", img, "JPEG"),
        "https://example.com/full_scene.jpg": files.image("003/full_scene.jpg", img, "JPEG"),
        "https://example.com/multi_object_scene.jpg": files.image("003/multi_object_scene.jpg",
                                                                  subject((320, 240), two=True), "JPEG"),
        "https://example.com/street_scene.jpg": files.image("003/street_scene.jpg", img, "JPEG"),
        "https://example.com/mask.png": files.image("003/mask.png", mask_for((320, 240))),
        "https://example.com/product_cutout.png": files.image("003/product_cutout.png", cut),
        "https://example.com/subject.jpg": files.image("003/subject.jpg", img, "JPEG"),
        "https://example.com/background_reference.jpg": files.image("003/background_reference.jpg", img, "JPEG"),
        "https://example.com/product.png": files.image("003/product.png", img),
        "https://example.com/furniture.png": files.image("003/furniture.png", img),
        "https://example.com/lifestyle_ref.jpg": files.image("003/lifestyle_ref.jpg", img, "JPEG"),
        "https://example.com/low_res_image.jpg": files.image("003/low_res_image.jpg", img, "JPEG"),
        "https://example.com/input_video.mp4": files.put("003/input_video.mp4", make_test_video(), "video/mp4"),
    }


IMAGE_BASE64 = "<image_base64>"  # 003: base64.b64encode(open("reference_image.jpg", "rb").read()).decode()

# (name, method, path, kind, body) in 003's order; kind "json" = requests' json=, "form" = data=.
EXAMPLES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("enhance prompt", "/prompt/enhance-prompt", "form", {"prompt": "cat sitting on a chair"}),
    ("generate image (base)", "/image/generation/generate-image", "json", {
        "bria_model_version": "3.2", "prompt": "A majestic mountain landscape with snow-capped peaks at sunset",
        "num_results": 2, "aspect_ratio": "16:9", "sync": True, "steps_num": 30, "text_guidance_scale": 7.5,
        "prompt_enhancement": True, "seed": 12345, "negative_prompt": "blurry, low quality, distorted",
        "medium": "photography"}),
    ("generate image with guidance methods", "/image/generation/generate-image", "json", {
        "bria_model_version": "2.3", "prompt": "Modern architecture building", "num_results": 1,
        "aspect_ratio": "4:3", "sync": True, "steps_num": 30, "text_guidance_scale": 6.0, "prompt_enhancement": False,
        "guidance_method_1": "controlnet_canny", "guidance_method_1_scale": 0.8,
        "guidance_method_1_image_file": IMAGE_BASE64, "guidance_method_2": "controlnet_depth",
        "guidance_method_2_scale": 0.6, "guidance_method_2_image_url": "https://example.com/depth_map.jpg",
        "seed": 2222, "negative_prompt": "blurry, distorted", "medium": "photography"}),
    ("generate image with image prompts", "/image/generation/generate-image", "json", {
        "bria_model_version": "2.3", "prompt": "Artistic rendering in this style", "num_results": 1,
        "aspect_ratio": "1:1", "sync": True, "steps_num": 25, "text_guidance_scale": 5.0, "prompt_enhancement": False,
        "image_prompt_mode": "style_only", "image_prompt_urls": ["https://example.com/style_reference.jpg"],
        "image_prompt_scale": 0.7, "seed": 3333, "medium": "art"}),
    ("generate image fast", "/image/generation/generate-image-fast", "json", {
        "bria_model_version": "2.3", "prompt": "A cute puppy playing in a garden", "num_results": 1,
        "aspect_ratio": "1:1", "sync": True, "steps_num": 8, "prompt_enhancement": False, "seed": 9876,
        "medium": "photography"}),
    ("generate image hd", "/image/generation/generate-image-hd", "json", {
        "bria_model_version": "2.2", "prompt": "Ultra-detailed close-up of a butterfly on a flower", "num_results": 1,
        "aspect_ratio": "3:2", "sync": True, "steps_num": 40, "text_guidance_scale": 8.0, "prompt_enhancement": True,
        "negative_prompt": "blurry, pixelated, low resolution", "medium": "photography"}),
    ("generate vector base", "/image/generation/generate-vector-base", "json", {
        "bria_model_version": "3.2", "prompt": "Minimalist logo design with geometric shapes", "num_results": 1,
        "aspect_ratio": "1:1", "sync": True, "steps_num": 35, "text_guidance_scale": 6.0, "seed": 5555,
        "negative_prompt": "complex, cluttered, photorealistic"}),
    ("generate vector fast", "/image/generation/generate-vector-fast", "json", {
        "bria_model_version": "2.3", "prompt": "Simple icon design for mobile app", "num_results": 2,
        "aspect_ratio": "1:1", "sync": False, "steps_num": 6, "seed": 1111}),
    ("generate variations", "/image/generation/generate-variation", "json", {
        "prompt": "Transform this into a watercolor painting", "num_results": 3, "sync": True, "fast": True,
        "steps_num": 15, "ref_image_influence": 0.8, "image_url": "https://example.com/source_image.jpg",
        "seed": 7777, "include_generation_prefix": True}),
    ("expand image: canvas size with position", "/image/editing/expand-image", "json", {
        "image_url": "https://example.com/portrait.jpg", "canvas_size": [1024, 1024], "position": "center",
        "prompt": "Beautiful sunset background", "negative_prompt": "buildings, urban elements", "seed": 4444}),
    ("expand image: aspect ratio with padding", "/image/editing/expand-image", "json", {
        "image_file": IMAGE_BASE64, "aspect_ratio": "16:9", "padding_left": 0.1, "padding_right": 0.1,
        "padding_top": 0.2, "padding_bottom": 0.05, "prompt": "Mountain landscape background",
        "negative_prompt": "city, buildings", "seed": 3333}),
    ("remove background", "/image/editing/remove-background", "json", {
        "image_url": "https://example.com/product_photo.jpg"}),
    ("product cutout", "/image/editing/product-cutout", "json", {
        "image_url": "https://example.com/product_with_background.jpg", "force_rmbg": True}),
    ("crop foreground", "/image/editing/crop-foreground", "json", {
        "image_url": "https://example.com/full_scene.jpg", "padding": 50, "force_rmbg": False}),
    ("get masks", "/image/editing/get-masks", "json", {"image_url": "https://example.com/multi_object_scene.jpg"}),
    ("inpaint: manual mask", "/image/editing/inpaint", "json", {
        "mask_type": "manual", "prompt": "red sports car", "num_results": 2, "sync": True,
        "image_url": "https://example.com/street_scene.jpg", "mask_url": "https://example.com/mask.png",
        "negative_prompt": "bicycle, motorcycle", "seed": 4444}),
    ("inpaint: border only", "/image/editing/inpaint", "json", {
        "mask_type": "border_only", "prompt": "continue the forest scenery", "border_percentage": 0.15,
        "num_results": 1, "sync": True}),
    ("blur background", "/image/editing/blur-background", "json", {
        "image_url": "https://example.com/portrait.jpg", "blur_scale": 3, "force_rmbg": False}),
    ("generate solid background", "/image/editing/generate-solid-background", "json", {
        "image_url": "https://example.com/product_cutout.png", "background_color": "#FFFFFF", "force_rmbg": True}),
    ("generate background: reference image", "/image/editing/generate-background", "json", {
        "image_url": "https://example.com/subject.jpg", "ref_image_url": "https://example.com/background_reference.jpg",
        "enhance_ref_image": True, "num_results": 2, "sync": True, "fast": False, "force_rmbg": True}),
    ("generate background: text prompt", "/image/editing/generate-background", "json", {
        "image_url": "https://example.com/subject.jpg", "bg_prompt": "Tropical beach with palm trees and sunset",
        "refine_prompt": True, "original_quality": True, "negative_prompt": "urban, city, buildings", "seed": 8888}),
    ("product shadow: regular", "/image/editing/generate-product-shadow", "json", {
        "image_url": "https://example.com/product_cutout.png", "shadow_type": "regular", "shadow_color": "#000000",
        "shadow_intensity": 70, "shadow_offset": [5, 20], "shadow_blur": 15, "background_color": "#F5F5F5",
        "force_rmbg": False}),
    ("product shadow: floating", "/image/editing/generate-product-shadow", "json", {
        "image_url": "https://example.com/product_cutout.png", "shadow_type": "float", "shadow_color": "#333333",
        "shadow_intensity": 50, "shadow_offset": [0, 25], "shadow_blur": 20, "shadow_width": 200,
        "shadow_height": 70, "background_color": "transparent", "force_rmbg": True}),
    ("product background by text", "/image/editing/generate-product-background-by-text", "json", {
        "scene_description": "Modern kitchen with marble countertops and natural lighting",
        "image_url": "https://example.com/product.png", "sync": True, "fast": True, "optimize_description": True,
        "num_results": 3, "placement_type": "automatic", "aspect_ratio": "4:3", "force_rmbg": True,
        "exclude_elements": "people, hands"}),
    ("product background by text: manual placement", "/image/editing/generate-product-background-by-text", "json", {
        "scene_description": "Elegant living room setting", "image_url": "https://example.com/furniture.png",
        "placement_type": "manual_placement", "manual_placement_selection": "center_horizontal",
        "aspect_ratio": "16:9", "num_results": 2, "sync": True, "force_rmbg": True}),
    ("product background by text: custom coordinates", "/image/editing/generate-product-background-by-text", "json", {
        "scene_description": "Modern office workspace", "image_url": "https://example.com/product.png",
        "placement_type": "custom_coordinates", "foreground_image_size": [400, 300],
        "foreground_image_location": [200, 150], "aspect_ratio": "16:9", "num_results": 1, "sync": True,
        "fast": False, "force_rmbg": True}),
    ("product background by text: manual padding", "/image/editing/generate-product-background-by-text", "json", {
        "scene_description": "Minimalist studio setting", "image_url": "https://example.com/product.png",
        "placement_type": "manual_padding", "padding_values": [50, 50, 100, 30], "aspect_ratio": "4:3",
        "optimize_description": True, "exclude_elements": "people, text", "num_results": 1}),
    ("product background by image", "/image/editing/generate-product-background-by-image", "json", {
        "image_url": "https://example.com/product.png", "ref_image_urls": ["https://example.com/lifestyle_ref.jpg"],
        "sync": True, "enhance_ref_image": True, "ref_image_influence": 1.2, "num_results": 2,
        "placement_type": "automatic", "aspect_ratio": "1:1", "force_rmbg": True}),
    ("upscale image", "/image/editing/upscale-image", "json", {
        "image_url": "https://example.com/low_res_image.jpg", "desired_increase": 4, "preserve_alpha": True,
        "content_moderation": False}),
    ("remove video background", "/video/editing/video-remove-background", "form", {
        "video_url": "https://example.com/input_video.mp4"}),
    ("tailored: generate image with custom model", "/image/generation/generate-image", "json", {
        "model_id": "custom-model-123", "prompt": "A luxury wristwatch on a marble table", "num_results": 2,
        "aspect_ratio": "4:3", "sync": True, "steps_num": 30, "text_guidance_scale": 7.5, "seed": 2024,
        "negative_prompt": "blurry, low quality", "medium": "product"}),
    ("tailored: generate vector with custom model", "/image/generation/generate-vector-base", "json", {
        "model_id": "custom-vector-model-456", "prompt": "Modern minimalist logo for a tech startup",
        "num_results": 1, "aspect_ratio": "1:1", "sync": True, "steps_num": 20, "seed": 3030}),
]

# Refused, with the field and the error type: each breaks a limit or rule 004 states.
REFUSED = {
    "generate variations": ("steps_num", "greater_than_equal"),  # schema 20–50; 003 sends 15
    "expand image: canvas size with position": ("position", "enum"),  # "center" is no ManualPlacement
    "inpaint: border only": ("image", "missing"),  # 004 requires image; 003 sends none
    "product background by text": ("exclude_elements", "exclude_elements_requires_slow_mode"),  # needs fast=false
    "product background by text: manual padding": ("exclude_elements", "exclude_elements_requires_slow_mode"),
    # 004's schema first: "product" is no medium (photography/art); model_id is checked after it
    "tailored: generate image with custom model": ("medium", "literal_error"),
    # "custom-vector-model-456" is none of this tenant's trained models (tests/integration/test_lora.py
    # generates with a trained model through this same call)
    "tailored: generate vector with custom model": ("model_id", "model_not_found"),
}


def _substitute(value: Any, urls: dict[str, str], image_base64: str) -> Any:
    if isinstance(value, str):
        return image_base64 if value == IMAGE_BASE64 else urls.get(value, value)
    if isinstance(value, list):
        return [_substitute(v, urls, image_base64) for v in value]
    return value


def send(http: httpx.Client, path: str, kind: str, body: dict[str, Any]) -> httpx.Response:
    if kind == "form":  # 003: requests.post(..., headers={"X-API-Key": ...}, data=...)
        return http.post(API + path, data=body)
    return http.post(API + path, json=body, headers={"Content-Type": "application/json"})


@pytest.fixture
def client003(system: System, bria_key: str):
    system.sim("POST", "/_sim/config", json={"latency_seconds": 0.2}).raise_for_status()
    c = Client(system.api_url, bria_key)
    yield c
    c.http.close()


@pytest.mark.parametrize("name, path, kind, body", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_003_example(client003: Client, urls: dict[str, str], name: str, path: str, kind: str, body: dict[str, Any]):
    image_base64 = b64(subject((320, 240)), "JPEG")
    resp = send(client003.http, path, kind, {k: _substitute(v, urls, image_base64) for k, v in body.items()})
    if name in REFUSED:
        field, error_type = REFUSED[name]
        assert resp.status_code == 422, resp.text
        detail = resp.json()["detail"]
        assert any(d["loc"] == ["body", field] and d["type"] == error_type for d in detail), detail
        return
    assert resp.status_code in (200, 202), f"{name}: {resp.status_code} {resp.text}"
    result = resp.json()["result"]
    if path == "/prompt/enhance-prompt":
        assert result["enhanced_prompt"]
        return
    doc = client003.wait(result["request_id"], timeout=90) if resp.status_code == 202 else {
        "status": result["status"], "result": result}
    assert doc["status"] == "COMPLETED", f"{name}: {doc}"
    assert doc["result"]["urls"], doc
    if "/generation/" in path or "background-by" in path:  # endpoints with num_results in 004
        assert len(doc["result"]["urls"]) == body.get("num_results", 1), doc


def test_003_concurrent_requests(client003: Client):
    """003's advanced example: five concurrent sync generate-image requests."""
    prompts = [("A serene mountain landscape at dawn", 1001), ("A futuristic cityscape with flying cars", 1002),
               ("A cozy coffee shop interior with warm lighting", 1003),
               ("An underwater coral reef with tropical fish", 1004), ("A mystical forest with glowing mushrooms", 1005)]

    def one(prompt: str, seed: int) -> httpx.Response:
        return client003.http.post(API + "/image/generation/generate-image", json={
            "bria_model_version": "3.2", "prompt": prompt, "num_results": 1, "aspect_ratio": "1:1", "sync": True,
            "steps_num": 25, "text_guidance_scale": 7.0, "seed": seed})

    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda ps: one(*ps), prompts))
    for resp in responses:
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "success" and len(resp.json()["result"]["urls"]) == 1


def test_legacy_path_uses_the_canonical_operation(client003: Client, urls: dict[str, str]):
    resp = client003.http.post(API + "/image/editing/upscale-image",
                               json={"image_url": urls["https://example.com/low_res_image.jpg"], "desired_increase": 2})
    assert resp.status_code == 202, resp.text
    job = client003.http.get(f"/api/v1/jobs/{resp.json()['result']['request_id']}").json()["result"]
    assert job["operation"] == "bria.upscale_image"
    doc = client003.wait(job["id"], timeout=60)
    assert doc["status"] == "COMPLETED"
    from PIL import Image
    import io

    img = Image.open(io.BytesIO(httpx.get(doc["result"]["urls"][0]).content))
    assert img.size == (640, 480)
