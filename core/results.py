"""What a client reads about a job: Bria's status document, with freshly signed URLs.

URLs are minted on every read (never stored), valid for ``url_ttl_seconds`` but never beyond
the job's retention, so a client can always re-read the status to get working links until the
job expires. A status document carries the job's ``expires_at`` (when its retention ends; see
core/retention.py) once the job has finished: while it runs, Bria's document has the reference's
four fields plus ``progress`` and ``queue_position`` where known, and the job view shows
``expires_at: null``. ``result.expires_at`` is
when the URLs of this read stop working.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from core.jobs.states import JobStatus, public_status
from core.models import Job, utcnow
from core.settings import Settings
from core.signing import sign_url

# Result fields an upstream may report that we pass on (Bria: seed, prompt, refined_prompt;
# OpenAI: the prompts it revised, one per image).
PASSED_META = ("seed", "prompt", "refined_prompt", "structured_prompt", "revised_prompts")


def signed_urls(job: Job, settings: Settings, base_url: str,
                now: dt.datetime | None = None) -> tuple[list[str], dt.datetime]:
    now = now or utcnow()
    expiry = now + dt.timedelta(seconds=settings.url_ttl_seconds)
    if job.expires_at is not None:
        expiry = min(expiry, job.expires_at)
    stamp = math.floor(expiry.timestamp())
    urls = [sign_url(settings.secret_key, base_url, o["key"], stamp) for o in job.outputs or []]
    return urls, dt.datetime.fromtimestamp(stamp, dt.UTC)


def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


# A text result (prompt helpers, captions): what the upstream model wrote and how.
TEXT_META = ("text", "tags", "segments", "mode", "provider", "model", "temperature", "usage")


def result_body(job: Job, settings: Settings, base_url: str) -> dict[str, Any]:
    urls, expires_at = signed_urls(job, settings, base_url)
    outputs = job.outputs or []
    meta = job.result_meta or {}
    if not outputs and ("text" in meta or "tags" in meta):  # no file: kept until the job's retention ends
        return {**{k: meta[k] for k in TEXT_META if k in meta}, "expires_at": iso(job.expires_at)}
    key = "video_url" if outputs and outputs[0].get("content_type", "").startswith("video/") else (
        "audio_url" if outputs and outputs[0].get("content_type", "").startswith("audio/") else "image_url")
    body: dict[str, Any] = {key: urls[0] if urls else None, "urls": urls}
    for name in PASSED_META:
        if name in meta:
            body[name] = meta[name]
    body.setdefault("seed", None)
    body["expires_at"] = iso(expires_at)
    return body


# Error codes that mean the job failed on what the client sent, not on us or the upstream:
# media checks (core.media: ``image_*``, ``video_*``, ``media_*``, ``not_a_*``, ``base64_*``),
# input URLs that may not or could not be fetched (``input_*``), and the upstream refusing the
# input itself (HTTP 400/413/415/422, content moderation included).
_INPUT_PREFIXES = ("input_", "image_", "video_", "media_", "not_a", "base64_")
_INPUT_CODES = frozenset({"upstream_400", "upstream_413", "upstream_415", "upstream_422", "content_moderated"})


def input_fault(code: str | None) -> bool:
    """True when a job's error code blames the client's input (a sync caller gets 422, not 502)."""
    return bool(code) and (code in _INPUT_CODES or code.startswith(_INPUT_PREFIXES))


def error_body(job: Job) -> dict[str, Any]:
    return {"code": job.error_code or "error", "message": job.error_message or "the job failed"}


def status_document(job: Job, settings: Settings, base_url: str,
                    queue_position: int | None = None) -> dict[str, Any]:
    """``BriaStatusResponse``: status, request_id, result (COMPLETED), error (ERROR), and, once
    the job has finished, its ``expires_at`` (visiongate's). While it runs, ``progress`` (0–1)
    once the upstream has reported one, and ``queue_position`` while it is held in its tenant's
    line: extra fields the reference's schema allows, absent when unknown, so a job with neither
    keeps exactly the reference's four fields."""
    status = public_status(job.status)
    doc: dict[str, Any] = {"status": status, "request_id": job.id, "result": None, "error": None}
    if status == "IN_PROGRESS":
        if job.progress is not None:
            doc["progress"] = job.progress
        if queue_position is not None:
            doc["queue_position"] = queue_position
    if job.expires_at is not None:  # known once the job has finished
        doc["expires_at"] = iso(job.expires_at)
    if job.status == JobStatus.COMPLETED.value:
        doc["result"] = result_body(job, settings, base_url)
    elif status == "ERROR":
        doc["error"] = error_body(job)
    return doc


def job_document(job: Job, settings: Settings, base_url: str) -> dict[str, Any]:
    """The richer, provider-neutral job view (``GET /api/v1/jobs/{id}``)."""
    doc = status_document(job, settings, base_url)
    doc.update(
        id=job.id,
        provider=job.provider,
        operation=job.operation,
        state=job.status,
        progress=job.progress,
        attempts=job.attempts,
        created_at=iso(job.created_at),
        started_at=iso(job.started_at),
        finished_at=iso(job.finished_at),
        expires_at=iso(job.expires_at),  # null while the job runs
        retained_until=iso(job.expires_at),  # the same as expires_at (the older name)
        retention_seconds=job.retention_seconds or settings.retention_seconds,
    )
    if job.outputs:
        doc["outputs"] = [
            {k: o.get(k) for k in ("content_type", "size", "width", "height")} for o in job.outputs
        ]
    return doc
