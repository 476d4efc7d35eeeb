"""Test helpers that run real HTTP servers in background threads.

* ``running_simulator`` – the Bria v2 simulator under uvicorn on a free port, so the Bria
  adapter's sync ``httpx.Client`` talks to it over real sockets (an ASGI transport would need
  an async client).
* ``CannedServer`` – a tiny stdlib server answering fixed responses per path and recording the
  request headers it saw, for the cases the simulator cannot stage (inline results, redirects,
  checking which host received the ``api_token``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import uvicorn

from providers.bria.simulator.app import create_app


@contextmanager
def running_simulator(latency_seconds: float = 0.2, api_token: str | None = None) -> Iterator[str]:
    """Run the simulator until the block exits; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(latency_seconds=latency_seconds, api_token=api_token),
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("simulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class Canned:
    status: int = 200
    body: bytes | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    # False: no Content-Length, the body ends when the connection closes (HTTP/1.0 style), so a
    # client cannot know the size up front.
    send_length: bool = True


class CannedServer:
    """Serves ``routes[path]`` for any method and records ``(method, path, headers)``."""

    def __init__(self, routes: dict[str, Canned]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                canned = outer.routes.get(self.path, Canned(404, {"message": "no such route"}))
                body = canned.body
                headers = dict(canned.headers)
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                    headers.setdefault("Content-Type", "application/json")
                self.send_response(canned.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if canned.send_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "CannedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
