"""core/media.py and core/media_inputs.py: base64 decoding and image/video checks at intake, URL resolution in the worker."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from core import media, media_inputs
from core.netguard import Blocked, FetchError
from providers.base import Kind, MediaInput, Operation, Permanent, Retryable
from providers.bria.schemas import BriaRemoveBackgroundRequest


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 10, 10) if mode == "RGB" else (200, 10, 10, 128)).save(buffer, format=fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SPEC = MediaInput("image")


def op_with(*inputs: MediaInput) -> Operation:
    return Operation(name="t.op", provider="t", method="POST", path="/t", request_model=BriaRemoveBackgroundRequest,
                     kind=Kind.JOB, summary="t", inputs=inputs)


# --------------------------------------------------------------------------- base64
@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,", "data:;base64,", "DATA:image/png;charset=x;base64,"])
def test_base64_with_or_without_data_prefix(prefix):
    data = image_bytes()
    assert media.decode_base64(prefix + b64(data)) == data
    assert media.strip_data_prefix(prefix + b64(data)) == b64(data)


@pytest.mark.parametrize("value, fragment", [
    ("", "empty"),
    ("data:image/png,AAAA", "data URI"),
    ("abc$", "neither an http(s) URL nor base64"),
    ("AAAAA", "multiple of 4"),
    ("https//not-a-url", "neither"),
])
def test_bad_base64_is_refused_with_a_reason(value, fragment):
    with pytest.raises(media.MediaError) as info:
        media.decode_base64(value)
    assert info.value.code == "base64_invalid" and fragment in info.value.message


# --------------------------------------------------------------------------- images
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_allowed_formats(fmt):
    info = media.inspect_image(image_bytes(fmt), SPEC)
    assert (info.format, info.width, info.height) == (fmt, 40, 30)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_refused(fmt):
    with pytest.raises(media.MediaError) as info:
        media.inspect_image(image_bytes(fmt), SPEC)
    assert info.value.code == "image_format_not_allowed" and fmt in info.value.message


def test_not_an_image_and_truncated_image():
    with pytest.raises(media.MediaError) as info:
        media.inspect_image(b"hello world", SPEC)
    assert info.value.code == "not_an_image"
    with pytest.raises(media.MediaError) as info:
        media.inspect_image(image_bytes("PNG", (300, 300))[:200], SPEC)
    assert info.value.code == "not_an_image"


def test_byte_pixel_side_and_custom_limits():
    data = image_bytes("PNG", (100, 50))
    with pytest.raises(media.MediaError, match="the limit is 100 bytes") as info:
        media.inspect_image(data, MediaInput("image", max_bytes=100))
    assert info.value.code == "media_too_large"
    with pytest.raises(media.MediaError) as info:
        media.inspect_image(data, MediaInput("image", max_pixels=4999))
    assert info.value.code == "image_too_many_pixels"
    media.inspect_image(data, MediaInput("image", max_pixels=5000))
    with pytest.raises(media.MediaError) as info:
        media.inspect_image(data, MediaInput("image", max_side=99))
    assert info.value.code == "image_too_large"
    spec = MediaInput("image", check=lambda w, h, p: "too wide for x%d" % p["f"] if w * p["f"] > 300 else None)
    media.inspect_image(data, spec, {"f": 3})
    with pytest.raises(media.MediaError, match="too wide for x4"):
        media.inspect_image(data, spec, {"f": 4})


def test_upscale_spec_from_the_table_limits_input_to_2_megapixels():
    from providers.bria.operations import OPERATIONS

    (spec,) = next(op for op in OPERATIONS if op.name == "bria.upscale_image").inputs
    assert spec.max_pixels == 2_000_000 and spec.max_bytes == 12 * 1024 * 1024
    with pytest.raises(media.MediaError):
        media.inspect_image(image_bytes("JPEG", (1500, 1400)), spec, {"desired_increase": 2})
    with pytest.raises(media.MediaError) as info:
        media.inspect_image(image_bytes("JPEG", (2100, 100)), spec, {"desired_increase": 4})
    assert "8192" in info.value.message
    media.inspect_image(image_bytes("JPEG", (2100, 100)), spec, {"desired_increase": 2})


# --------------------------------------------------------------------------- intake
def test_check_inputs_reports_each_bad_field_with_its_location():
    op = op_with(MediaInput("image"), MediaInput("refs", many=True), MediaInput("video", kind="video", url_only=True))
    errors = media_inputs.check_inputs(op, {
        "image": b64(b"not an image"), "refs": ["https://example.com/a.png", "@@@", b64(image_bytes())],
        "video": b64(b"x" * 9)})
    assert [(e["loc"], e["type"]) for e in errors] == [
        (("body", "image"), "not_an_image"), (("body", "refs", 1), "base64_invalid"),
        (("body", "video"), "url_required")]
    assert errors[0]["msg"].startswith("image: ")
    assert media_inputs.check_inputs(op, {"image": "https://example.com/x.png", "refs": None}) == []


# --------------------------------------------------------------------------- worker
def fake_fetch(table: dict[str, bytes | Exception]):
    calls = []

    def fetch(url, *, allow_hosts, max_bytes, timeout):
        calls.append((url, tuple(allow_hosts), max_bytes, timeout))
        value = table[url]
        if isinstance(value, Exception):
            raise value
        return value, "image/png"

    fetch.calls = calls
    return fetch


def test_resolve_inputs_fetches_urls_and_strips_prefixes():
    png = image_bytes()
    fetch = fake_fetch({"https://h/a.png": png, "https://h/b.png": png})
    op = op_with(MediaInput("image"), MediaInput("refs", many=True), MediaInput("mask"))
    params = {"image": "https://h/a.png", "refs": ["https://h/b.png", "data:image/png;base64," + b64(png)],
              "mask": None, "other": 1}
    out = media_inputs.resolve_inputs(op, params, allow_hosts=("10.0.0.1",), timeout=3, fetch=fetch)
    assert out == {"image": b64(png), "refs": [b64(png), b64(png)], "mask": None, "other": 1}
    assert params["image"] == "https://h/a.png"  # the job's params are not modified
    assert fetch.calls[0] == ("https://h/a.png", ("10.0.0.1",), 12 * 1024 * 1024, 3)


def test_resolve_inputs_keeps_video_urls_after_probing_them():
    from providers.bria.simulator.video import make_test_video

    fetch = fake_fetch({"https://h/v.mp4": make_test_video(frames=3)})
    op = op_with(MediaInput("video", kind="video", url_only=True, formats=()))
    assert media_inputs.resolve_inputs(op, {"video": "https://h/v.mp4"}, fetch=fetch) == {"video": "https://h/v.mp4"}
    with pytest.raises(Permanent) as info:
        media_inputs.resolve_inputs(op, {"video": "https://h/x.mp4"}, fetch=fake_fetch({"https://h/x.mp4": b"\0" * 64}))
    assert info.value.code == "not_a_video"


@pytest.mark.parametrize("error, kind, code", [
    (Blocked("127.0.0.1 is a loopback address"), Permanent, "input_url_blocked"),
    (FetchError("https://h/a.png answered 404", 404), Permanent, "input_fetch_failed"),
    (FetchError("https://h/a.png is larger than the limit", 200), Permanent, "input_fetch_failed"),
    (FetchError("https://h/a.png answered 503", 503), Retryable, "input_fetch_failed"),
    (FetchError("https://h/a.png answered 429", 429), Retryable, "input_fetch_failed"),
    (httpx.ReadTimeout("slow"), Retryable, "input_fetch_failed"),
    (httpx.ConnectError("refused"), Permanent, "input_fetch_failed"),
])
def test_fetch_failures_are_classified(error, kind, code):
    op = op_with(MediaInput("image"))
    with pytest.raises((Permanent, Retryable)) as info:
        media_inputs.resolve_inputs(op, {"image": "https://h/a.png"}, fetch=fake_fetch({"https://h/a.png": error}))
    assert type(info.value) is kind and info.value.code == code and info.value.message.startswith("image: ")


def test_fetched_bytes_are_checked_like_base64():
    op = op_with(MediaInput("image"))
    with pytest.raises(Permanent) as info:
        media_inputs.resolve_inputs(op, {"image": "https://h/a.gif"}, fetch=fake_fetch({"https://h/a.gif": image_bytes("GIF")}))
    assert info.value.code == "image_format_not_allowed" and "https://h/a.gif" in info.value.message


def test_the_real_fetch_refuses_loopback_without_the_allow_list():
    op = op_with(MediaInput("image"))
    with pytest.raises(Permanent) as info:
        media_inputs.resolve_inputs(op, {"image": "http://127.0.0.1:9/x.png"})
    assert info.value.code == "input_url_blocked"


# --------------------------------------------------------------------------- whole request
def test_prepare_request_turns_an_alias_into_its_canonical_operation():
    from providers.registry import OPERATIONS

    alias = next(op for op in OPERATIONS.values() if op.path.endswith("/image/editing/upscale-image"))
    params = alias.request_model(image_file=b64(image_bytes()), desired_increase=4).model_dump(mode="json")
    op, out, errors = media_inputs.prepare_request(alias, params, OPERATIONS)
    assert errors == [] and op.name == "bria.upscale_image" and out["image"] == b64(image_bytes())
    params = alias.request_model(image_file=b64(image_bytes("GIF"))).model_dump(mode="json")
    op, _, errors = media_inputs.prepare_request(alias, params, OPERATIONS)
    assert op.name == "bria.upscale_image" and errors[0]["loc"] == ("body", "image")
    expand = next(op for op in OPERATIONS.values() if op.path.endswith("/image/editing/expand-image"))
    params = expand.request_model(image_url="https://e.com/a.png", canvas_size=[9, 9], position="upper_left",
                                  padding_top=0.1).model_dump(mode="json")
    _, _, errors = media_inputs.prepare_request(expand, params, OPERATIONS)
    assert [(e["loc"], e["type"]) for e in errors] == [(("body", "position"), "position_with_padding")]
