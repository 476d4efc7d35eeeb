"""The provider port: what the job machinery needs from an upstream, and nothing more.

A provider package (``providers/bria``, later ``google``, ``openai``, …) declares its
operations once in an operation table (``Operation`` rows) and implements ``Provider``:

* ``submit(op, params)``  – start the upstream work. Returns ``Submitted`` (the upstream gave a
  task id to poll) or ``Finished`` (it answered with the outputs at once).
* ``poll(op, task)``      – one status request. Returns ``Pending``, ``Finished`` or ``Failed``.
* ``download(output)``    – fetch one output's bytes (upstream URLs may need the provider's auth).

Errors are raised as one of three classes so the worker can act without knowing the provider:
``RateLimited`` (429: retry after ``retry_after``; the job stays in progress), ``Retryable``
(5xx, timeouts, connection errors: bounded retries with backoff) and ``Permanent`` (other 4xx,
content moderation, upstream ERROR: the job ends in ERROR with the upstream's code and message).

This module imports nothing of ours, so provider packages stay independent of core/api/workers.
"""

from __future__ import annotations

import email.utils
import enum
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from pydantic import BaseModel


# --------------------------------------------------------------------------- errors
class UpstreamError(Exception):
    """Base of every classified upstream failure."""

    def __init__(self, message: str, *, code: str = "upstream_error", http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status


class RateLimited(UpstreamError):
    def __init__(self, message: str = "upstream rate limit", *, retry_after: float | None = None, **kw: Any):
        kw.setdefault("code", "upstream_rate_limited")
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Retryable(UpstreamError):
    """``maybe_sent``: the request may have reached the upstream (a read timeout, a connection
    dropped after sending): a submit retried after it may start a second paid generation."""

    def __init__(self, message: str, *, maybe_sent: bool = False, **kw: Any):
        kw.setdefault("code", "upstream_unavailable")
        super().__init__(message, **kw)
        self.maybe_sent = maybe_sent


def maybe_delivered(exc: BaseException) -> bool:
    """Whether a failed exchange may have delivered the request: anything after the connection
    was made (read/write timeouts, a dropped or garbled answer). Connecting, or waiting for a
    pooled connection, never sent a byte."""
    import httpx  # the port itself needs no HTTP client; only this classification does

    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                        httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return False
    return isinstance(exc, httpx.TransportError)


class Permanent(UpstreamError):
    def __init__(self, message: str, **kw: Any):
        kw.setdefault("code", "upstream_rejected")
        super().__init__(message, **kw)


class InvalidRequest(Exception):
    """Raised by an operation's ``resolve`` hook: the request is valid by its schema but not for
    this tenant (e.g. an unknown or untrained tailored model). ``errors`` are FastAPI-style items
    (``{"type", "loc", "msg", "input"}``, ``loc`` starting with "body"); the API answers 422 with
    them and creates no job."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__("; ".join(str(e.get("msg")) for e in errors))
        self.errors = errors


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Output:
    """One produced asset: either a URL to download or the bytes themselves."""

    url: str | None = None
    data: bytes | None = None
    content_type: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpstreamTask:
    """A handle on one long-running upstream task."""

    id: str
    status_url: str | None = None


@dataclass(frozen=True)
class Submitted:
    tasks: list[UpstreamTask]


@dataclass(frozen=True)
class Finished:
    outputs: list[Output]
    # Extra result fields to show the client (seed, prompt, refined_prompt, …).
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pending:
    progress: float | None = None  # 0..1 when the upstream reports it


@dataclass(frozen=True)
class Failed:
    code: str
    message: str
    details: Any = None


PollResult = Pending | Finished | Failed


# --------------------------------------------------------------------------- media inputs
MB = 1024 * 1024


@dataclass(frozen=True)
class MediaLimits:
    """What one media input may be. Checked from the file's header (images) or container
    metadata (videos) before anything decodes it, so an input beyond them costs no memory.

    ``max_pixels``/``max_side`` bound an image or a video frame (width × height, longest side);
    ``max_duration`` (seconds) applies to videos only.
    """

    max_bytes: int
    max_pixels: int
    max_side: int
    max_duration: float | None = None

    def describe(self) -> str:
        """"at most 16.8 MP / 8192 px on the longest side"."""
        return f"at most {megapixels(self.max_pixels)} MP / {self.max_side} px on the longest side"

    def size_problem(self, what: str, width: int, height: int) -> str | None:
        """Why ``width`` x ``height`` is beyond the limits ("the image is 20000x20000 (400.0 MP);
        this operation accepts at most …"), or None. ``what``: "image", "video", "mask", …"""
        if width * height <= self.max_pixels and max(width, height) <= self.max_side:
            return None
        return (f"the {what} is {width}x{height} ({width * height / 1e6:.1f} MP); "
                f"this operation accepts {self.describe()}")


def megapixels(pixels: int) -> str:
    """16777216 → "16.8", 2000000 → "2"."""
    return f"{round(pixels / 1e6, 1):g}"


# Defaults for media rows that state nothing else, so every operation has limits. Providers whose
# documentation states limits declare them on their rows (providers/bria/operations.py).
# Images: 12 MB is Bria's stated maximum (004). Neither Bria nor 004 states a pixel limit for
# general inputs, so the default is a conservative 4096×4096 (16.8 MP) — above what the
# generation/editing models work at (1–4 MP) and what a border mask or a canvas of that size costs
# to build (~17 MB) — with 8192 px on the longest side (Bria's largest stated image size, 004's
# upscale output) for panoramas within the pixel budget.
IMAGE_LIMITS = MediaLimits(max_bytes=12 * MB, max_pixels=4096 * 4096, max_side=8192)
# Videos: Bria's video background removal (004: "Input resolution supported up to 16000x16000
# (16K)"; Bria's published schema, as relayed by Comfy Router and Cloudflare: "max duration 60
# seconds"). No byte limit is stated anywhere: 200 MB is our conservative choice (60 s of 16K
# would not fit, 60 s of 4K at a high bitrate does).
VIDEO_LIMITS = MediaLimits(max_bytes=200 * MB, max_pixels=16000 * 16000, max_side=16000, max_duration=60.0)


@dataclass(frozen=True)
class MediaInput:
    """One request field that carries media (a URL, base64, or a list of them).

    The API checks base64 values at intake (decodable, a real image of an allowed format, within
    the limits) and the worker fetches URL values SSRF-safely before ``submit``; see core/media_inputs.py.
    ``kind`` is "image" or "video"; ``url_only`` fields are passed on as URLs after the check.

    ``limits`` defaults to ``IMAGE_LIMITS`` / ``VIDEO_LIMITS`` by kind; ``max_bytes``,
    ``max_pixels``, ``max_side`` and ``max_duration`` override single values. After construction
    those four fields and ``limits`` hold the effective values (never None: every input is bounded).
    """

    field: str
    kind: str = "image"
    many: bool = False
    max_bytes: int | None = None
    max_pixels: int | None = None
    max_side: int | None = None
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
    url_only: bool = False
    # Videos are passed on as their URL unless ``as_data``: then as base64 of the checked bytes.
    as_data: bool = False
    # Extra rule on the media's size: (width, height, params) -> error message or None.
    check: Callable[[int, int, dict[str, Any]], str | None] | None = None
    max_duration: float | None = None
    limits: MediaLimits | None = None

    def __post_init__(self) -> None:
        base = self.limits or (VIDEO_LIMITS if self.kind == "video" else IMAGE_LIMITS)
        limits = MediaLimits(
            max_bytes=self.max_bytes if self.max_bytes is not None else base.max_bytes,
            max_pixels=self.max_pixels if self.max_pixels is not None else base.max_pixels,
            max_side=self.max_side if self.max_side is not None else base.max_side,
            max_duration=self.max_duration if self.max_duration is not None else base.max_duration)
        for name in ("max_bytes", "max_pixels", "max_side", "max_duration"):
            object.__setattr__(self, name, getattr(limits, name))
        object.__setattr__(self, "limits", limits)


# --------------------------------------------------------------------------- operations
class Kind(str, enum.Enum):
    JOB = "job"  # long-running: persisted, queued, polled
    QUICK = "quick"  # inline request/response


@dataclass(frozen=True)
class Operation:
    """One Vision Studio endpoint, declared once.

    ``build`` turns the validated request into the upstream call's JSON body (or ``None`` when
    the provider's ``submit`` handles the op itself); ``upstream_path`` names the upstream
    endpoint. The API derives its route from ``method``/``path``/``request_model``; the worker
    dispatches on ``name``.
    """

    name: str
    provider: str
    method: str
    path: str
    request_model: type[BaseModel]
    kind: Kind
    summary: str
    tags: tuple[str, ...] = ()
    upstream_path: str | None = None
    build: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # Media kind of the outputs ("image", "video", "audio", "vector", "json").
    output: str = "image"
    description: str = ""
    deprecated: bool = False
    # Credits a request costs (plans); upstream requests it makes (upstream throttling).
    cost: Callable[[dict[str, Any]], int] = field(default=lambda p: one_per_output(p))
    upstream_requests: Callable[[dict[str, Any]], int] = field(default=lambda p: one_request(p))
    # Media fields of the request (checked at intake, fetched by the worker).
    inputs: tuple[MediaInput, ...] = ()
    # Request encoding: "json" or "form" (application/x-www-form-urlencoded or multipart).
    body: str = "json"
    # Upstream path chosen per request (overrides ``upstream_path`` when set).
    route: Callable[[dict[str, Any]], str] | None = None
    # Compatibility alias: the canonical operation this one stands for, and the function that
    # turns the alias's validated params into the canonical request (validated again by the
    # canonical model). Aliases are routed (marked deprecated) but never become jobs themselves.
    alias_of: str | None = None
    normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # Intake step that needs the database: ``await resolve(params, tenant_id, session, defaults)``
    # returns the params to store (e.g. a tenant's tailored model id replaced by the upstream
    # one) or raises ``InvalidRequest``. ``defaults`` are the host's ``UpstreamDefaults``
    # (providers.plugin), for a hook that asks the upstream. Called by the API after validation,
    # before the job exists.
    # Paths that create jobs without it (batches) must not run such an operation blindly: the
    # operation's own ``build``/``route`` refuse params that were not resolved.
    resolve: Callable[[dict[str, Any], str, Any, Any], Awaitable[dict[str, Any]]] | None = None


def one_per_output(params: dict[str, Any]) -> int:
    """Default credit cost: one credit per output asset (``num_results``, else 1)."""
    return int(params.get("num_results") or 1)


def one_request(_params: dict[str, Any]) -> int:
    return 1


class Provider(Protocol):
    name: str
    operations: list[Operation]

    def submit(self, op: Operation, params: dict[str, Any]) -> Submitted | Finished: ...

    def poll(self, op: Operation, task: UpstreamTask) -> PollResult: ...

    def download(self, output: Output) -> tuple[bytes, str]: ...

    def close(self) -> None: ...

    # Optional, for ``Kind.QUICK`` operations: one inline upstream call whose JSON answer becomes
    # the ``result`` of the client's response. Raises the same three error classes.
    # def call(self, op: Operation, params: dict[str, Any]) -> Any: ...


# --------------------------------------------------------------------------- helpers for clients
_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """An upstream's ``Retry-After`` as seconds to wait: ASCII delta-seconds or an HTTP date in
    the future (a past date is 0); ``None`` when absent or unreadable ("²", "nan", "-1", …)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
