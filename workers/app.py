"""The Celery application: configuration, queues and the beat schedule (no task bodies here,
so the API can import it to publish without loading the worker's code).

One queue per provider, so a flood of slow jobs for one provider never delays another's, plus
``maintenance`` for the sweeper. At-least-once delivery: late acks, reject on worker loss,
prefetch 1. The job row is the truth; a message only says "look at job X".
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from core.settings import Settings, get_settings
from providers.registry import PROVIDERS

MAINTENANCE_QUEUE = "maintenance"
START_TASK = "visiongate.start"
POLL_TASK = "visiongate.poll"
SWEEP_TASK = "visiongate.sweep"
EXPIRE_TASK = "visiongate.expire"
# Webhooks go out from their own queue, so a slow receiver never delays job work. Due
# deliveries are dispatched (and finished batches closed) by the sweep task (workers/tasks.py);
# the two tasks below also exist on their own for operators.
WEBHOOKS_QUEUE = "webhooks"
WEBHOOK_DISPATCH_TASK = "visiongate.webhooks.dispatch"
WEBHOOK_DELIVER_TASK = "visiongate.webhooks.deliver"
BATCH_SWEEP_TASK = "visiongate.batches.sweep"


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
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name) for name in (*PROVIDERS, MAINTENANCE_QUEUE, WEBHOOKS_QUEUE)],
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
        beat_schedule_filename=str(settings.data_path / "celerybeat-schedule"),
        imports=("workers.tasks", "workers.webhooks"),
    )
    return app


celery_app = make_celery(get_settings())


def publish(task: str, job_id: str, provider: str) -> None:
    celery_app.send_task(task, args=[job_id], queue=provider)


def publish_start(job_id: str, provider: str) -> None:
    publish(START_TASK, job_id, provider)
