"""workers/redisbroker.py: a channel whose connection is closed (a late ack while the broker is
away) raises a connection error, which kombu and Celery handle, not kombu's AttributeError,
which killed the worker. Deterministic; tests/integration/test_faults.py stops a real Redis."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

from workers import redisbroker
from core.settings import Settings
from workers.app import make_celery


def _closed(cls):
    channel = cls.__new__(cls)  # no server needed: only the closed connection matters
    channel.connection = SimpleNamespace(client=None)  # what kombu leaves after close()
    return channel


def test_stock_kombu_raises_attribute_error_on_a_closed_channel():
    with pytest.raises(AttributeError, match="hostname"):
        _closed(kombu_redis.Channel)._connparams()


def test_our_channel_raises_a_connection_error_instead():
    with pytest.raises(RedisConnectionError, match="closed"):
        _closed(redisbroker.Channel)._connparams()
    assert issubclass(redisbroker.Transport.Channel, redisbroker.Channel)
    assert RedisConnectionError in redisbroker.Transport.connection_errors  # kombu's recovery path


def test_the_app_uses_it_for_redis_brokers():
    app = make_celery(Settings(BROKER_URL="redis://127.0.0.1:6379/0", VISIONGATE_SECRET_KEY="k" * 40))
    assert app.conf.broker_transport == "workers.redisbroker:Transport"
    assert app.connection_for_write().transport_cls == "workers.redisbroker:Transport"
