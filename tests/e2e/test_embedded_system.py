"""The whole system started the way the README starts it (``make run``, embedded default: no
Postgres, no Redis), then driven over HTTP as a new user would."""

import io
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.integration.system import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
KEY = "vg_e2e-fixed-development-key"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    data = tmp_path_factory.mktemp("embedded")
    port, sim_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VISIONGATE_", "BRIA_", "SIM_")) and k not in ("DATABASE_URL", "BROKER_URL", "REDIS_URL")}
    env.update(VISIONGATE_DATA_DIR=str(data), VISIONGATE_DEV_API_KEY=KEY, VISIONGATE_PORT=str(port),
               VISIONGATE_SIMULATOR_PORT=str(sim_port), SIM_LATENCY_SECONDS="1.5")
    out = open(data / "run.out", "w+")
    proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while "visiongate is running" not in (data / "run.out").read_text():
        assert proc.poll() is None and time.time() < deadline, (data / "run.out").read_text()
        time.sleep(0.2)
    yield url, (data / "run.out").read_text(), data
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def test_embedded_mode_serves_a_job_end_to_end(embedded):
    url, banner, data = embedded
    assert url in banner and KEY in banner
    assert (data / "visiongate.db").exists()  # SQLite, no server
    http = httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=90)
    gen = "/api/v1/bria/image/generation/generate-image"

    # Step 3: submit asynchronously.
    resp = http.post(gen, json={"prompt": "a red bicycle", "aspect_ratio": "16:9", "sync": False, "seed": 42})
    assert resp.status_code == 202, resp.text
    result = resp.json()["result"]
    assert result["status"] == "IN_PROGRESS" and result["status_url"].startswith("http")

    # Step 4: poll until COMPLETED.
    seen = []
    for _ in range(200):
        doc = http.get(result["status_url"]).json()
        seen.append(doc["status"])
        if doc["status"] != "IN_PROGRESS":
            break
        time.sleep(0.1)
    assert seen[0] == "IN_PROGRESS" and doc["status"] == "COMPLETED", doc
    assert doc["request_id"] == result["request_id"] and doc["result"]["seed"] == 42
    assert len(doc["result"]["urls"]) == 1 and doc["result"]["expires_at"]

    # Step 5: a real 16:9 image of about one megapixel; same seed and prompt, same bytes.
    png = httpx.get(doc["result"]["image_url"]).content
    img = Image.open(io.BytesIO(png))
    assert abs(img.width / img.height / (16 / 9) - 1) < 0.02 and 0.85e6 < img.width * img.height < 1.25e6

    # Step 6: sync=true (the default) waits and answers 200 with the result.
    sync = http.post(gen, json={"prompt": "a red bicycle", "aspect_ratio": "16:9", "seed": 42})
    assert sync.status_code == 200, sync.text
    assert sync.json()["result"]["status"] == "COMPLETED"
    assert httpx.get(sync.json()["result"]["image_url"]).content == png

    # Step 7 in brief: bad input is a 422, no key a 401.
    assert http.post(gen, json={"prompt": "abc"}).status_code == 422
    assert httpx.post(url + gen, json={"prompt": "a valid prompt"}).status_code == 401
