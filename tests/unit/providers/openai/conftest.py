"""The OpenAI simulator under uvicorn on a free 127.0.0.1 port, in a background thread, shared by
the tests of this folder (state is reset before each test: no faults, no latency)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import httpx
import pytest
import uvicorn

from providers.openai.adapter import OpenAIProvider
from providers.openai.settings import OpenAISettings
from providers.openai.simulator import create_app


@dataclass
class Sim:
    url: str  # the server's root; the API is under f"{url}/v1"

    @property
    def api(self) -> str:
        return f"{self.url}/v1"

    def control(self, method: str, path: str, json: Any = None) -> Any:
        response = httpx.request(method, f"{self.url}/_sim/{path}", json=json, timeout=10)
        response.raise_for_status()
        return response.json()

    def faults(self, *rules: dict[str, Any]) -> None:
        self.control("POST", "faults", list(rules))

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "stats")

    def settings(self, **overrides: Any) -> OpenAISettings:
        values = {"base_url": self.api, "api_key": "sk-test", "organization": None, "project": None,
                  "timeout_seconds": 30.0, **overrides}
        return OpenAISettings(**values)

    def provider(self, **overrides: Any) -> OpenAIProvider:
        return OpenAIProvider(self.settings(**overrides))


@pytest.fixture(scope="session")
def _server() -> Iterator[Sim]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(latency_seconds=0.0), log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=1, backlog=2048)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("OpenAI simulator did not start")
        time.sleep(0.01)
    try:
        yield Sim(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def sim(_server: Sim) -> Sim:
    _server.control("POST", "reset")
    return _server


