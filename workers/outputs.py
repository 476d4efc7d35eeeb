"""A finished job's outputs: each downloaded from the upstream (or taken from its answer),
described (content type, image size) and stored; then the job is marked COMPLETED."""

from __future__ import annotations

import io
import logging
from typing import Any

from PIL import Image

from core.jobs import moves
from providers.base import Finished, Provider
from providers.plugin import AsyncProvider
from workers.context import Context

log = logging.getLogger("workers.pipeline")

EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp",
              "image/svg+xml": ".svg", "video/mp4": ".mp4", "audio/wav": ".wav",
              "audio/x-wav": ".wav", "audio/mpeg": ".mp3", "application/json": ".json",
              "video/webm": ".webm", "video/x-matroska": ".mkv", "video/quicktime": ".mov",
              "video/x-msvideo": ".avi", "image/gif": ".gif", "application/zip": ".zip"}


def finish(ctx: Context, job_id: str, tenant_id: str, results: list[Finished], provider: Provider,
            *, sources: str, tasks: list[dict[str, Any]] | None = None) -> None:
    """Copy every output into our storage, then mark the job COMPLETED."""
    stored: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for result in results:
        for name, value in result.meta.items():
            meta.setdefault(name, value)
        for output in result.outputs:
            if isinstance(provider, AsyncProvider):  # its answer carries the bytes themselves
                data, content_type = output.data, output.content_type
            else:
                data, content_type = provider.download(output)
            stored.append(_store(ctx, tenant_id, job_id, len(stored), data, content_type))
    if results and len(results) > 1:
        meta["seeds"] = [r.meta.get("seed") for r in results]
    with ctx.sessions.begin() as session:
        changed = moves.complete(session, job_id, stored, meta, ctx.settings.retention_seconds,
                                upstream_tasks=tasks)
    if changed:
        log.info("job %s completed from %s with %d output(s)", job_id, sources, len(stored))
        ctx.notifier.job_finished(job_id)


def describe_media(data: bytes, content_type: str | None) -> dict[str, Any]:
    """Content type (sniffed when the upstream's is missing or generic) and image size."""
    info: dict[str, Any] = {"content_type": content_type or "application/octet-stream",
                            "size": len(data)}
    if info["content_type"].startswith("image/svg"):
        return info
    try:
        with Image.open(io.BytesIO(data)) as img:
            info["width"], info["height"] = img.size
            info["content_type"] = Image.MIME.get(img.format, info["content_type"])
    except Exception:  # not a raster image (video, audio, svg): keep the upstream's type
        pass
    return info


def _store(ctx: Context, tenant_id: str, job_id: str, index: int, data: bytes,
           content_type: str | None) -> dict[str, Any]:
    info = describe_media(data, (content_type or "").split(";")[0].strip() or None)
    key = f"{tenant_id}/{job_id}/{index}{EXTENSIONS.get(info['content_type'], '.bin')}"
    ctx.storage.put(key, data)
    return {"key": key, **info}
