"""Media files: what one is, read without decoding it.

Base64 (with or without a ``data:<type>;base64,`` prefix) is decoded strictly, and an image or a
video is checked against a ``providers.base.MediaInput`` row: an allowed format, within the
limits the row declares (``providers.base.MediaLimits``: bytes, pixels, longest side; for videos
also duration). core/media_inputs.py applies these checks to the media fields of a request.

Nothing here decodes pixels. Sizes come from the image's header (``open_header``) or the video's
container metadata and are checked against the limits before anything else reads the file, so a
small file declaring a huge image (a decompression bomb) is refused without costing memory; the
worker's upstream builders only read headers too. Pillow's own guard is set to the largest image
any operation handles and made an error instead of a warning (``harden_pillow``), for any decode
these checks do not cover.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

from PIL import Image, ImageFile, UnidentifiedImageError

from providers.base import MediaInput

_DATA_PREFIX = re.compile(r"^data:([A-Za-z0-9.+/-]*)((?:;[A-Za-z0-9.+=-]+)*);base64,", re.IGNORECASE)
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
# Pillow's guard: the largest image any operation accepts or produces. Inputs are bounded per
# operation (at most providers.base.IMAGE_LIMITS, 16.8 MP, checked from the header first); the
# largest image the worker opens is an output, Bria's upscale result (004: at most 8192x8192).
MAX_DECODE_PIXELS = 8192 * 8192
# Probing a video: FFmpeg's stream analysis decodes a few frames of some codecs (H.264) to learn
# their parameters; "skip_frame=all" keeps it from decoding any picture, so a probe costs no frame
# buffers whatever resolution the container declares.
_VIDEO_PROBE_OPTIONS = {"skip_frame": "all"}


def harden_pillow() -> None:
    """Make Pillow refuse, not merely warn about, images above ``MAX_DECODE_PIXELS`` (by default
    it only warns up to twice its limit). Runs on import, so in the API and the worker; the
    simulator does the same for itself (providers/bria/simulator/edit.py)."""
    Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


harden_pillow()


class MediaError(ValueError):
    """A media input that is not acceptable; ``code`` is the error type clients see."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class MediaInfo:
    kind: str  # "image" | "video"
    format: str  # JPEG, PNG, WEBP / container name
    width: int
    height: int
    size: int  # bytes
    mode: str = ""  # Pillow mode for images
    frames: int | None = None  # videos: frames the container declares (None: not stated)
    duration: float | None = None  # videos: seconds


# --------------------------------------------------------------------------- value helpers
def is_url(value: Any) -> bool:
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


def strip_data_prefix(value: str) -> str:
    """``data:image/png;base64,AAAA`` → ``AAAA``; anything else unchanged."""
    match = _DATA_PREFIX.match(value)
    return value[match.end():] if match else value


def decode_base64(value: str) -> bytes:
    """Decode base64 (standard alphabet, padded, optionally with a ``data:…;base64,`` prefix)."""
    if value[:5].lower() == "data:" and not _DATA_PREFIX.match(value):
        raise MediaError("base64_invalid", "a data URI must look like 'data:<type>;base64,<data>'")
    payload = strip_data_prefix(value)
    if not payload:
        raise MediaError("base64_invalid", "the base64 data is empty")
    if not _BASE64.match(payload):
        raise MediaError("base64_invalid", "it is neither an http(s) URL nor base64 (characters outside "
                                           "A-Z, a-z, 0-9, '+', '/', '=' padding)")
    if len(payload) % 4:
        raise MediaError("base64_invalid", f"base64 length {len(payload)} is not a multiple of 4 (bad padding)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the checks above catch these
        raise MediaError("base64_invalid", f"invalid base64: {exc}") from None


def mb(n: int) -> str:
    """12582912 → "12 MB"; below a megabyte, bytes."""
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n} bytes"


def open_header(data: bytes) -> ImageFile.ImageFile:
    """``data`` opened the way ``Image.open`` does — only the header is read, nothing is decoded —
    but without Pillow's size guard, so the caller can refuse an oversized image with its own
    limits in the message. Check the size before anything that decodes (``load``, ``convert``…).
    Raises ``UnidentifiedImageError`` when no format recognises the data."""
    Image.init()
    prefix = data[:16]
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        recognised = not accept or accept(prefix)
        if not recognised or isinstance(recognised, str):
            continue
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # as Image.open: not this format after all
    raise UnidentifiedImageError("cannot identify image file")


_NOT_READABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error,
                 Image.DecompressionBombError, Image.DecompressionBombWarning)


