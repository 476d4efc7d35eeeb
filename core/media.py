"""Media inputs: base64 checked at intake, URLs fetched SSRF-safely by the worker.

Vision Studio takes media three ways (INVENTORY §2.3): a v2-style field that is a URL *or*
base64 (``image``, ``mask``), a v1-style pair (``image_url`` + ``image_file``, the URL winning),
and URL-only fields (Bria's ``video``). An operation declares its media fields as
``providers.base.MediaInput`` rows; this module applies them:

* ``check_inputs(op, params)`` — the API, before a job exists. Every *base64* value (with or
  without a ``data:<type>;base64,`` prefix) is decoded and opened: it must be a real image of an
  allowed format (JPEG/PNG/WEBP for Bria) within the limits its media row declares
  (``providers.base.MediaLimits``: bytes, pixels, longest side; for videos also duration).
  Returns FastAPI-style error items (``loc`` = the field), so a bad input is a 422 naming the
  field and the limit. URLs are *not* fetched here: the API never makes outbound requests on a
  client's behalf.
* ``resolve_inputs(op, params, ...)`` — the worker, just before ``provider.submit``. URL values
  are fetched through ``core.netguard`` (public addresses only, checked at connect time, capped in
  size and time), checked like base64 inputs, and replaced by the raw base64 of the bytes
  fetched; base64 values lose their ``data:`` prefix (Bria wants the raw string). Video URLs are
  fetched and probed the same way but passed on as URLs (Bria's video endpoint takes only a
  public URL). Failures raise ``providers.base.Permanent`` (bad input: the job ends in ERROR
  with a message naming the field) or ``Retryable`` (a timeout or 5xx from the input's host).

Nothing here decodes pixels. Sizes come from the image's header (``open_header``) or the video's
container metadata and are checked against the limits before anything else reads the file, so a
small file declaring a huge image (a decompression bomb) is refused without costing memory; the
worker's upstream builders only read headers too. Pillow's own guard is set to the largest image
any operation handles and made an error instead of a warning (``harden_pillow``), for any decode
these checks do not cover.

Why forward fetched images as base64 instead of passing the URL through: Bria would otherwise
fetch the URL a second time, so what it processes could differ from what we checked (the host
may serve something else), a URL reachable only from our network (allow-listed for development)
would fail upstream with an unclear error, and Bria would become a fetcher for arbitrary URLs on
our account. Bria accepts base64 for every image field, so nothing is lost.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import httpx
from PIL import Image, ImageFile, UnidentifiedImageError
from pydantic import ValidationError

from core import netguard
from providers.base import InvalidRequest, MediaInput, Operation, Permanent, Retryable

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


def _mb(n: int) -> str:
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
        raise MediaError("media_too_large", f"the image is {len(data)} bytes; the limit is {_mb(spec.max_bytes)}")
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
        raise MediaError("media_too_large", f"the video is {len(data)} bytes; the limit is {_mb(spec.max_bytes)}")
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


def _values(params: dict[str, Any], spec: MediaInput) -> Iterator[tuple[tuple[str | int, ...], str]]:
    value = params.get(spec.field)
    if value is None:
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield (spec.field, i), item
    elif isinstance(value, str):
        yield (spec.field,), value


# --------------------------------------------------------------------------- intake (API)
def check_inputs(op: Operation, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Validation errors (FastAPI's shape, ``loc`` starting with "body") for the base64 media
    inputs of ``params``; URLs are left to the worker. Empty list = all good."""
    errors: list[dict[str, Any]] = []
    for spec in op.inputs:
        for loc, value in _values(params, spec):
            if is_url(value):
                continue
            name = ".".join(str(p) for p in loc)
            if spec.url_only:
                errors.append(_error(loc, "url_required", f"{name} must be an http(s) URL"))
                continue
            try:
                inspect(decode_base64(value), spec, params)
            except MediaError as exc:
                errors.append(_error(loc, exc.code, f"{name}: {exc.message}"))
    return errors


def _error(loc: tuple[str | int, ...], code: str, message: str) -> dict[str, Any]:
    return {"type": code, "loc": ("body", *loc), "msg": message, "input": None}


# --------------------------------------------------------------------------- at once (API)
# A request whose media is used while the client waits (a provider route's upload, e.g. a
# tailored-generation training image), not by a job: fetched or decoded, then checked, here.
REQUEST_FETCH_TIMEOUT_SECONDS = 15.0


def fetch_checked(url: str, spec: MediaInput, *, allow_hosts: tuple[str, ...],
                  timeout: float = REQUEST_FETCH_TIMEOUT_SECONDS) -> tuple[bytes, MediaInfo]:
    """GET ``url`` SSRF-safely (core.netguard: public addresses only, unless allow-listed; no
    redirects; size- and time-capped) and check it against ``spec``. Raises ``InvalidRequest``
    naming ``spec.field``."""
    def invalid(kind: str, message: str) -> InvalidRequest:
        return InvalidRequest([{"type": kind, "loc": ("body", spec.field), "msg": message, "input": url}])

    try:
        data, _content_type = netguard.fetch(url, allow_hosts=allow_hosts, max_bytes=spec.max_bytes, timeout=timeout)
    except netguard.Blocked as exc:
        raise invalid("input_url_blocked", f"{spec.field}: {url} may not be fetched: {exc.reason}") from None
    except netguard.FetchError as exc:
        raise invalid("input_fetch_failed", f"{spec.field}: could not fetch {url}: {exc}") from None
    try:
        info = inspect(data, spec)
    except MediaError as exc:
        raise invalid(exc.code, f"{spec.field} ({url}): {exc.message}") from None
    return data, info


