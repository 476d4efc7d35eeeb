"""A scripted provider for the job machinery's own tests: no vendor, no HTTP.

``FakeProvider`` speaks the submit / poll / download port, ``FakeAsyncProvider`` the one-call
``AsyncProvider`` port. Each follows a script of steps consumed in order, one per upstream call:

* ``"task"``      – submit answers ``Submitted`` with a task id (then polls follow the script);
* ``"pending"``   – a poll answers ``Pending`` (``"pending:0.4"`` reports progress 0.4);
* ``"done"``      – submit or poll answers ``Finished`` with one real PNG output;
* ``"failed"``    – a poll answers ``Failed`` (the upstream's ERROR state);
* ``"429"``       – ``RateLimited`` (retry after 0.05 s), ``"5xx"`` – ``Retryable``,
  ``"reject"``    – ``Permanent`` (HTTP 400), ``"moderated"`` – ``Permanent`` content_moderated,
* ``"crash"``     – a plain ``RuntimeError`` (our own bug, as the pipeline sees it).

An exhausted script answers ``"done"``. ``calls`` records every call (for assertions), and the
async provider's ``delay`` holds each call open that long (in-flight tests).
"""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any

from PIL import Image
from pydantic import BaseModel, Field

from providers.base import (Failed, Finished, Kind, Operation, Output, Pending, Permanent, RateLimited,
                            Retryable, Submitted, UpstreamTask)
from providers.plugin import Dialect, Plugin, UpstreamDefaults


class FakeRequest(BaseModel):
    prompt: str = Field(min_length=1)
    width: int = Field(64, ge=8, le=512)
    height: int = Field(48, ge=8, le=512)
    sync: bool = False


OPERATIONS = [
    Operation(name="fake.render", provider="fake", method="POST", path="/api/v1/fake/render",
              request_model=FakeRequest, kind=Kind.JOB, summary="Fake render", tags=("Fake",)),
]


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


class _Script:
    def __init__(self, steps: list[str] | None = None):
        self.steps = list(steps or [])
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def next(self, call: str, subject: str) -> str:
        with self._lock:
            self.calls.append((call, subject))
            return self.steps.pop(0) if self.steps else "done"


def _raise_for(step: str) -> None:
    if step == "429":
        raise RateLimited("fake rate limit", retry_after=0.05, http_status=429)
    if step == "5xx":
        raise Retryable("fake upstream is down", code="upstream_503", http_status=503)
    if step == "reject":
        raise Permanent("fake upstream refused the input", code="upstream_400", http_status=400)
    if step == "moderated":
        raise Permanent("fake upstream's safety system refused it", code="content_moderated", http_status=400)
    if step == "crash":
        raise RuntimeError("fake bug")


def _finished(params: dict[str, Any]) -> Finished:
    data = png(int(params.get("width", 64)), int(params.get("height", 48)))
    return Finished([Output(data=data, content_type="image/png")], {"seed": 7})


class FakeProvider:
    """The submit / poll / download port, scripted."""

    name = "fake"

    def __init__(self, steps: list[str] | None = None):
        self.script = _Script(steps)
        self.operations = OPERATIONS
        self._tasks = 0

    @property
    def calls(self) -> list[tuple[str, str]]:
        return self.script.calls

    def submit(self, op: Operation, params: dict[str, Any]) -> Submitted | Finished:
        step = self.script.next("submit", op.name)
        _raise_for(step)
        if step == "task":
            self._tasks += 1
            return Submitted([UpstreamTask(f"fake-task-{self._tasks}")])
        return _finished(params)

    def poll(self, op: Operation, task: UpstreamTask) -> Pending | Finished | Failed:
        step = self.script.next("poll", task.id)
        _raise_for(step)
        if step.startswith("pending"):
            _, _, progress = step.partition(":")
            return Pending(float(progress) if progress else None)
        if step == "failed":
            return Failed("fake_failed", "the fake upstream's task failed")
        return Finished([Output(url=f"fake://{task.id}.png", content_type="image/png")], {"seed": 7})

    def download(self, output: Output) -> tuple[bytes, str]:
        if output.data is not None:
            return output.data, output.content_type or "image/png"
        self.script.next("download", output.url or "")
        return png(64, 48), "image/png"

    def close(self) -> None:
        pass


class FakeCancellableProvider(FakeProvider):
    """The fake upstream with a cancel (as Runway and Firefly have); cancelled ids are kept."""

    def __init__(self, steps: list[str] | None = None):
        super().__init__(steps)
        self.cancelled: list[str] = []

    def cancel(self, op: Operation, task: UpstreamTask) -> None:
        self.cancelled.append(task.id)


class FakeAsyncProvider:
    """The one-call ``AsyncProvider`` port, scripted; each call stays open ``delay`` seconds."""

    name = "fake"

    def __init__(self, steps: list[str] | None = None, delay: float = 0.0, max_in_flight: int = 64):
        self.script = _Script(steps)
        self.delay = delay
        self.max_in_flight = max_in_flight
        self.open_now = 0
        self.most_open = 0

    @property
    def calls(self) -> list[tuple[str, str]]:
        return self.script.calls

    async def run(self, op: Operation, params: dict[str, Any]) -> Finished:
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await asyncio.sleep(self.delay)
            step = self.script.next("run", op.name)
            _raise_for(step)
            return _finished(params)
        finally:
            self.open_now -= 1

    async def aclose(self) -> None:
        pass


def build(_settings: Any, _defaults: UpstreamDefaults) -> FakeProvider:
    return FakeProvider()


class FakeSettings(BaseModel):
    pass


# Not in the registry: tests that want it in a running system add it there themselves.
PLUGIN = Plugin(name="fake", operations=tuple(OPERATIONS), settings=FakeSettings, build=build,
                dialect=Dialect())
