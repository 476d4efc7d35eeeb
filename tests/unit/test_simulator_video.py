"""The simulator's video background removal: a transparent background really is transparent
(VP9 with an alpha plane, background alpha 0, subject alpha 255); a colour background is opaque
and of that colour."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from providers.bria.simulator.video import decode_frames, frame_of, image_of, make_test_video, remove_background

FRAMES, SIZE = 12, (96, 64)
RADIUS = SIZE[1] // 4


def disc_centre(index: int) -> tuple[int, int]:
    """Where ``make_test_video`` draws the red disc in frame ``index``."""
    return RADIUS + (SIZE[0] - 2 * RADIUS) * index // (FRAMES - 1), SIZE[1] // 2


def alpha_histogram(frames: list[Image.Image]) -> list[int]:
    total = [0] * 256
    for image in frames:
        for value, count in enumerate(image.getchannel("A").histogram()):
            total[value] += count
    return total


@pytest.fixture(scope="module")
def clip() -> bytes:
    return make_test_video(FRAMES, SIZE)


def test_frame_conversion_keeps_alpha():
    image = Image.new("RGBA", (37, 21), (10, 200, 30, 0))  # odd width: padded frame rows
    image.paste((200, 10, 20, 255), (5, 5, 20, 15))
    frame = frame_of(image)
    assert frame.format.name == "rgba"
    back = image_of(frame)
    assert back.mode == "RGBA" and back.tobytes() == image.tobytes()
    yuva = image_of(frame.reformat(format="yuva420p"))
    assert yuva.getpixel((0, 0))[3] == 0 and yuva.getpixel((10, 10))[3] == 255
    rgb = image.convert("RGB")
    frame = frame_of(rgb)
    assert frame.format.name == "rgb24" and image_of(frame).tobytes() == rgb.tobytes()


@pytest.mark.parametrize("preset, fmt", [("webm_vp9", "webm"), ("mkv_vp9", "matroska"), ("mov_proresks", "mov")])
def test_transparent_background_is_transparent(clip, preset, fmt):
    import av

    data, mime, ext = remove_background(clip, "Transparent", preset)
    with av.open(io.BytesIO(data)) as container:
        assert fmt in container.format.name
        stream = container.streams.video[0]
        if preset.endswith("vp9"):
            assert stream.codec_context.name == "vp9" and stream.metadata.get("alpha_mode") == "1"
    frames = decode_frames(data)
    assert len(frames) == FRAMES
    assert all(image.mode == "RGBA" for image in frames)
    histogram = alpha_histogram(frames)
    pixels = FRAMES * SIZE[0] * SIZE[1]
    assert histogram[0] > 0.7 * pixels, histogram  # the light background
    assert histogram[255] > 0.05 * pixels, histogram  # the disc
    for index, image in enumerate(frames):
        assert image.getpixel((1, 1))[3] == 0  # a corner: background
        assert image.getpixel((SIZE[0] - 2, SIZE[1] - 2))[3] == 0
        cx, cy = disc_centre(index)
        r, g, b, a = image.getpixel((cx, cy))
        assert a == 255 and r > 150 and g < 80 and b < 80  # the subject, opaque and red


@pytest.mark.parametrize("colour, preset, rgb", [
    ("Black", "webm_vp9", (0, 0, 0)),
    ("#00FF00", "mp4_h264", (0, 255, 0)),
    ("White", "mkv_h264", (255, 255, 255)),
    ("Blue", "mov_proresks", (0, 0, 255)),
])
def test_colour_background_is_opaque_and_of_that_colour(clip, colour, preset, rgb):
    frames = decode_frames(remove_background(clip, colour, preset)[0])
    assert len(frames) == FRAMES
    for index, image in enumerate(frames):
        assert image.mode == "RGB"
        corner = image.getpixel((1, 1))
        assert all(abs(c - e) <= 12 for c, e in zip(corner, rgb)), (index, corner)
        r, g, b = image.getpixel(disc_centre(index))
        assert r > 150 and g < 80 and b < 80
