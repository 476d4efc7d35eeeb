"""Pipeline baseline: bare Celery no-op tasks on the same broker with the same worker settings.

``app`` is built by the product's ``make_celery`` (late acks, prefetch 1, JSON, same broker and
transport options) plus one task, ``bench.noop``, on queue ``bench_noop``. The worker runs with
the product worker's command line (pool, concurrency, flags), only ``-A`` and ``-Q`` differ.
A task does nothing but record ``sent,done`` timestamps with one Redis RPUSH so it can be timed.

Sender: ``python -m bench.noop send N [RATE] [MAX_SECONDS]`` publishes N tasks (paced at RATE/s if
given), bounded by MAX_SECONDS; prints the number sent.
"""

from __future__ import annotations

import functools
import sys
import time

import redis
from kombu import Queue

from core.settings import get_settings
from workers.app import make_celery

QUEUE = "bench_noop"
RESULTS_KEY = "bench:noop:done"

settings = get_settings()
app = make_celery(settings)
app.conf.update(imports=(), beat_schedule={},
                task_queues=[*app.conf.task_queues, Queue(QUEUE)])


@functools.lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.notify_redis_url or settings.celery_broker_url)


@app.task(name="bench.noop")
def noop(sent: float) -> None:
    _redis().rpush(RESULTS_KEY, f"{sent},{time.time()}")


def send(n: int, rate: float | None, max_seconds: float) -> int:
    start = time.monotonic()
    sent = 0
    with app.producer_or_acquire() as producer:
        for k in range(n):
            now = time.monotonic()
            if now - start > max_seconds:
                break
            if rate:
                slot = start + k / rate
                if slot > now:
                    time.sleep(slot - now)
            app.send_task("bench.noop", args=[time.time()], queue=QUEUE, producer=producer)
            sent += 1
    return sent


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "send":
        sys.exit("usage: python -m bench.noop send N [RATE] [MAX_SECONDS]")
    n = int(sys.argv[2])
    rate = float(sys.argv[3]) if len(sys.argv) > 3 and float(sys.argv[3]) > 0 else None
    max_seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 600.0
    print(send(n, rate, max_seconds), flush=True)
