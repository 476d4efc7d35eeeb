"""Vision Studio request → OpenAI call: sizes, bodies, masks and border masks."""

from __future__ import annotations

import io
import tracemalloc

import pytest
from PIL import Image

from providers.base import Permanent
from providers.openai.builders import (
    border_mask,
    edit_call,
    generate_body,
    inpaint_call,
    prepare_mask,
)

from .helpers import half_mask, image_bytes, open_image


@pytest.mark.parametrize("ratio, size", [("1:1", "1024x1024"), ("3:2", "1536x1024"), ("2:3", "1024x1536"),
                                         (None, "1024x1024")])
def test_generate_body_maps_aspect_ratio_and_always_sends_model(ratio, size):
    body = generate_body({"prompt": "a fox", "number_of_images": 3, "aspect_ratio": ratio}, "gpt-image-1")
    assert body == {"model": "gpt-image-1", "prompt": "a fox", "n": 3, "size": size, "quality": "auto",
                    "background": "auto"}


def test_transparent_background_forces_png_and_quality_passes_through():
    body = generate_body({"prompt": "a fox", "quality": "high", "background": "transparent"}, "gpt-image-1")
    assert body["background"] == "transparent" and body["output_format"] == "png" and body["quality"] == "high"
    assert body["n"] == 1


def test_unknown_aspect_ratio_is_permanent():
    with pytest.raises(Permanent) as caught:
        generate_body({"prompt": "a fox", "aspect_ratio": "16:9"}, "gpt-image-1")
    assert caught.value.code == "invalid_aspect_ratio"


def test_edit_call_names_files_by_their_real_format():
    jpeg = image_bytes(fmt="JPEG")
    call = edit_call({"prompt": "warmer", "number_of_images": 2, "aspect_ratio": "3:2"},
                     [image_bytes(), jpeg, image_bytes(fmt="WEBP")], "gpt-image-1")
    assert call.fields == {"model": "gpt-image-1", "prompt": "warmer", "n": 2, "size": "1536x1024"}
    assert [(name, mime) for name, _, mime in call.images] == [
        ("image_1.png", "image/png"), ("image_2.jpg", "image/jpeg"), ("image_3.webp", "image/webp")]
    assert call.images[1][1] == jpeg and call.mask is None


def test_edit_call_refuses_missing_unreadable_and_unsupported_images():
    with pytest.raises(Permanent):
        edit_call({"prompt": "p"}, [], "gpt-image-1")
    with pytest.raises(Permanent) as unreadable:
        edit_call({"prompt": "p"}, [b"not an image"], "gpt-image-1")
    assert unreadable.value.code == "invalid_image"
    with pytest.raises(Permanent) as gif:
        edit_call({"prompt": "p"}, [image_bytes(fmt="GIF")], "gpt-image-1")
    assert gif.value.code == "invalid_image"


def alpha_of(png: bytes) -> Image.Image:
    img = open_image(png)
    assert img.format == "PNG" and img.mode == "RGBA"
    return img.getchannel("A")


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_greyscale_and_rgb_masks_become_alpha_masks_white_means_edit(mode):
    mask = prepare_mask(half_mask((40, 20), mode), (40, 20))
    alpha = alpha_of(mask)
    assert alpha.size == (40, 20)
    assert alpha.getpixel((5, 10)) == 0  # white: edited
    assert alpha.getpixel((35, 10)) == 255  # black: kept


def test_rgba_mask_with_transparency_is_used_unchanged():
    original = half_mask((40, 20), "RGBA")
    assert prepare_mask(original, (40, 20)) == original


def test_opaque_rgba_mask_is_read_by_luminance():
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 255))
    img.paste((255, 255, 255, 255), (0, 0, 5, 10))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    alpha = alpha_of(prepare_mask(buffer.getvalue(), (10, 10)))
    assert alpha.getpixel((1, 1)) == 0 and alpha.getpixel((8, 1)) == 255


def test_mask_of_same_shape_is_scaled_and_other_shapes_are_refused():
    scaled = alpha_of(prepare_mask(half_mask((20, 10)), (80, 40)))
    assert scaled.size == (80, 40) and scaled.getpixel((10, 20)) == 0 and scaled.getpixel((70, 20)) == 255
    with pytest.raises(Permanent) as caught:
        prepare_mask(half_mask((20, 20)), (80, 40))
    assert caught.value.code == "mask_size_mismatch"


def test_all_black_mask_is_refused():
    with pytest.raises(Permanent) as caught:
        prepare_mask(image_bytes((10, 10), 0, "L"), (10, 10))
    assert caught.value.code == "empty_mask"


def test_border_mask_band_is_transparent_and_centre_opaque():
    width, height, fraction = 200, 100, 0.1
    img = open_image(border_mask(width, height, fraction))
    assert img.format == "PNG" and img.mode == "RGBA" and img.size == (width, height)
    alpha = img.getchannel("A")
    dx, dy = 20, 10
    for x, y in [(0, 0), (dx - 1, 50), (width - dx, 50), (width - 1, height - 1), (100, dy - 1), (100, height - dy)]:
        assert alpha.getpixel((x, y)) == 0, (x, y)
    for x, y in [(dx, dy), (width - dx - 1, height - dy - 1), (100, 50)]:
        assert alpha.getpixel((x, y)) == 255, (x, y)
    histogram = alpha.histogram()
    assert histogram[255] == (width - 2 * dx) * (height - 2 * dy)
    assert histogram[0] == width * height - histogram[255]


def test_border_mask_with_band_covering_everything_is_fully_transparent():
    alpha = open_image(border_mask(3, 3, 0.5)).getchannel("A")
    assert alpha.getextrema() == (0, 0)
    with pytest.raises(ValueError):
        border_mask(10, 10, 0)


def test_border_mask_of_a_large_image_is_built_row_by_row():
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        data = border_mask(4096, 4096, 0.05)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not tracing:
            tracemalloc.stop()
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (4096, 4096)
    assert peak - before < 8 * 1024 * 1024  # far below the 64 MiB an RGBA canvas of that size takes


def test_inpaint_call_with_mask_and_with_border_only():
    image = image_bytes((120, 80))
    call = inpaint_call({"prompt": "flowers"}, image, half_mask((120, 80)), "gpt-image-1")
    assert call.fields == {"model": "gpt-image-1", "prompt": "flowers"}
    assert call.images == [("image_1.png", image, "image/png")]
    name, mask, mime = call.mask
    assert (name, mime) == ("mask.png", "image/png") and alpha_of(mask).getpixel((1, 1)) == 0
    border = inpaint_call({"prompt": "forest", "inpaint_border_only": True, "border_percentage": 0.25},
                          image, None, "gpt-image-1")
    alpha = alpha_of(border.mask[1])
    assert alpha.size == (120, 80) and alpha.getpixel((29, 40)) == 0 and alpha.getpixel((30, 40)) == 255
    default = inpaint_call({"prompt": "forest", "inpaint_border_only": True}, image, half_mask((120, 80)),
                           "gpt-image-1")
    assert alpha_of(default.mask[1]).getpixel((6, 40)) == 255  # 5 % of 120 = 6 px band; the given mask is ignored


def test_inpaint_call_needs_an_image_and_a_mask():
    with pytest.raises(Permanent) as no_mask:
        inpaint_call({"prompt": "p"}, image_bytes(), None, "gpt-image-1")
    assert no_mask.value.code == "mask_required"
    with pytest.raises(Permanent) as no_image:
        inpaint_call({"prompt": "p", "inpaint_border_only": True}, None, None, "gpt-image-1")
    assert no_image.value.code == "image_required"
