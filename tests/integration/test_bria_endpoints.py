"""Every /api/v1/bria/ operation through HTTP, the real worker and the simulator: the output is
the right kind of media (format, size, alpha, SVG, video), plus each operation's main errors.

Input images are made with Pillow in the test and sent as base64 or served by a local HTTP
server on 127.0.0.2 (the only address the system's outbound allow-list admits; 127.0.0.1 stays
refused, which one test relies on).
"""

from __future__ import annotations

import base64
import io
import threading
import xml.etree.ElementTree as ET
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest
from PIL import Image, ImageDraw

from tests.integration.conftest import Client
from tests.integration.system import System

pytestmark = pytest.mark.integration

B = "/api/v1/bria"
SERVE_HOST = "127.0.0.2"


# =========================================================================== input media
def subject(size: tuple[int, int] = (320, 240), alpha: bool = False, two: bool = False) -> Image.Image:
    """A dark red disc (and, with ``two``, a blue square) on a light background, or on
    transparency with ``alpha``."""
    w, h = size
    img = Image.new("RGBA" if alpha else "RGB", size, (0, 0, 0, 0) if alpha else (236, 236, 230))
    draw = ImageDraw.Draw(img)
    if two:
        draw.ellipse((w * 0.08, h * 0.25, w * 0.38, h * 0.65), fill=(170, 20, 30, 255))
        draw.rectangle((w * 0.6, h * 0.3, w * 0.9, h * 0.75), fill=(20, 40, 170, 255))
    else:
        draw.ellipse((w * 0.3, h * 0.25, w * 0.7, h * 0.75), fill=(170, 20, 30, 255))
    return img


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def b64(img: Image.Image, fmt: str = "PNG", prefix: bool = False) -> str:
    data = base64.b64encode(encode(img, fmt)).decode()
    return f"data:image/{fmt.lower()};base64,{data}" if prefix else data


def mask_for(size: tuple[int, int]) -> Image.Image:
    w, h = size
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse((w * 0.28, h * 0.22, w * 0.72, h * 0.78), fill=255)
    return mask


class Files:
    """A tiny HTTP server for input media: ``put(name, bytes, type)`` → URL."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                entry = files.get(self.path)
                if entry is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", entry[1])
                self.send_header("Content-Length", str(len(entry[0])))
                self.end_headers()
                self.wfile.write(entry[0])

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((SERVE_HOST, 0), Handler)
        self.base = f"http://{SERVE_HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def put(self, name: str, data: bytes, content_type: str = "image/png") -> str:
        self.files[f"/{name}"] = (data, content_type)
        return f"{self.base}/{name}"

    def image(self, name: str, img: Image.Image, fmt: str = "PNG") -> str:
        return self.put(name, encode(img, fmt), f"image/{fmt.lower()}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def files() -> Iterator[Files]:
    server = Files()
    yield server
    server.close()


@pytest.fixture(scope="session")
def bria_key(make_key) -> str:
    return make_key("bria-endpoints", "enterprise")  # unmetered: dozens of jobs, no credit noise


@pytest.fixture
def bc(system: System, bria_key: str) -> Iterator[Client]:
    system.sim("POST", "/_sim/config", json={"latency_seconds": 0.2}).raise_for_status()
    c = Client(system.api_url, bria_key)
    yield c
    c.http.close()


# =========================================================================== helpers
def submit(c: Client, path: str, body: dict[str, Any]) -> httpx.Response:
    return c.http.post(B + path, json=body)


def run(c: Client, path: str, body: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Submit asynchronously and wait: the COMPLETED (or ERROR) status document."""
    if "sync" in body or path.split("/")[-1] in SYNC_DEFAULT_TRUE:
        body = {**body, "sync": False}
    resp = submit(c, path, body)
    assert resp.status_code == 202, resp.text
    return c.wait(resp.json()["result"]["request_id"], timeout=timeout)


SYNC_DEFAULT_TRUE = {"generate-image", "generate-image-fast", "generate-image-hd", "generate-vector-base",
                     "generate-vector-fast", "generate-variation", "generate-product-background-by-text",
                     "generate-product-background-by-image"}


