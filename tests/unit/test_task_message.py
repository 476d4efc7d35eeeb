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
