"""The /api/v1/bria/ prompt and generation operations through HTTP, the real worker and the
simulator: the output is the right kind of media (format, size, SVG), plus their main errors."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest

from tests.integration.bria_media import B, assert_422, b64, completed, png_of, run, subject, submit
from tests.integration.conftest import Client
from tests.integration.system import System
pytestmark = pytest.mark.integration


# =========================================================================== prompt (quick, form data)
def test_enhance_prompt_takes_form_data_and_answers_inline(bc: Client, system: System):
    resp = bc.http.post(B + "/prompt/enhance-prompt", data={"prompt": "cat sitting on a chair"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "success"
    assert body["result"]["prompt"] == "cat sitting on a chair"
    assert body["result"]["enhanced_prompt"].startswith("cat sitting on a chair,")
    # required field missing → 422 naming it; no job involved at all
    assert_422(bc.http.post(B + "/prompt/enhance-prompt", data={}), "prompt", "missing")


def test_enhance_prompt_upstream_errors_map_to_the_envelope(bc: Client, system: System):
    system.faults({"on": "submit", "kind": "429", "retry_after": 3})
    resp = bc.http.post(B + "/prompt/enhance-prompt", data={"prompt": "a cat"})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3", resp.text
    assert resp.json()["error"]["code"] == "upstream_rate_limited"
    system.faults({"on": "submit", "kind": "503"})
    resp = bc.http.post(B + "/prompt/enhance-prompt", data={"prompt": "a cat"})
    assert resp.status_code == 502 and resp.json()["status"] == "error", resp.text


# =========================================================================== generation
def test_generate_image_with_controlnet_guidance_runs_on_bria_v1(bc: Client, system: System):
    doc = run(bc, "/image/generation/generate-image", {
        "prompt": "Modern architecture building", "bria_model_version": "2.3", "aspect_ratio": "4:3",
        "guidance_method_1": "controlnet_canny", "guidance_method_1_scale": 0.8,
        "guidance_method_1_image_file": b64(subject(), prefix=True), "seed": 5})
    (data,) = completed(doc)
    img = png_of(data)
    assert img.format == "PNG" and abs(img.width / img.height - 4 / 3) < 0.02
    assert_422(submit(bc, "/image/generation/generate-image",
                      {"prompt": "a house", "guidance_method_1": "controlnet_depth"}),
               "guidance_method_1", "guidance_image_missing")
    assert_422(submit(bc, "/image/generation/generate-image",
                      {"prompt": "a house", "guidance_method_1": "controlnet_depth",
                       "guidance_method_1_image_file": base64.b64encode(b"not an image at all!").decode()}),
               "guidance_method_1_image_file", "not_an_image")


def test_generate_image_fast(bc: Client):
    (data,) = completed(run(bc, "/image/generation/generate-image-fast",
                            {"prompt": "A cute puppy", "aspect_ratio": "16:9", "steps_num": 8, "seed": 1}))
    img = png_of(data)
    assert abs(img.width / img.height - 16 / 9) < 0.02 and 0.85e6 < img.width * img.height < 1.25e6
    assert_422(submit(bc, "/image/generation/generate-image-fast", {"prompt": "A cute puppy", "steps_num": 11}),
               "steps_num", "less_than_equal")


def test_generate_image_hd_is_larger(bc: Client):
    (data,) = completed(run(bc, "/image/generation/generate-image-hd", {"prompt": "A butterfly", "aspect_ratio": "3:2"}))
    img = png_of(data)
    assert abs(img.width / img.height - 1.5) < 0.02 and img.width * img.height > 1.8e6
    assert_422(submit(bc, "/image/generation/generate-image-hd", {"prompt": "abc"}), "prompt", "string_too_short")


def _svg(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) >= 2 and all(p.get("d", "").startswith("M") for p in paths)
    return root


def test_generate_vector_base_is_svg(bc: Client):
    doc = run(bc, "/image/generation/generate-vector-base", {"prompt": "Minimalist logo", "aspect_ratio": "16:9"})
    (data,) = completed(doc)
    root = _svg(data)
    assert abs(float(root.get("width")) / float(root.get("height")) - 16 / 9) < 0.02
    # 003's tailored-generation call: model_id names a tailored model, and this tenant has no
    # model "m-1" (a trained one works: tests/integration/test_lora.py)
    assert_422(submit(bc, "/image/generation/generate-vector-base", {"prompt": "A logo", "model_id": "m-1"}),
               "model_id", "model_not_found")


def test_generate_vector_fast_two_results(bc: Client):
    doc = run(bc, "/image/generation/generate-vector-fast", {"prompt": "Simple icon", "num_results": 2, "seed": 9})
    outputs = completed(doc)
    assert len(outputs) == 2 and outputs[0] != outputs[1]
    for data in outputs:
        _svg(data)
    assert doc["result"]["seed"] == 9


def test_generate_variation_from_a_served_url(bc: Client, files):
    url = files.image("variation.jpg", subject(), "JPEG")
    (data,) = completed(run(bc, "/image/generation/generate-variation",
                            {"prompt": "a watercolor painting", "image_url": url, "seed": 7}))
    img = png_of(data)
    assert 0.85e6 < img.width * img.height < 1.25e6 and abs(img.width / img.height - 4 / 3) < 0.02
    assert_422(submit(bc, "/image/generation/generate-variation", {"prompt": "a painting"}), "image_url", "image_required")
    assert_422(submit(bc, "/image/generation/generate-variation",
                      {"prompt": "a painting", "image_url": url, "fast": False, "num_results": 2}),
               "num_results", "num_results_without_fast")