def inspect_image(data: bytes, spec: MediaInput, params: dict[str, Any] | None = None) -> MediaInfo:
    """Check ``data`` against ``spec``: bytes, then format and size from the header, then the
    whole file's structure (``verify``: chunk checksums, no pixel decoding); raises ``MediaError``."""
    if len(data) > spec.max_bytes:
        raise MediaError("media_too_large", f"the image is {len(data)} bytes; the limit is {mb(spec.max_bytes)}")
    try:
        with open_header(data) as img:
            fmt, (width, height), mode = img.format or "", img.size, img.mode
            if spec.formats and fmt not in spec.formats:
                raise MediaError("image_format_not_allowed",
                                 f"image format {fmt or 'unknown'} is not accepted; use {', '.join(spec.formats)}")
            _check_size("image", width, height, spec)
            img.verify()  # reads the rest of the file: truncated or corrupt data fails here
    except MediaError:
        raise
    except _NOT_READABLE as exc:
        detail = "" if isinstance(exc, UnidentifiedImageError) else f" ({exc})"
        raise MediaError("not_an_image", f"the data is not a readable image{detail}") from None
    if spec.check is not None and (problem := spec.check(width, height, params or {})):
        raise MediaError("image_size_not_allowed", problem)
    return MediaInfo("image", fmt, width, height, len(data), mode=mode)


def _check_size(what: str, width: int, height: int, spec: MediaInput) -> None:
    problem = spec.limits.size_problem(what, width, height)
    if problem is None:
        return
    if what == "video":
        raise MediaError("video_too_large", problem)
    raise MediaError("image_too_many_pixels" if width * height > spec.limits.max_pixels else "image_too_large", problem)


def inspect_video(data: bytes, spec: MediaInput) -> MediaInfo:
    """Probe ``data`` as a video with PyAV, from its container metadata: a video stream whose
    resolution and duration are within ``spec``'s limits (checked before any packet is read), then
    one packet of frame data. No frame is decoded. Raises ``MediaError``."""
    import av  # PyAV ships its own FFmpeg build

    if len(data) > spec.max_bytes:
        raise MediaError("media_too_large", f"the video is {len(data)} bytes; the limit is {mb(spec.max_bytes)}")
    try:
        with av.open(io.BytesIO(data), mode="r", options=_VIDEO_PROBE_OPTIONS) as container:
            if not container.streams.video:
                raise MediaError("not_a_video", "the file has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            fmt, frames, duration = container.format.name, stream.frames or None, _duration(container, stream)
            if not width or not height:
                raise MediaError("not_a_video", "the video's resolution cannot be read from its container")
            _check_size("video", width, height, spec)
            if spec.max_duration is not None:
                if duration is None:
                    raise MediaError("video_duration_unknown", "the video's duration cannot be read from its container; "
                                     f"this operation accepts at most {spec.max_duration:g} s")
                if duration > spec.max_duration:
                    raise MediaError("video_too_long", f"the video is {duration:.1f} s long; this operation accepts "
                                     f"at most {spec.max_duration:g} s")
            has_data = any(packet.size for packet in _first_packets(container, stream))
    except MediaError:
        raise
    except Exception as exc:  # av.error.* and friends
        raise MediaError("not_a_video", f"the data is not a readable video ({type(exc).__name__})") from None
    if not has_data:
        raise MediaError("not_a_video", "the video stream holds no frame data")
    return MediaInfo("video", fmt, width, height, len(data), frames=frames, duration=duration)


def _duration(container: Any, stream: Any) -> float | None:
    """Seconds, from the container's metadata: the longer of the stream's and the container's
    stated durations, else frames / frame rate; None when nothing is stated."""
    import av

    known = []
    if stream.duration is not None and stream.time_base:
        known.append(float(stream.duration * stream.time_base))
    if container.duration is not None:
        known.append(container.duration / av.time_base)
    if not known and stream.frames and stream.average_rate:
        known.append(stream.frames / float(stream.average_rate))
    return max(known) if known else None


def _first_packets(container: Any, stream: Any, limit: int = 16) -> Iterator[Any]:
    """Up to ``limit`` demuxed packets of ``stream`` (compressed data; nothing is decoded)."""
    for i, packet in enumerate(container.demux(stream)):
        if i >= limit:
            return
        yield packet


def inspect(data: bytes, spec: MediaInput, params: dict[str, Any] | None = None) -> MediaInfo:
    return inspect_video(data, spec) if spec.kind == "video" else inspect_image(data, spec, params)
