"""The Celery application: configuration, queues and the beat schedule (no task bodies here,
so the API can import it to publish without loading the worker's code).

One queue per provider, so a flood of slow jobs for one provider never delays another's, plus
``maintenance`` for the sweeper. At-least-once delivery: late acks, reject on worker loss,
prefetch 1. The job row is the truth; a message only says "look at job X".
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import socket
import uuid
from typing import Any

from celery import Celery
from kombu import Queue

from core.settings import Settings, get_settings
from providers.registry import PROVIDERS

MAINTENANCE_QUEUE = "maintenance"
START_TASK = "visiongate.start"
POLL_TASK = "visiongate.poll"
SWEEP_TASK = "visiongate.sweep"
EXPIRE_TASK = "visiongate.expire"
CANCEL_TASK = "visiongate.cancel_upstream"  # a cancelled job's upstream tasks (its poll queue)
# Webhooks go out from their own queue, so a slow receiver never delays job work. Due
# deliveries are dispatched (and finished batches closed) by the sweep task (workers/tasks.py);
# the two tasks below also exist on their own for operators.
WEBHOOKS_QUEUE = "webhooks"
WEBHOOK_DISPATCH_TASK = "visiongate.webhooks.dispatch"
WEBHOOK_DELIVER_TASK = "visiongate.webhooks.deliver"
BATCH_SWEEP_TASK = "visiongate.batches.sweep"


def poll_queue(provider: str) -> str:
    """Status checks have their own queue per provider: a backlog of thousands of starts (a big
    batch) never delays noticing that running jobs have finished."""
    return f"{provider}.poll"


def worker_queues() -> list[str]:
    """Every queue a general-purpose worker consumes."""
    return [*PROVIDERS, *(poll_queue(p) for p in PROVIDERS), MAINTENANCE_QUEUE, WEBHOOKS_QUEUE]


def make_celery(settings: Settings) -> Celery:
    app = Celery("visiongate", broker=settings.celery_broker_url)
    transport_options: dict = {"visibility_timeout": settings.broker_visibility_timeout}
    if settings.celery_broker_url.startswith("filesystem://"):
        folder = str(settings.filesystem_broker_dir)
        transport_options = {
            "data_folder_in": folder + "/in",
            "data_folder_out": folder + "/in",
            "processed_folder": folder + "/processed",
            "control_folder": folder + "/control",
            "store_processed": False,
            "polling_interval": 0.1,
        }
        # kombu's own filesystem transport can hand a consumer a half-written message file
        app.conf.broker_transport = "workers.fsbroker:Transport"
    elif settings.celery_broker_url.startswith("redis://"):
        # kombu's Redis transport crashes the worker when a late ack meets a closed connection
        app.conf.broker_transport = "workers.redisbroker:Transport"
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name) for name in worker_queues()],
        task_default_queue=MAINTENANCE_QUEUE,
        task_routes={SWEEP_TASK: {"queue": MAINTENANCE_QUEUE},
                     EXPIRE_TASK: {"queue": MAINTENANCE_QUEUE},
                     WEBHOOK_DISPATCH_TASK: {"queue": MAINTENANCE_QUEUE},
                     BATCH_SWEEP_TASK: {"queue": MAINTENANCE_QUEUE},
                     WEBHOOK_DELIVER_TASK: {"queue": WEBHOOKS_QUEUE}},
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep": {"task": SWEEP_TASK, "schedule": settings.sweep_interval_seconds,
                      "options": {"expires": max(settings.sweep_interval_seconds * 5, 5)}},
            "expire": {"task": EXPIRE_TASK, "schedule": 60.0, "options": {"expires": 300}},
        },
        # Any number of beats: one leads, the others stand by (workers/beat.py).
        beat_scheduler="workers.beat:LeaderScheduler",
        # A broker that is away for long is waited for, never given up on (the default gives up
        # after 100 attempts and the worker exits).
        broker_connection_max_retries=None,
        imports=("workers.tasks", "workers.webhooks"),
    )
    return app


celery_app = make_celery(get_settings())
# httpx logs every request at INFO: thousands of lines a second from the status checks.
logging.getLogger("httpx").setLevel(logging.WARNING)


_direct: dict[int, Any] = {}  # per process: a client must not cross a fork


def _redis_for_publishing() -> Any:
    url = celery_app.conf.broker_url or ""
    if not url.startswith(("redis://", "rediss://")):
        return None
    client = _direct.get(os.getpid())
    if client is None:
        import redis

        client = _direct[os.getpid()] = redis.Redis.from_url(url)
    return client


def publish(task: str, job_id: str | list[str], queue: str, countdown: float | None = None) -> None:
    """Send ``task(job_id)`` to ``queue``. On a Redis broker the message is pushed directly
    (``encode_task_message``: one LPUSH, none of kombu's per-message producer work, which the
    sweeper pays for every due batch); on any other broker through Celery's producer."""
    client = _redis_for_publishing()
    if client is None:
        celery_app.send_task(task, args=[job_id], queue=queue, countdown=countdown)
        return
    client.lpush(queue, encode_task_message(task, [job_id], queue, countdown=countdown))


def publish_start(job_id: str, provider: str) -> None:
    publish(START_TASK, job_id, provider)


class BrokerProbe:
    """What the sweeper asks the broker to notice lost start messages within seconds.

    * ``lost_everything()``: a marker key lives in the broker's Redis; when it is gone the
      broker restarted empty (or was flushed), so every unclaimed job's message is gone too.
    * ``empty_queues(queues)``: the start queues holding no message. A job published a while
      ago and still unclaimed while its queue is empty lost its message (a killed worker had
      reserved it, say), so it is published again; behind a backlog it is just waiting.

    Only a Redis broker can answer; elsewhere (the embedded filesystem transport, AMQP) the
    answers are "no" and "unknown", and the sweeper falls back to a long publish lease."""

    MARKER = "visiongate:broker-marker"

    def lost_everything(self) -> bool:
        client = _redis_for_publishing()
        if client is None:
            return False
        return bool(client.set(self.MARKER, _ORIGIN, nx=True))

    def empty_queues(self, queues: list[str]) -> set[str] | None:
        client = _redis_for_publishing()
        if client is None:
            return None
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        return {q for q, n in zip(queues, pipe.execute()) if not n}


# --------------------------------------------------------------------------- fast publishing
_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"


def encode_task_message(task: str, args: list, queue: str, countdown: float | None = None) -> bytes:
    """The message ``send_task(task, args=args, queue=queue)`` puts on a Redis broker (Celery
    message protocol 2, JSON body, kombu's Redis transport envelope), built directly.

    The API publishes many start messages per round trip with it (``LPUSH`` of several of
    these onto the queue's list) instead of paying kombu's per-message producer overhead.
    ``tests/unit/test_task_message.py`` checks it against kombu's own output, and every
    integration test's jobs travel this way to real Celery workers.
    """
    task_id = str(uuid.uuid4())
    eta = None
    if countdown is not None:  # the worker holds the task until then (Celery's ETA header)
        eta = (datetime.datetime.now(datetime.timezone.utc)
               + datetime.timedelta(seconds=countdown)).isoformat()
    body = json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return json.dumps({
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": task, "id": task_id, "shadow": None, "eta": eta,
            "expires": None, "group": None, "group_index": None, "retries": 0,
            "timelimit": [None, None], "root_id": task_id, "parent_id": None,
            "argsrepr": repr(args), "kwargsrepr": "{}", "origin": _ORIGIN,
            "ignore_result": None, "replaced_task_nesting": 0, "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": str(uuid.uuid4()), "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    }).encode()