def decode_checked(value: Any, spec: MediaInput) -> tuple[bytes, MediaInfo]:
    """``value``: base64 (with or without a ``data:`` prefix) of media that ``spec`` accepts.
    Raises ``InvalidRequest`` naming ``spec.field``."""
    def invalid(kind: str, message: str) -> InvalidRequest:
        shown = value[:80] + "…" if isinstance(value, str) and len(value) > 80 else value
        return InvalidRequest([{"type": kind, "loc": ("body", spec.field), "msg": message, "input": shown}])

    if not isinstance(value, str):
        raise invalid("string_type", f"{spec.field} must be a string: the {spec.kind} as base64")
    if len(value) > spec.max_bytes * 4 // 3 + 200:
        raise invalid("image_too_large" if spec.kind == "image" else "media_too_large",
                      f"{spec.field}: the {spec.kind} is over {_mb(spec.max_bytes)}")
    try:
        data = decode_base64(value)
        info = inspect(data, spec)
    except MediaError as exc:
        raise invalid(exc.code, f"{spec.field}: {exc.message}") from None
    return data, info


# --------------------------------------------------------------------------- worker
Fetch = Callable[..., tuple[bytes, "str | None"]]


def _default_fetch() -> Fetch:
    return netguard.fetch  # looked up at call time: fetch(url, *, allow_hosts, max_bytes, timeout)


def fetch_error(field: str, url: str, exc: Exception) -> Exception:
    """Classify a failed fetch of a client's input URL: a refused address, an HTTP 4xx, a
    redirect, an oversized body or an unreachable host are the client's problem (Permanent); a
    timeout, 429 or 5xx from the input's host may pass (Retryable, bounded by the job's attempts)."""
    if isinstance(exc, netguard.Blocked):
        return Permanent(f"{field}: the URL {url} may not be fetched: {exc}", code="input_url_blocked")
    status = getattr(exc, "status_code", None)
    timed_out = isinstance(exc, httpx.TimeoutException) or isinstance(exc.__cause__, httpx.TimeoutException)
    if timed_out or (status is not None and (status >= 500 or status == 429)):
        return Retryable(f"{field}: could not fetch {url}: {exc}", code="input_fetch_failed")
    if isinstance(exc, (netguard.FetchError, httpx.HTTPError)):
        return Permanent(f"{field}: could not fetch {url}: {exc}", code="input_fetch_failed")
    return Permanent(f"{field}: could not fetch {url}: {type(exc).__name__}: {exc}", code="input_fetch_failed")


def resolve_inputs(op: Operation, params: dict[str, Any], *, allow_hosts: tuple[str, ...] = (),
                   timeout: float = 10.0, fetch: Fetch | None = None) -> dict[str, Any]:
    """The params with every media input ready for the upstream: image URLs fetched, checked and
    replaced by raw base64; base64 values stripped of a ``data:`` prefix; video URLs fetched,
    probed and kept. Raises ``Permanent`` / ``Retryable``; ``params`` itself is not modified."""
    if not op.inputs:
        return params
    out = dict(params)
    for spec in op.inputs:
        value = params.get(spec.field)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        resolved = []
        for i, item in enumerate(items):
            name = f"{spec.field}[{i}]" if isinstance(value, list) else spec.field
            resolved.append(_resolve_one(name, item, spec, params, allow_hosts, timeout, fetch))
        out[spec.field] = resolved if isinstance(value, list) else resolved[0]
    return out


def _resolve_one(name: str, value: Any, spec: MediaInput, params: dict[str, Any], allow_hosts: tuple[str, ...],
                 timeout: float, fetch: Fetch | None) -> Any:
    if not isinstance(value, str):
        return value
    if not is_url(value):
        try:
            data = decode_base64(value)
            inspect(data, spec, params)
        except MediaError as exc:  # intake checks this already; a job may predate a limit change
            raise Permanent(f"{name}: {exc.message}", code=exc.code) from None
        return base64.b64encode(data).decode("ascii") if spec.kind == "image" else value
    fetcher = fetch or _default_fetch()
    try:
        data, _content_type = fetcher(value, allow_hosts=allow_hosts, max_bytes=spec.max_bytes, timeout=timeout)
    except Exception as exc:
        raise fetch_error(name, value, exc) from None
    try:
        inspect(data, spec, params)
    except MediaError as exc:
        raise Permanent(f"{name} ({value}): {exc.message}", code=exc.code) from None
    if spec.kind == "video" or spec.url_only:
        return value  # Bria takes only public URLs for video
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- whole request (API, batches)
def prepare_request(op: Operation, params: dict[str, Any], operations: dict[str, Operation]
                    ) -> tuple[Operation, dict[str, Any], list[dict[str, Any]]]:
    """The operation that really runs, its params and any errors (FastAPI's shape, ``loc``
    starting with "body"): an alias's params are normalised into its canonical operation's (and
    validated by that model, so the reference's limits apply to aliases too), then the media
    inputs are checked. Synchronous: call it off the event loop. Every path that creates jobs
    (single requests, batches) must go through this, so no job is ever an alias's."""
    if op.alias_of is not None:
        try:
            params = op.normalize(params) if op.normalize else params
        except ValidationError as exc:
            return op, params, [{"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"],
                                 "input": e.get("input"), **({"ctx": e["ctx"]} if "ctx" in e else {})}
                                for e in exc.errors(include_url=False)]
        op = operations[op.alias_of]
    return op, params, check_inputs(op, params)
