"""The Bria simulator's state: its tasks in memory (each done once its latency has passed), their
files (made on first use, kept in a bounded cache), the fault book and the counters."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from providers.simulator.faults import FaultBook
from providers.simulator.render import render_png

MAX_TASKS = 50_000  # oldest tasks are forgotten beyond this (Bria expires them too)
MAX_CACHED_IMAGES = 256
MAX_SUBMISSION_KEYS = 100_000  # submissions are counted per prompt for this many prompts (newest)

Produce = Callable[[], list[tuple[bytes, str, str]]]  # -> [(bytes, media type, extension)]


@dataclass
class SimTask:
    request_id: str
    prompt: str
    seed: int
    aspect_ratio: str
    resolution: str
    created: float
    latency: float
    error: dict[str, Any] | None = None  # set by an "error" fault: the task ends in ERROR
    unknown_once: bool = False  # set by an "unknown" fault on submit
    # Editing/product/video tasks: how to make the outputs (None: render the generated image).
    produce: Produce | None = None
    result_key: str = "image_url"  # video tasks answer result.video_url
    meta: dict[str, Any] | None = None  # result fields besides the URL (None: seed/prompt/refined_prompt)
    ext: str | None = None  # extension of the first output, known once it is made

    def done(self, now: float) -> bool:
        return now - self.created >= self.latency

    def progress(self, now: float) -> float:
        return 1.0 if self.latency <= 0 else min(0.99, round((now - self.created) / self.latency, 2))


@dataclass
class SimState:
    default_latency: float
    api_token: str | None
    latency: float = 0.0
    faults: FaultBook = field(default_factory=FaultBook)
    tasks: OrderedDict[str, SimTask] = field(default_factory=OrderedDict)
    images: OrderedDict[str, list[tuple[bytes, str, str]]] = field(default_factory=OrderedDict)
    counters: dict[str, int] = field(default_factory=lambda: {"submit": 0, "status": 0, "download": 0})
    # Tasks created per prompt (generation): a count above 1 is a duplicate submission of the same
    # job when every job of a drill sends its own prompt. Bounded: the oldest prompts are dropped.
    submissions: OrderedDict[str, int] = field(default_factory=OrderedDict)
    submissions_dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.latency = self.default_latency

    def count(self, what: str) -> None:
        with self.lock:
            self.counters[what] += 1

    def note_submission(self, key: str) -> None:
        with self.lock:
            self.submissions[key] = self.submissions.get(key, 0) + 1
            self.submissions.move_to_end(key)
            while len(self.submissions) > MAX_SUBMISSION_KEYS:
                self.submissions.popitem(last=False)
                self.submissions_dropped += 1

    def submission_counts(self, prefix: str = "") -> dict[str, Any]:
        """Tasks created per prompt (those starting with ``prefix``): totals and the duplicates."""
        with self.lock:
            counts = [(k, n) for k, n in self.submissions.items() if k.startswith(prefix)]
            dropped = self.submissions_dropped
        return {"prompts": len(counts), "tasks": sum(n for _, n in counts),
                "duplicates": {k: n for k, n in counts if n > 1}, "dropped_prompts": dropped}

    def add_task(self, task: SimTask) -> None:
        with self.lock:
            self.tasks[task.request_id] = task
            while len(self.tasks) > MAX_TASKS:
                self.tasks.popitem(last=False)

    def reset(self) -> None:
        with self.lock:
            self.counters = {k: 0 for k in self.counters}
            self.submissions.clear()
            self.submissions_dropped = 0
            self.latency = self.default_latency
        self.faults.clear()

    def outputs(self, task: SimTask) -> list[tuple[bytes, str, str]]:
        """The task's files, made on first use and kept in a bounded LRU cache."""
        key = task.request_id
        with self.lock:
            if key in self.images:
                self.images.move_to_end(key)
                return self.images[key]
        if task.produce is not None:
            data = task.produce()
        else:
            data = [(render_png(task.prompt, task.seed, task.aspect_ratio, task.resolution), "image/png", "png")]
        with self.lock:
            self.images[key] = data
            while len(self.images) > MAX_CACHED_IMAGES:
                self.images.popitem(last=False)
        return data

    def image_bytes(self, task: SimTask) -> bytes:
        return self.outputs(task)[0][0]


def file_name(request_id: str, index: int, ext: str) -> str:
    return f"{request_id}.{ext}" if index == 0 else f"{request_id}_{index}.{ext}"
