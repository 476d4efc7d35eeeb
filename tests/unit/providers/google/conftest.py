"""The Google simulator under uvicorn on a free port (one per module), reset before each test."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest
import uvicorn

from providers.google.settings import GoogleSettings
from providers.google.simulator import create_app
from tests.unit.providers.google.helpers import SIM_TOKEN, control


@pytest.fixture(scope="module")
def sim_server() -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(latency_seconds=0.0, access_token=SIM_TOKEN),
                                           log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Google simulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def sim(sim_server: str) -> str:
    """The simulator's base URL, with no faults pending and its default latency (0)."""
    control().post(f"{sim_server}/_sim/reset").raise_for_status()
    return sim_server


@pytest.fixture
def settings(sim: str) -> GoogleSettings:
    return GoogleSettings(vertex_base_url=sim, access_token=SIM_TOKEN, project="test-project",
                          location="europe-west4", gemini_text_model="gemini-2.5-flash", timeout_seconds=5)
