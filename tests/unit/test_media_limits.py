"""Media limits: every operation's inputs are bounded, and sizes are checked from the header
(images) or container metadata (videos) before anything decodes them."""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zlib

import pytest
from PIL import Image, ImageFile

from core import media, media_inputs
from providers.base import IMAGE_LIMITS, VIDEO_LIMITS, MediaInput, MediaLimits, Permanent
from providers.bria.builders import common, editing
from providers.registry import OPERATIONS

BOMB_SIDE = 20000
LIMIT_TEXT = "this operation accepts at most 16.8 MP / 8192 px on the longest side"


# --------------------------------------------------------------------------- crafted headers
def _chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG (valid IHDR and CRCs) that declares ``width``x``height`` 8-bit grey
    pixels but carries a tiny IDAT stream: a few hundred bytes that would make Pillow allocate
    width × height bytes on ``load()``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(bytes(width + 1), 9)  # one zero scanline
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is patched to declare ``width``x``height``."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def small_png(size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def no_decoding(monkeypatch):
    """Any pixel decoding (``ImageFile.load``) fails the test."""
    def refuse(self):
        raise AssertionError(f"decoded a {self.size[0]}x{self.size[1]} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_the_crafted_headers_declare_the_huge_size():
    for data in (png_declaring(BOMB_SIDE, BOMB_SIDE), jpeg_declaring(BOMB_SIDE, BOMB_SIDE)):
        assert len(data) < 2000
        with media.open_header(data) as img:
            assert img.size == (BOMB_SIDE, BOMB_SIDE)


# --------------------------------------------------------------------------- intake (API)
@pytest.mark.parametrize("make", [png_declaring, jpeg_declaring])
@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_a_bomb_sent_as_base64_to_inpaint_is_a_422_naming_the_field_and_the_limit(make, prefix, no_decoding):
    op = OPERATIONS["bria.inpaint"]
    params = {"image": prefix + b64(make(BOMB_SIDE, BOMB_SIDE)), "mask_type": "border_only", "prompt": "x"}
    errors = media_inputs.check_inputs(op, params)
    assert len(errors) == 1, errors
    (error,) = errors
    assert error["loc"] == ("body", "image") and error["type"] == "image_too_many_pixels"
    assert error["msg"] == f"image: the image is {BOMB_SIDE}x{BOMB_SIDE} (400.0 MP); {LIMIT_TEXT}"


def test_the_alias_paths_apply_the_same_limits():
    alias = next(op for op in OPERATIONS.values() if op.path.endswith("/image/editing/expand-image"))
    params = alias.request_model(image_file=b64(png_declaring(BOMB_SIDE, BOMB_SIDE)),
                                 canvas_size=[1000, 1000]).model_dump(mode="json")
    op, _params, errors = media_inputs.prepare_request(alias, params, OPERATIONS)
    assert op.name == "bria.expand_image" and [e["loc"] for e in errors] == [("body", "image")]
    assert LIMIT_TEXT in errors[0]["msg"]


def test_pixel_and_side_limits_come_from_the_header(no_decoding):
    spec = MediaInput("image")
    # just over the pixel budget, every side within 8192
    with pytest.raises(media.MediaError) as info:
        media.inspect_image(png_declaring(4097, 4096), spec)
    assert info.value.code == "image_too_many_pixels" and "4097x4096 (16.8 MP)" in info.value.message
    # few pixels, one side too long
    with pytest.raises(media.MediaError) as info:
        media.inspect_image(png_declaring(8193, 10), spec)
    assert info.value.code == "image_too_large" and info.value.message == (
        f"the image is 8193x10 (0.1 MP); {LIMIT_TEXT}")


def test_images_within_the_limits_pass_without_being_decoded(no_decoding):
    info = media.inspect_image(small_png(), MediaInput("image"))
    assert (info.format, info.width, info.height) == ("PNG", 40, 30)
    info = media.inspect_image(png_declaring(4096, 4096), MediaInput("image"))  # exactly at the limit
    assert (info.width, info.height) == (4096, 4096)


def test_the_upscale_limit_message_names_its_own_limits():
    (spec,) = OPERATIONS["bria.upscale_image"].inputs
    with pytest.raises(media.MediaError) as info:
        media.inspect_image(png_declaring(2000, 1001), spec, {"desired_increase": 2})
    assert info.value.message == ("the image is 2000x1001 (2.0 MP); this operation accepts at most 2 MP / "
                                  "4096 px on the longest side")


# --------------------------------------------------------------------------- worker
def test_a_bomb_behind_a_url_ends_the_job_with_the_limit_message(no_decoding):
    bomb = png_declaring(BOMB_SIDE, BOMB_SIDE)

    def fetch(url, *, allow_hosts, max_bytes, timeout):
        assert max_bytes == 12 * 1024 * 1024
        return bomb, "image/png"

    with pytest.raises(Permanent) as info:
        media_inputs.resolve_inputs(OPERATIONS["bria.inpaint"], {"image": "https://h/bomb.png", "mask_type": "border_only"},
                             fetch=fetch)
    assert info.value.code == "image_too_many_pixels"
    assert info.value.message == (f"image (https://h/bomb.png): the image is {BOMB_SIDE}x{BOMB_SIDE} (400.0 MP); "
                                  f"{LIMIT_TEXT}")


@pytest.mark.parametrize("build, params", [
    (editing.build_inpaint, {"mask_type": "border_only", "prompt": "x"}),
    (editing.build_expand, {"canvas_size": [1000, 1000]}),
])
def test_the_builders_read_only_the_header_and_refuse_beyond_the_limits(build, params, no_decoding):
    with pytest.raises(Permanent) as info:
        build({"image": b64(png_declaring(BOMB_SIDE, BOMB_SIDE)), **params})
    assert info.value.code in ("image_too_many_pixels", "not_an_image")  # ours, or Pillow's guard first
    assert common.image_size(b64(png_declaring(300, 200)), "image") == (300, 200)


def test_the_border_mask_still_matches_the_image():
    body = editing.build_inpaint({"image": b64(small_png((64, 48))), "mask_type": "border_only", "prompt": "x"})
    with Image.open(io.BytesIO(base64.b64decode(body["mask"]))) as mask:
        assert mask.size == (64, 48) and mask.mode == "L"


# --------------------------------------------------------------------------- Pillow's own guard
def test_pillow_refuses_rather_than_warns_above_the_largest_limit():
    with warnings.catch_warnings():
        media.harden_pillow()
        assert Image.MAX_IMAGE_PIXELS == media.MAX_DECODE_PIXELS == 8192 * 8192
        just_over = png_declaring(8192, 8193)  # between the limit and twice it: Pillow's default only warns
        with pytest.raises((Image.DecompressionBombWarning, Image.DecompressionBombError)):
            Image.open(io.BytesIO(just_over))
        with pytest.raises(Image.DecompressionBombError):
            Image.open(io.BytesIO(png_declaring(BOMB_SIDE, BOMB_SIDE)))
        Image.open(io.BytesIO(png_declaring(8192, 8192))).close()  # the upscale output maximum opens


def test_every_operation_declares_bounded_limits_within_pillows_guard():
    for op in OPERATIONS.values():
        for spec in op.inputs:
            limits = spec.limits
            assert isinstance(limits, MediaLimits) and limits.max_bytes and limits.max_pixels and limits.max_side
            if spec.kind == "image":
                assert limits.max_pixels <= media.MAX_DECODE_PIXELS, (op.name, spec.field)
                if op.provider == "bria":
                    assert limits.max_bytes == 12 * 1024 * 1024, (op.name, spec.field)  # 004: max 12 MB
            else:
                assert limits.max_duration is not None, (op.name, spec.field)
    assert common.UPSCALE_MAX_OUTPUT_SIDE ** 2 == media.MAX_DECODE_PIXELS


def test_bria_limits_follow_the_reference():
    (upscale,) = OPERATIONS["bria.upscale_image"].inputs
    assert (upscale.max_pixels, upscale.max_side) == (2_000_000, 4096)
    (video,) = OPERATIONS["bria.video_remove_background"].inputs
    assert (video.max_side, video.max_duration, video.max_bytes) == (16000, 60.0, 200 * 1024 * 1024)
    for spec in OPERATIONS["bria.inpaint"].inputs:
        assert spec.limits == common.BRIA_IMAGE == MediaLimits(12 * 1024 * 1024, 4096 * 4096, 8192)
    # rows that state nothing get bounded defaults by kind; single values can be overridden
    assert MediaInput("x").limits == IMAGE_LIMITS and MediaInput("v", kind="video").limits == VIDEO_LIMITS
    assert MediaInput("x", max_pixels=5).limits == MediaLimits(12 * 1024 * 1024, 5, 8192)


# --------------------------------------------------------------------------- simulator
def test_the_simulator_refuses_to_decode_a_bomb(no_decoding):
    from providers.bria.simulator import edit

    with pytest.raises((ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError)):
        edit.load(png_declaring(BOMB_SIDE, BOMB_SIDE))


# --------------------------------------------------------------------------- video
def video_spec(**kw) -> MediaInput:
    return MediaInput("video", kind="video", url_only=True, formats=(), **kw)


def test_video_probe_reads_size_and_duration_from_the_container():
    from providers.bria.simulator.video import make_test_video

    info = media.inspect_video(make_test_video(frames=12, size=(96, 64)), video_spec())
    assert (info.width, info.height, info.frames) == (96, 64, 12)
    assert info.duration == pytest.approx(1.0, abs=0.1)  # 12 frames at 12 fps


def test_video_limits_resolution_duration_and_bytes():
    from providers.bria.simulator.video import make_test_video

    clip = make_test_video(frames=12, size=(96, 64))
    with pytest.raises(media.MediaError) as info:
        media.inspect_video(clip, video_spec(max_side=64))
    assert info.value.code == "video_too_large" and info.value.message == (
        "the video is 96x64 (0.0 MP); this operation accepts at most 256 MP / 64 px on the longest side")
    with pytest.raises(media.MediaError) as info:
        media.inspect_video(clip, video_spec(max_duration=0.5))
    assert info.value.code == "video_too_long" and "at most 0.5 s" in info.value.message
    with pytest.raises(media.MediaError) as info:
        media.inspect_video(clip, video_spec(max_bytes=100))
    assert info.value.code == "media_too_large"


def test_video_row_beyond_the_limit_ends_the_job_with_the_message():
    from providers.bria.simulator.video import make_test_video

    op = OPERATIONS["bria.video_remove_background"]
    clip = make_test_video(frames=12, size=(96, 64))

    def fetch(url, *, allow_hosts, max_bytes, timeout):
        assert max_bytes == 200 * 1024 * 1024
        return clip, "video/mp4"

    assert media_inputs.resolve_inputs(op, {"video": "https://h/v.mp4"}, fetch=fetch) == {"video": "https://h/v.mp4"}
    short = MediaInput("video", kind="video", limits=common.BRIA_VIDEO, max_duration=0.25, formats=(), url_only=True)
    with pytest.raises(Permanent) as info:
        media_inputs.resolve_inputs(type(op)(**{**op.__dict__, "inputs": (short,)}), {"video": "https://h/v.mp4"},
                             fetch=fetch)
    assert info.value.code == "video_too_long" and info.value.message.startswith("video (https://h/v.mp4): ")
