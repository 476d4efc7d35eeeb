"""kombu's Redis transport, with one fix: a channel whose connection is already closed raises a
connection error instead of ``AttributeError: 'NoneType' object has no attribute 'hostname'``.

With late acks, a task that finishes while the broker is away acks on the closed channel; kombu
builds a new connection pool from the closed connection's (gone) parameters and raises an
``AttributeError``, which neither kombu's ``ack_log_error`` nor Celery's consumer treat as a
connection problem: the worker's hub fails to stop and the worker dies or hangs after the broker
comes back (reproduced by tests/integration/test_faults.py, Redis stopped under load). As a
connection error the ack is logged and dropped (the message is redelivered; a start or a poll of
a job that moved on is a no-op), and the consumer reconnects as designed.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection of this channel is closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