def completed(doc: dict[str, Any]) -> list[bytes]:
    assert doc["status"] == "COMPLETED", doc
    urls = doc["result"]["urls"]
    assert urls and doc["result"].get("image_url", doc["result"].get("video_url")) == urls[0]
    out = []
    for url in urls:
        got = httpx.get(url, timeout=30)
        assert got.status_code == 200, got.text
        out.append(got.content)
    return out


def png_of(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def assert_422(resp: httpx.Response, field: str, error_type: str | None = None) -> dict[str, Any]:
    assert resp.status_code == 422, resp.text
    details = resp.json()["detail"]
    hit = [d for d in details if d["loc"][:2] == ["body", field] or (len(d["loc"]) == 1 and field in d["msg"])]
    assert hit, details
    if error_type is not None:
        assert any(d["type"] == error_type for d in hit), details
    return hit[0]


def near(a: tuple[int, ...], b: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


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


# =========================================================================== editing
def test_get_masks_is_a_zip_of_mask_images(bc: Client):
    img = subject((300, 200), two=True)
    data, *masks = completed(run(bc, "/image/editing/get-masks", {"image_file": b64(img)}))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # the result URL is the ZIP, as 004 says
        names = archive.namelist()
        assert len(names) == 2, names
        for name in names:
            mask = png_of(archive.read(name))
            assert mask.mode == "L" and mask.size == img.size
            assert set(mask.getdata()) <= {0, 255} and mask.getbbox() is not None
        assert masks == [archive.read(name) for name in sorted(names)]  # and each mask has its own URL
    assert_422(submit(bc, "/image/editing/get-masks", {}), "image_url", "image_required")


def test_remove_background_gives_png_with_alpha(bc: Client, files):
    img = subject()
    (data,) = completed(run(bc, "/image/editing/remove-background", {"image": b64(img, "JPEG", prefix=True)}))
    out = png_of(data)
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == img.size
    assert out.getpixel((5, 5))[3] == 0 and out.getpixel((160, 120))[3] == 255
    # URL input, fetched by the worker
    url = files.image("rmbg.webp", img, "WEBP")
    (data,) = completed(run(bc, "/image/editing/remove-background", {"image": url}))
    assert png_of(data).getpixel((5, 5))[3] == 0


def test_remove_background_input_errors(bc: Client, files, system: System):
    path = "/image/editing/remove-background"
    assert_422(submit(bc, path, {}), "image", "missing")
    assert_422(submit(bc, path, {"image": "not base64 !!"}), "image", "base64_invalid")
    assert_422(submit(bc, path, {"image": base64.b64encode(b"hello, I am text, not an image").decode()}),
               "image", "not_an_image")
    assert_422(submit(bc, path, {"image": b64(subject(), "GIF")}), "image", "image_format_not_allowed")
    big = base64.b64encode(b"\0" * (12 * 1024 * 1024 + 1)).decode()
    err = assert_422(submit(bc, path, {"image": big}), "image", "media_too_large")
    assert "12 MB" in err["msg"]
    # URL problems are found by the worker: the job ends in ERROR with a clear message
    doc = run(bc, path, {"image": files.put("missing.png", b"", "image/png").replace("missing", "nothing-here")})
    assert doc["status"] == "ERROR" and doc["error"]["code"] == "input_fetch_failed", doc
    doc = run(bc, path, {"image": files.put("text.png", b"plain text", "image/png")})
    assert doc["status"] == "ERROR" and doc["error"]["code"] == "not_an_image" and "image" in doc["error"]["message"]
    doc = run(bc, path, {"image": f"http://127.0.0.1:{system.sim_port}/_sim/stats"})
    assert doc["status"] == "ERROR" and doc["error"]["code"] == "input_url_blocked", doc


def test_product_cutout(bc: Client, files):
    url = files.image("cutout.png", subject())
    (data,) = completed(run(bc, "/image/editing/product-cutout", {"image_url": url, "force_rmbg": True}))
    out = png_of(data)
    assert out.mode == "RGBA" and out.getpixel((3, 3))[3] == 0 and out.getpixel((160, 120))[3] == 255
    assert_422(submit(bc, "/image/editing/product-cutout", {"force_rmbg": True}), "image_url", "image_required")


def test_crop_foreground_is_smaller(bc: Client):
    img = subject((400, 300))
    (data,) = completed(run(bc, "/image/editing/crop-foreground", {"image": b64(img), "padding": 10}))
    out = png_of(data)
    assert out.mode == "RGBA" and out.width < img.width and out.height < img.height
    assert 160 + 20 - 8 <= out.width <= 160 + 20 + 8 and out.getpixel((0, 0))[3] == 0
    assert_422(submit(bc, "/image/editing/crop-foreground", {"image": b64(img), "padding": -1}),
               "padding", "greater_than_equal")


def test_erase_and_erase_foreground_remove_the_subject(bc: Client):
    img = subject()
    (data,) = completed(run(bc, "/image/editing-generation/erase",
                            {"image": b64(img), "mask": b64(mask_for(img.size))}))
    out = png_of(data).convert("RGB")
    assert out.size == img.size and near(out.getpixel((160, 120)), (236, 236, 230))
    (data,) = completed(run(bc, "/image/editing-generation/erase-foreground", {"image": b64(img)}))
    out = png_of(data).convert("RGB")
    assert out.size == img.size and near(out.getpixel((160, 120)), (236, 236, 230))
    assert_422(submit(bc, "/image/editing-generation/erase", {"image": b64(img)}), "mask", "missing")


def test_inpaint_manual_and_border_only(bc: Client):
    img = subject()
    (data,) = completed(run(bc, "/image/editing-generation/inpaint",
                            {"image": b64(img), "mask": b64(mask_for(img.size)), "prompt": "a red sports car", "seed": 3}))
    out = png_of(data).convert("RGB")
    assert out.size == img.size and out.getpixel((160, 120)) != img.getpixel((160, 120))
    assert near(out.getpixel((3, 3)), (236, 236, 230), 4)
    (data,) = completed(run(bc, "/image/editing-generation/inpaint",
                            {"image": b64(img), "mask_type": "border_only", "border_percentage": 0.15,
                             "prompt": "continue the forest scenery"}))
    out = png_of(data).convert("RGB")
    assert out.size == img.size and not near(out.getpixel((2, 2)), (236, 236, 230), 4)
    assert near(out.getpixel((160, 120)), img.getpixel((160, 120)), 4)
    assert_422(submit(bc, "/image/editing-generation/inpaint", {"image": b64(img), "prompt": "a car on a road"}),
               "mask", "mask_required")


def test_expand_image_to_the_requested_canvas(bc: Client):
    img = subject((200, 150))
    (data,) = completed(run(bc, "/image/editing-generation/expand-image",
                            {"image": b64(img), "canvas_size": [500, 300], "position": "upper_left"}))
    out = png_of(data).convert("RGB")
    assert out.size == (500, 300)
    assert near(out.getpixel((100, 75)), (170, 20, 30))  # the subject stays at the upper left
    (data,) = completed(run(bc, "/image/editing-generation/expand-image", {"image": b64(img), "aspect_ratio": "16:9"}))
    out = png_of(data)
    assert abs(out.width / out.height - 16 / 9) < 0.02 and out.height >= 150
    (data,) = completed(run(bc, "/image/editing-generation/expand-image",
                            {"image": b64(img), "padding_left": 0.2, "padding_right": 0.2, "padding_top": 0.1,
                             "padding_bottom": 0.1}))
    assert png_of(data).size == (333, 188)
    assert_422(submit(bc, "/image/editing-generation/expand-image", {"image": b64(img)}),
               "canvas_size", "expand_target_missing")
    assert_422(submit(bc, "/image/editing-generation/expand-image",
                      {"image": b64(img), "canvas_size": [500, 300], "position": "center"}), "position", "enum")


def test_blur_background_keeps_the_subject(bc: Client):
    img = subject()
    ImageDraw.Draw(img).line((0, 10, 320, 10), fill=(0, 0, 0), width=2)  # a sharp background detail
    (data,) = completed(run(bc, "/image/editing-generation/blur-background", {"image": b64(img), "scale": 5}))
    out = png_of(data).convert("RGB")
    assert out.size == img.size
    assert near(out.getpixel((160, 120)), (170, 20, 30), 10)
    assert out.getpixel((160, 10))[0] > 60  # the black line is blurred away
    assert_422(submit(bc, "/image/editing-generation/blur-background", {"image": b64(img), "scale": 6}),
               "scale", "less_than_equal")


def test_generate_solid_background_is_a_2000px_packshot(bc: Client):
    (data,) = completed(run(bc, "/image/editing-generation/generate-solid-background",
                            {"image_file": b64(subject()), "background_color": "#00FF00"}))
    out = png_of(data).convert("RGB")
    assert out.size == (2000, 2000) and out.getpixel((5, 5)) == (0, 255, 0)
    assert near(out.getpixel((1000, 1000)), (170, 20, 30))
    assert_422(submit(bc, "/image/editing-generation/generate-solid-background",
                      {"image_file": b64(subject()), "background_color": "green"}), "background_color", "colour_invalid")


def test_generate_background(bc: Client, files):
    img = subject()
    (data,) = completed(run(bc, "/image/editing-generation/generate-background",
                            {"image": b64(img), "prompt": "a tropical beach", "original_quality": True}))
    out = png_of(data).convert("RGB")
    assert out.size == img.size and near(out.getpixel((160, 120)), (170, 20, 30))
    ref = files.image("beach.png", Image.new("RGB", (64, 64), (10, 200, 240)))
    (data,) = completed(run(bc, "/image/editing-generation/generate-background", {"image": b64(img), "ref_images": [ref]}))
    out = png_of(data).convert("RGB")
    assert 0.85e6 < out.width * out.height < 1.25e6 and near(out.getpixel((3, 3)), (10, 200, 240))
    assert_422(submit(bc, "/image/editing-generation/generate-background", {"image": b64(img)}),
               "prompt", "prompt_or_ref_images_required")


def test_generate_product_shadow(bc: Client):
    img = subject(alpha=True)
    (data,) = completed(run(bc, "/image/editing-generation/generate-product-shadow",
                            {"image_file": b64(img), "shadow_offset": [0, 20], "shadow_blur": 4, "shadow_intensity": 80}))
    out = png_of(data)
    assert out.mode == "RGBA" and out.size == img.size
    assert out.getpixel((160, 185))[3] > 80  # under the disc: shadow where the input was transparent
    assert img.getpixel((160, 185))[3] == 0 and out.getpixel((3, 3))[3] == 0
    assert_422(submit(bc, "/image/editing-generation/generate-product-shadow",
                      {"image_file": b64(img), "shadow_color": "black"}), "shadow_color", "colour_invalid")


def test_generate_product_background_by_text(bc: Client):
    doc = run(bc, "/image/editing-generation/generate-product-background-by-text",
              {"scene_description": "Modern kitchen", "image_file": b64(subject()), "num_results": 2,
               "placement_type": "automatic", "aspect_ratio": "16:9", "seed": 4})
    outputs = completed(doc)
    assert len(outputs) == 2
    for data in outputs:
        out = png_of(data)
        assert abs(out.width / out.height - 16 / 9) < 0.02
    assert_422(submit(bc, "/image/editing-generation/generate-product-background-by-text",
                      {"scene_description": "Modern kitchen", "image_file": b64(subject()),
                       "exclude_elements": "people"}), "exclude_elements", "exclude_elements_requires_slow_mode")


def test_generate_product_background_by_image(bc: Client, files):
    ref = files.image("lifestyle.png", Image.new("RGB", (80, 80), (250, 200, 10)))
    (data,) = completed(run(bc, "/image/editing-generation/generate-product-background-by-image",
                            {"image_file": b64(subject()), "ref_image_urls": [ref], "placement_type": "automatic"}))
    out = png_of(data).convert("RGB")
    assert out.size[0] == out.size[1] and near(out.getpixel((3, 3)), (250, 200, 10))
    assert_422(submit(bc, "/image/editing-generation/generate-product-background-by-image",
                      {"image_file": b64(subject())}), "ref_image_urls", "reference_required")


def test_enhance_image_to_the_requested_resolution(bc: Client):
    img = subject((400, 300))
    (data,) = completed(run(bc, "/image/editing-generation/enhance-image", {"image": b64(img), "resolution": "2MP"}))
    out = png_of(data)
    assert abs(out.width / out.height - 4 / 3) < 0.01 and abs(out.width * out.height - 2 * 1024 * 1024) < 0.02e6
    assert_422(submit(bc, "/image/editing-generation/enhance-image", {"image": b64(img), "steps_num": 5}),
               "steps_num", "greater_than_equal")


def test_upscale_image_by_2_and_4(bc: Client, files):
    img = subject((160, 120), alpha=True)
    (data,) = completed(run(bc, "/image/editing-generation/upscale-image", {"image": b64(img)}))
    out = png_of(data)
    assert out.size == (320, 240) and out.mode == "RGBA" and out.getpixel((2, 2))[3] == 0
    url = files.image("small.jpg", subject((160, 120)), "JPEG")
    (data,) = completed(run(bc, "/image/editing-generation/upscale-image",
                            {"image": url, "desired_increase": 4, "preserve_alpha": False}))
    assert png_of(data).size == (640, 480)
    big = Image.new("RGB", (1500, 1500), (200, 200, 200))
    err = assert_422(submit(bc, "/image/editing-generation/upscale-image", {"image": b64(big, "JPEG")}),
                     "image", "image_too_many_pixels")
    assert "2 MP" in err["msg"]
    wide = Image.new("RGB", (2500, 400), (200, 200, 200))
    assert_422(submit(bc, "/image/editing-generation/upscale-image", {"image": b64(wide, "JPEG"), "desired_increase": 4}),
               "image", "image_size_not_allowed")
    assert_422(submit(bc, "/image/editing-generation/upscale-image", {"image": b64(img), "desired_increase": 3}),
               "desired_increase", "literal_error")


# =========================================================================== video
def _frames(data: bytes) -> tuple[int, str]:
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return sum(1 for _ in container.decode(stream)), container.format.name


def test_video_remove_background(bc: Client, files):
    from providers.bria.simulator.video import decode_frames, make_test_video

    url = files.put("clip.mp4", make_test_video(), "video/mp4")
    doc = run(bc, "/video/editing/remove-background", {"video": url})
    (data,) = completed(doc)
    assert doc["result"]["video_url"] == doc["result"]["urls"][0]
    frames, fmt = _frames(data)
    assert frames == 12 and "webm" in fmt
    # the default background is transparent: VP9 with alpha, the background at alpha 0 and the
    # subject at 255 in every frame (as a player that honours WebM alpha decodes it)
    images = decode_frames(data)
    assert len(images) == 12 and all(image.mode == "RGBA" for image in images)
    for image in images:
        alpha = image.getchannel("A").histogram()
        assert alpha[0] > 0.7 * image.width * image.height and alpha[255] > 0.05 * image.width * image.height, alpha
    doc = run(bc, "/video/editing/remove-background",
              {"video": url, "background_color": "Black", "output_container_and_codec": "mp4_h264"})
    (data,) = completed(doc)
    frames, fmt = _frames(data)
    assert frames == 12 and "mp4" in fmt
    images = decode_frames(data)
    assert all(image.mode == "RGB" and max(image.getpixel((1, 1))) <= 12 for image in images)  # opaque black
    assert_422(submit(bc, "/video/editing/remove-background", {"video": url, "output_container_and_codec": "mp4_h264"}),
               "output_container_and_codec", "codec_without_alpha")
    assert_422(submit(bc, "/video/editing/remove-background", {"video": "AAAA"}), "video", "url_parsing")
    doc = run(bc, "/video/editing/remove-background", {"video": files.put("not-a-video.mp4", b"\0" * 1000, "video/mp4")})
    assert doc["status"] == "ERROR" and doc["error"]["code"] == "not_a_video", doc


# =========================================================================== upstream faults on editing endpoints
def test_editing_job_survives_upstream_faults(bc: Client, system: System):
    system.faults({"on": "submit", "kind": "503", "times": 1}, {"on": "status", "kind": "429", "retry_after": 0.2},
                  {"on": "download", "kind": "500"})
    (data,) = completed(run(bc, "/image/editing/remove-background", {"image": b64(subject())}))
    assert png_of(data).mode == "RGBA"
    stats = system.sim_stats()
    assert stats["submit"] >= 2 and stats["download"] >= 2


def test_upstream_error_ends_the_job_with_the_upstream_message(bc: Client, system: System):
    system.faults({"on": "submit", "kind": "error", "code": "moderation_blocked", "message": "input flagged"})
    doc = run(bc, "/image/editing-generation/blur-background", {"image": b64(subject())})
    assert doc["status"] == "ERROR" and doc["error"] == {"code": "moderation_blocked", "message": "input flagged"}
    system.faults({"on": "submit", "kind": "error", "code": 422, "message": "bad product"})
    doc = run(bc, "/image/editing/product-cutout", {"image_file": b64(subject())})
    assert doc["status"] == "ERROR" and "bad product" in doc["error"]["message"]
