"""What clients send about webhooks: event names, a job's ``webhook_url`` / ``webhook_events``
options (with the other options a job request may carry: ``retention_seconds``), and the tenant
endpoints' bodies. URLs are checked against core.netguard's rules."""

from __future__ import annotations

from typing import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from core import netguard
from core.retention import RetentionSeconds
from core.settings import get_settings

# --------------------------------------------------------------------------- event types
JOB_STARTED = "job.started"  # the job was submitted upstream
JOB_COMPLETED = "job.completed"  # COMPLETED: data.result has the (freshly signed) URLs
JOB_FAILED = "job.failed"  # ERROR: data.error has code and message
JOB_PROGRESS = "job.progress"  # opt-in: upstream progress moved (at most one per job per PROGRESS_GAP s)
JOB_CANCELLED = "job.cancelled"  # CANCELLED (by DELETE /api/v1/jobs/{id} or its batch): data.error code cancelled
BATCH_COMPLETED = "batch.completed"  # every job of the batch finished
BATCH_CANCELLED = "batch.cancelled"  # the batch was cancelled and its last running job finished

JOB_EVENTS = (JOB_STARTED, JOB_PROGRESS, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED)
PROGRESS_GAP_SECONDS = 5.0
BATCH_EVENTS = (BATCH_COMPLETED, BATCH_CANCELLED)
ALL_EVENTS = JOB_EVENTS + BATCH_EVENTS
# A job's webhook_url gets the final event unless webhook_events says otherwise.
DEFAULT_JOB_EVENTS = (JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED)
# A tenant endpoint gets every final event unless its ``events`` says otherwise.
DEFAULT_ENDPOINT_EVENTS = (JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED, BATCH_COMPLETED, BATCH_CANCELLED)
SHORT_NAMES = {"started": JOB_STARTED, "progress": JOB_PROGRESS, "completed": JOB_COMPLETED,
               "failed": JOB_FAILED, "cancelled": JOB_CANCELLED}

MAX_URL_LENGTH = 2048


def normalize_events(values: Iterable[str], allowed: Sequence[str] = JOB_EVENTS) -> list[str]:
    """``["started", "job.completed"]`` → ``["job.started", "job.completed"]``; ValueError for
    names outside ``allowed``."""
    out: list[str] = []
    for value in values:
        name = SHORT_NAMES.get(value, value) if isinstance(value, str) else value
        if name not in allowed:
            choices = ", ".join([*(k for k, v in SHORT_NAMES.items() if v in allowed), *allowed])
            raise ValueError(f"unknown event {value!r}; choose from {choices}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("at least one event is needed")
    return out


def check_webhook_url(value: str, info: ValidationInfo) -> str:
    context = info.context or {}
    allow = context["allow_hosts"] if "allow_hosts" in context else get_settings().outbound_allow_hosts
    try:
        netguard.check_url(value, allow)
    except netguard.Blocked as exc:
        raise ValueError(f"webhook_url is not allowed: {exc.reason}") from None
    return value


class JobOptions(BaseModel):
    """Fields any job endpoint accepts beside the operation's own (read from the same body)."""

    model_config = ConfigDict(extra="ignore")

    webhook_url: str | None = Field(None, min_length=1, max_length=MAX_URL_LENGTH,
                                    description="URL that receives signed job events")
    webhook_events: list[str] | None = Field(
        None, description="job.started, job.progress, job.completed, job.failed, job.cancelled (or "
                          "started, progress, completed, failed, cancelled); default: the final event "
                          "(job.completed, job.failed or job.cancelled). job.progress: at most one per "
                          "job every 5 s, when the upstream reports progress")
    retention_seconds: RetentionSeconds = None  # core/retention.py

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_webhook_url(value, info)

    @field_validator("webhook_events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalize_events(value, JOB_EVENTS)

    @model_validator(mode="after")
    def _events_need_url(self) -> "JobOptions":
        if self.webhook_events is not None and self.webhook_url is None:
            raise ValueError("webhook_events needs webhook_url")
        return self

    def events(self) -> list[str]:
        return list(self.webhook_events or DEFAULT_JOB_EVENTS)


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    events: list[str] | None = Field(None, description="default: every final event")
    description: str = Field("", max_length=200)
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        return check_webhook_url(value, info)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalize_events(value, ALL_EVENTS)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=1, max_length=MAX_URL_LENGTH)
    events: list[str] | None = None
    description: str | None = Field(None, max_length=200)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_webhook_url(value, info)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalize_events(value, ALL_EVENTS)
