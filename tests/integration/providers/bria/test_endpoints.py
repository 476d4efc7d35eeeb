"""The /api/v1/bria/ editing and video operations through HTTP, the real worker and the simulator: the output is
the right kind of media (format, size, alpha, SVG, video), plus each operation's main errors.

Input images are made with Pillow in the test and sent as base64 or served by a local HTTP
server on 127.0.0.2 (the only address the system's outbound allow-list admits; 127.0.0.1 stays
refused, which one test relies on).
"""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
from PIL import Image, ImageDraw

from tests.integration.bria_media import assert_422, b64, completed, mask_for, near, png_of, run, subject, submit
from tests.integration.conftest import Client
from tests.integration.system import System
pytestmark = pytest.mark.integration


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
