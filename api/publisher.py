"""Publishing start messages from the API.

On a Redis broker the messages are pushed straight onto the provider queues' lists, many per
round trip (``workers.app.encode_task_message``); on any other broker (the embedded
filesystem transport, AMQP) Celery's producer sends them one by one in a thread.
"""

from __future__ import annotations

from typing import Any

from fastapi.concurrency import run_in_threadpool

from workers.app import START_TASK, encode_task_message, publish_start


class StartPublisher:
    def __init__(self, redis_client: Any | None = None):
        self._redis = redis_client  # redis.asyncio client on the broker's database, or None

    async def __call__(self, items: list[tuple[str, str]]) -> None:
        if not items:
            return
        if self._redis is None:
            await run_in_threadpool(_send_all, items)
            return
        by_queue: dict[str, list[bytes]] = {}
        for job_id, provider in items:
            by_queue.setdefault(provider, []).append(encode_task_message(START_TASK, [job_id], provider))
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue, messages in by_queue.items():
                pipe.lpush(queue, *messages)
            await pipe.execute()


def _send_all(items: list[tuple[str, str]]) -> None:
    for job_id, provider in items:
        publish_start(job_id, provider)
