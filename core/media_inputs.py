"""Media inputs of a request: base64 checked at intake, URLs fetched SSRF-safely by the worker.

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

A request's media that a provider route uses while the client waits (not a job) is fetched or
decoded and checked at once: ``fetch_checked`` / ``decode_checked``. The checks of one file are
core/media.py's.

Why forward fetched images as base64 instead of passing the URL through: Bria would otherwise
fetch the URL a second time, so what it processes could differ from what we checked (the host
may serve something else), a URL reachable only from our network (allow-listed for development)
would fail upstream with an unclear error, and Bria would become a fetcher for arbitrary URLs on
our account. Bria accepts base64 for every image field, so nothing is lost.
"""

from __future__ import annotations

import base64
from typing import Any, Callable, Iterator

import httpx
from pydantic import ValidationError

from core import netguard
from core.media import MediaError, MediaInfo, decode_base64, inspect, is_url, mb
from providers.base import InvalidRequest, MediaInput, Operation, Permanent, Retryable


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
                      f"{spec.field}: the {spec.kind} is over {mb(spec.max_bytes)}")
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
    if spec.url_only or (spec.kind == "video" and not spec.as_data):
        return value  # Bria takes only public URLs for video
    if spec.kind == "video":  # the upstream gets the checked bytes (e.g. frames sampled from them)
        return base64.b64encode(data).decode("ascii")
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
