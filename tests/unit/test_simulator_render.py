"""The simulator's images: Bria-like sizes for every aspect ratio, real PNGs, reproducible bytes."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from providers.simulator.render import ASPECT_RATIOS, parse_ratio, render_png, size_for

ONE_MEGAPIXEL = 1024 * 1024
NINE_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "16:9", "9:16", "4:5", "5:4")


def test_supports_exactly_brias_nine_ratios():
    assert sorted(ASPECT_RATIOS) == sorted(NINE_RATIOS)


@pytest.mark.parametrize("aspect_ratio", NINE_RATIOS)
def test_size_is_about_one_megapixel_in_the_requested_ratio(aspect_ratio):
    width, height = size_for(aspect_ratio)
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width / height - parse_ratio(aspect_ratio)) / parse_ratio(aspect_ratio) <= 0.01
    assert abs(width * height - ONE_MEGAPIXEL) / ONE_MEGAPIXEL <= 0.10
    # orientation follows the ratio
    assert (width > height) == (parse_ratio(aspect_ratio) > 1)
    assert (width == height) == (aspect_ratio == "1:1")


@pytest.mark.parametrize("aspect_ratio", NINE_RATIOS)
def test_4mp_is_about_four_megapixels(aspect_ratio):
    width, height = size_for(aspect_ratio, "4MP")
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width / height - parse_ratio(aspect_ratio)) / parse_ratio(aspect_ratio) <= 0.01
    assert abs(width * height - 4 * ONE_MEGAPIXEL) / (4 * ONE_MEGAPIXEL) <= 0.10


@pytest.mark.parametrize("bad", ["7:3", "16x9", "0:1", "", "1:1:1"])
def test_unknown_ratio_is_rejected(bad):
    with pytest.raises(ValueError):
        size_for(bad)


def test_unknown_resolution_is_rejected():
    with pytest.raises(ValueError):
        size_for("1:1", "8MP")


@pytest.mark.parametrize("aspect_ratio", NINE_RATIOS)
def test_render_is_a_png_of_the_computed_size(aspect_ratio):
    data = render_png("a lighthouse on a cliff at sunset", 7, aspect_ratio)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.size == size_for(aspect_ratio)
        assert image.mode == "RGB"
        # Not a flat fill: a gradient plus shapes gives many distinct colours.
        assert len(image.getcolors(maxcolors=1_000_000) or []) > 100


def test_same_inputs_give_identical_bytes():
    first = render_png("a red fox in the snow", 1234, "16:9")
    second = render_png("a red fox in the snow", 1234, "16:9")
    assert first == second


def test_png_carries_no_metadata_chunks():
    data = render_png("a red fox in the snow", 1234, "1:1")
    for chunk in (b"tIME", b"tEXt", b"iTXt", b"zTXt"):
        assert chunk not in data


@pytest.mark.parametrize(
    "other",
    [("a red fox in the snow", 1235, "16:9"), ("a blue fox in the snow", 1234, "16:9"), ("a red fox in the snow", 1234, "9:16")],
)
def test_any_input_change_changes_the_image(other):
    assert render_png("a red fox in the snow", 1234, "16:9") != render_png(*other)


def test_different_seeds_differ_in_pixels_not_just_caption():
    """The seed drives colours and shapes, so the top half (no caption there) differs too."""
    def top_half(seed: int) -> bytes:
        with Image.open(io.BytesIO(render_png("same prompt", seed, "1:1"))) as image:
            return image.crop((0, 0, image.width, image.height // 2)).tobytes()

    assert top_half(1) != top_half(2)


def test_render_time_is_reasonable_for_one_megapixel():
    render_png("warm-up", 0, "1:1")
    start = time.perf_counter()
    for seed in range(3):
        render_png("a city skyline at night with neon reflections", seed, "16:9")
    average = (time.perf_counter() - start) / 3
    assert average < 0.5  # target < 150 ms; the bound leaves room for slow CI machines
