"""Fault injection for the Bria simulator (``/_sim/faults``, not part of Bria's protocol).

Tests and load drills need the upstream to misbehave on cue: rate limits, 5xx, slow answers,
failed or lost tasks. A rule names the request it applies to (``on``), what goes wrong
(``kind``) and how many times (``times``). For each kind of request the first rule that still
has uses left fires, so rules are consumed in the order they were posted.
"""

from __future__ import annotations

import threading
from typing import Literal

from pydantic import BaseModel, Field, model_validator

Target = Literal["submit", "status", "download"]
FaultKind = Literal["429", "500", "503", "timeout", "error", "unknown"]

DEFAULT_TIMEOUT_DELAY = 5.0


class FaultRule(BaseModel):
    """One injected failure.

    * ``429`` / ``500`` / ``503`` – answer with that HTTP status (429 carries ``Retry-After``
      when ``retry_after`` is given).
    * ``timeout`` – sleep ``delay`` seconds, then answer normally (a client with a shorter
      timeout sees a read timeout).
    * ``error`` – on submit or status the task ends in ``ERROR`` with ``code``/``message``; on
      download the file answers 404 with that error.
    * ``unknown`` – the task's next status answer is ``UNKNOWN`` (submit), or this status answer
      is (status).
    """

    on: Target
    kind: FaultKind
    times: int = Field(default=1, ge=1)
    retry_after: float | None = Field(default=None, ge=0)
    delay: float = Field(default=DEFAULT_TIMEOUT_DELAY, ge=0)
    code: int | str | None = None
    message: str | None = None
    match: str | None = Field(
        default=None,
        description="Fire only on requests whose subject contains this text: the raw body for "
                    "submit, the task id for status, the file name for download.")

    @model_validator(mode="after")
    def _kind_fits_target(self) -> "FaultRule":
        if self.kind == "unknown" and self.on == "download":
            raise ValueError("kind 'unknown' applies to submit or status, not download")
        return self


class FaultBook:
    """The pending fault rules; thread-safe because handlers may run in a thread pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[list] = []  # [rule, uses_left]

    def add(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules.extend([rule, rule.times] for rule in rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, on: Target, subject: str = "") -> FaultRule | None:
        """Consume one use of the first pending rule for ``on`` whose ``match`` (if any) occurs in
        ``subject``; ``None`` when there is none."""
        with self._lock:
            for entry in self._rules:
                rule, uses_left = entry
                if rule.on == on and (rule.match is None or rule.match in subject):
                    if uses_left <= 1:
                        self._rules.remove(entry)
                    else:
                        entry[1] = uses_left - 1
                    return rule
            return None

    def pending(self) -> list[dict]:
        with self._lock:
            return [{**rule.model_dump(), "times": uses_left} for rule, uses_left in self._rules]
