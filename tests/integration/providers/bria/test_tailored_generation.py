"""Tailored generation (LoRA) end to end, generating: /api/v1/bria-lora/… through HTTP, the real
worker and the simulator's tailored-generation API (providers/bria/simulator/tailored.py), with
the package's trained models (conftest.py)."""

from __future__ import annotations

import io
import time
import xml.etree.ElementTree as ET

import httpx
import pytest
from PIL import Image

from tests.integration.conftest import Client
from tests.integration.providers.bria.tailored import L, ORANGE, TEAL, detail, near_palette, ok
from tests.integration.system import System

pytestmark = pytest.mark.integration


def test_full_life_generate_image_and_vector_with_the_trained_model(world):
    a: Client = world["a"]
    model, dataset, images = world["model_a"], world["dataset_a"], world["images_a"]
    # captions came from the uploaded images (size and colours), stored with our records
    for image in images:
        assert image["caption_source"] == "automatic"
        assert "320x320" in image["caption"] and "orange" in image["caption"], image["caption"]
        assert image["width"] == 320 and image["format"] == "PNG" and image["source_url"].startswith("http")
    listed = ok(a.http.get(f"{L}/datasets/{dataset['id']}/images"))
    assert [i["id"] for i in listed] == [i["id"] for i in images]
    got = ok(a.http.get(f"{L}/datasets/{dataset['id']}"))
    assert got["status"] == "completed" and got["images_count"] == 5
    assert model["trained"] is True and model["training_finished_at"]

    # generate-image (sync by default, per 004): a real PNG drawn in the training palette
    result = ok(a.http.post(f"{L}/image/generation/generate-image",
                            json={"model_id": str(model["id"]), "prompt": "a fox in a forest", "seed": 11,
                                  "aspect_ratio": "4:3", "num_results": 2}))
    assert result["status"] == "COMPLETED" and len(result["urls"]) == 2 and result["seed"] == 11
    assert result["status_url"].endswith(f"/api/v1/bria/status/{result['request_id']}")
    pixels = []
    for url in result["urls"]:
        got = httpx.get(url, timeout=30)
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        img = Image.open(io.BytesIO(got.content))
        img.load()
        assert img.format == "PNG" and abs(img.width / img.height - 4 / 3) < 0.02
        colours = img.convert("RGB").getcolors(2**24)
        share = sum(n for n, rgb in colours if near_palette(rgb, [ORANGE, TEAL])) / (img.width * img.height)
        assert share > 0.9, share  # the model's look: drawn with its training images' colours
        pixels.append(got.content)
    assert pixels[0] != pixels[1]
    status = a.status(result["request_id"]).json()
    assert status["status"] == "COMPLETED"

    # generate-vector: a real SVG, its fills from the same palette
    doc = ok(a.http.post(f"{L}/image/generation/generate-vector",
                         json={"model_id": str(model["id"]), "prompt": "a minimalist fox logo", "seed": 5}))
    svg = httpx.get(doc["urls"][0], timeout=30)
    assert svg.status_code == 200
    root = ET.fromstring(svg.content)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    fills = [p.get("fill") for p in root.findall("{http://www.w3.org/2000/svg}path")]
    assert fills and all(near_palette(tuple(int(f[i:i + 2], 16) for i in (1, 3, 5)), [ORANGE, TEAL], 60)
                         for f in fills), fills

    # the same model through 003's call shape: model_id on the plain endpoints
    plain = a.http.post("/api/v1/bria/image/generation/generate-image",
                        json={"model_id": str(model["id"]), "prompt": "a fox by a lake", "seed": 2})
    assert plain.status_code == 200, plain.text
    got = httpx.get(plain.json()["result"]["image_url"], timeout=30)
    assert Image.open(io.BytesIO(got.content)).format == "PNG"
    vec = a.http.post("/api/v1/bria/image/generation/generate-vector-base",
                      json={"model_id": str(model["id"]), "prompt": "A logo of a fox", "steps_num": 20})
    assert vec.status_code == 200, vec.text
    assert httpx.get(vec.json()["result"]["urls"][0], timeout=30).content.lstrip().startswith(b"<svg")


def test_unknown_model_ids_are_422_and_create_no_job(world, system: System):
    a: Client = world["a"]
    before = system.sim_stats()["submit"]
    for body, loc, kind in (
            ({"model_id": "999999", "prompt": "a fox"}, ["body", "model_id"], "model_not_found"),
            ({"model_id": "custom-model-123", "prompt": "a fox"}, ["body", "model_id"], "model_not_found"),
            # another tenant's trained model is unknown here
            ({"model_id": str(world["model_b"]["id"]), "prompt": "a fox"}, ["body", "model_id"], "model_not_found")):
        detail(a.http.post(f"{L}/image/generation/generate-image", json=body), loc, kind)
        detail(a.http.post("/api/v1/bria/image/generation/generate-image", json=body), loc, kind)
        detail(a.http.post("/api/v1/bria/image/generation/generate-variation",
                           json={"prompt": "a fox", "image_url": "https://example.com/x.png",
                                 "tailored_model_id": body["model_id"]}), ["body", "tailored_model_id"], kind)
    assert system.sim_stats()["submit"] == before  # nothing reached Bria


def test_batch_lines_with_tailored_models_are_resolved_per_line(world):
    a: Client = world["a"]
    path = f"{L}/image/generation/generate-image"
    lines = [{"custom_id": "mine", "endpoint": path,
              "body": {"model_id": str(world["model_a"]["id"]), "prompt": "a fox at dawn", "seed": 3, "sync": False}},
             {"custom_id": "theirs", "endpoint": path,
              "body": {"model_id": str(world["model_b"]["id"]), "prompt": "a fox at dusk", "sync": False}}]
    refused = a.http.post("/api/v1/batches", json={"requests": lines})
    assert refused.status_code == 422
    [bad] = refused.json()["detail"]
    assert bad["custom_id"] == "theirs" and bad["line"] == 2
    assert bad["errors"][0]["loc"] == ["body", "model_id"] and bad["errors"][0]["type"] == "model_not_found"
    batch = ok(a.http.post("/api/v1/batches", json={"requests": lines, "on_invalid": "skip"}), 202)
    assert batch["counts"]["total"] == 1 and batch["counts"]["invalid"] == 1
    deadline = time.time() + 30
    while batch["status"] != "completed" and time.time() < deadline:
        time.sleep(0.3)
        batch = ok(a.http.get(f"/api/v1/batches/{batch['id']}"))
    assert batch["status"] == "completed" and batch["counts"]["completed"] == 1, batch


def test_max_models_refuse_fast(world):
    b: Client = world["b"]
    detail(b.http.post(f"{L}/image/generation/generate-image",
                       json={"model_id": str(world["model_b"]["id"]), "prompt": "a plum", "fast": True}),
           ["body", "fast"], "fast_not_supported")
    detail(b.http.post(f"{L}/image/generation/generate-image",
                       json={"model_id": str(world["model_b"]["id"]), "prompt": "a plum", "steps_num": 10}),
           ["body", "steps_num"], "steps_num_without_fast")


# =========================================================================== tenant isolation
