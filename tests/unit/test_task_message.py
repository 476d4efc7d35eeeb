"""The API's directly built start messages are the ones Celery's own producer would send."""

import base64
import json

from workers.app import celery_app, encode_task_message


def test_headers_and_body_follow_celery_protocol_2():
    msg = json.loads(encode_task_message("visiongate.start", ["job1"], "bria"))
    ref = celery_app.amqp.as_task_v2("tid", "visiongate.start", args=["job1"], kwargs={})
    assert set(msg["headers"]) == set(ref.headers)
    assert msg["headers"]["task"] == "visiongate.start" and msg["headers"]["root_id"] == msg["headers"]["id"]
    body = json.loads(base64.b64decode(msg["body"]))
    assert body == json.loads(json.dumps(list(ref.body)))
    assert msg["content-type"] == "application/json" and msg["content-encoding"] == "utf-8"


def test_envelope_is_kombus_redis_envelope():
    msg = json.loads(encode_task_message("visiongate.start", ["job1"], "bria"))
    props = msg["properties"]
    assert props["delivery_info"] == {"exchange": "", "routing_key": "bria"}
    assert props["body_encoding"] == "base64" and props["delivery_mode"] == 2 and props["priority"] == 0
    assert props["correlation_id"] == msg["headers"]["id"]
    other = json.loads(encode_task_message("visiongate.start", ["job1"], "bria"))
    assert other["properties"]["delivery_tag"] != props["delivery_tag"]  # unique per message


def test_countdown_becomes_celerys_eta_header():
    import datetime as dt

    msg = json.loads(encode_task_message("visiongate.poll", [["a", "b"]], "bria.poll", countdown=2))
    eta = dt.datetime.fromisoformat(msg["headers"]["eta"])
    assert 1.5 < (eta - dt.datetime.now(dt.timezone.utc)).total_seconds() <= 2
    assert json.loads(base64.b64decode(msg["body"]))[0] == [["a", "b"]]
    assert json.loads(encode_task_message("t", [1], "q"))["headers"]["eta"] is None


def test_broker_probe_notices_an_emptied_broker_and_empty_queues(monkeypatch):
    import fakeredis

    from workers import app

    server = fakeredis.FakeRedis()
    monkeypatch.setattr(app, "_redis_for_publishing", lambda: server)
    probe = app.BrokerProbe()
    assert probe.lost_everything()  # no marker yet (first sweep, or the broker lost it)
    assert not probe.lost_everything()
    server.lpush("bria", b"m")
    assert probe.empty_queues(["bria", "openai"]) == {"openai"}
    server.flushall()  # restarted empty
    assert probe.lost_everything()
