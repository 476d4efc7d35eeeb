"""The Bria adapter against the simulator for the new operations: v2 editing (submit, poll,
download), v1 synchronous answers, the quick call, and fault injection on every kind of endpoint."""

from __future__ import annotations

import base64
import io
import time
import zipfile

import httpx
import pytest
from PIL import Image, ImageDraw

from providers.base import Finished, Pending, Permanent, RateLimited, Retryable, Submitted
from providers.bria.operations import OPERATIONS
from providers.bria.provider import BriaProvider
from tests.sim_server import running_simulator

OPS = {op.name: op for op in OPERATIONS}


def picture() -> str:
    img = Image.new("RGB", (120, 90), (235, 235, 230))
    ImageDraw.Draw(img).ellipse((40, 20, 80, 70), fill=(170, 20, 30))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def sim_url():
    with running_simulator(latency_seconds=0.1) as url:
        yield url


@pytest.fixture
def bria(sim_url):
    httpx.post(sim_url + "/_sim/reset").raise_for_status()
    provider = BriaProvider(sim_url, api_token="t", timeout=5.0)
    yield provider
    provider.close()


def finish(provider: BriaProvider, name: str, params: dict) -> list[tuple[bytes, str]]:
    op = OPS[name]
    outcome = provider.submit(op, params)
    if isinstance(outcome, Submitted):
        results = []
        for task in outcome.tasks:
            deadline = time.monotonic() + 20
            while isinstance(result := provider.poll(op, task), Pending):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            results.append(result)
    else:
        results = [outcome]
    assert all(isinstance(r, Finished) for r in results), results
    return [provider.download(o) for r in results for o in r.outputs]


def test_v2_editing_round_trip(bria):
    ((data, content_type),) = finish(bria, "bria.remove_background", {"image": picture(), "preserve_alpha": True})
    img = Image.open(io.BytesIO(data))
    assert content_type == "image/png" and img.mode == "RGBA" and img.getpixel((1, 1))[3] == 0


def test_v1_answers_are_finished_at_submit(bria):
    outcome = bria.submit(OPS["bria.product_cutout"], {"image_file": picture()})
    assert isinstance(outcome, Finished) and len(outcome.outputs) == 1
    outputs = finish(bria, "bria.generate_vector_fast", {"prompt": "an icon", "num_results": 2, "seed": 3})
    assert [t for _, t in outputs] == ["image/svg+xml", "image/svg+xml"]
    (data, content_type), (mask, mask_type) = finish(bria, "bria.get_masks", {"image_file": picture()})
    assert content_type == "application/zip" and zipfile.ZipFile(io.BytesIO(data)).namelist() == ["mask_1.png"]
    assert mask_type == "image/png" and Image.open(io.BytesIO(mask)).mode == "L"
    outputs = finish(bria, "bria.generate_product_background_by_text",
                     {"scene_description": "a kitchen", "image_file": picture(), "num_results": 2,
                      "placement_type": "automatic", "aspect_ratio": "1:1"})
    assert len(outputs) == 2


def test_quick_call_enhances_the_prompt(bria):
    result = bria.call(OPS["bria.enhance_prompt"], {"prompt": "a cat"})
    assert result["prompt"] == "a cat" and result["enhanced_prompt"].startswith("a cat,")


def test_faults_apply_to_every_kind_of_endpoint(bria, sim_url):
    def inject(*rules):
        httpx.post(sim_url + "/_sim/faults", json=list(rules)).raise_for_status()

    inject({"on": "submit", "kind": "429", "retry_after": 2})
    with pytest.raises(RateLimited) as info:
        bria.call(OPS["bria.enhance_prompt"], {"prompt": "a cat"})
    assert info.value.retry_after == 2
    inject({"on": "submit", "kind": "503"})
    with pytest.raises(Retryable):
        bria.submit(OPS["bria.generate_solid_background"], {"image_file": picture()})
    inject({"on": "submit", "kind": "error", "code": 422, "message": "bad input"})
    with pytest.raises(Permanent) as info:
        bria.submit(OPS["bria.generate_product_shadow"], {"image_file": picture()})
    assert "bad input" in info.value.message
    inject({"on": "status", "kind": "error", "code": "blocked", "message": "moderated"})
    outcome = bria.submit(OPS["bria.blur_background"], {"image": picture()})
    result = bria.poll(OPS["bria.blur_background"], outcome.tasks[0])
    assert result.code == "blocked" and result.message == "moderated"


def test_simulator_validates_like_bria(bria):
    with pytest.raises(Permanent) as info:
        bria.submit(OPS["bria.upscale_image"], {"image": "@@not-base64@@", "desired_increase": 2})
    assert info.value.http_status == 422
    with pytest.raises(Permanent) as info:
        bria.submit(OPS["bria.video_remove_background"],
                    {"video": "https://example.invalid/v.mp4", "background_color": "Transparent",
                     "output_container_and_codec": "mp4_h264"})
    assert "transparency" in info.value.message
