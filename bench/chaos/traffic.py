"""The clients of a fault run: jobs submitted at a steady pace, status reads, and a webhook receiver.

``Traffic`` runs an asyncio loop (httpx) in a background thread, so the run's main thread is free
to break things meanwhile. Every request is recorded as ``(sent, answered, outcome)`` on the
monotonic clock, the outcome being the HTTP status as text (``"503+RA"`` for a 503 that carries
Retry-After) or what went wrong on the connection: ``refused`` (nothing listening), ``closed``
(the server closed or reset the connection without an answer), ``timeout`` (no answer within
the client's timeout), ``error`` (anything else).

Every job sends a prompt of its own, ``"<tag> #<n>#"``: the simulator counts upstream
submissions per prompt, so a prompt seen twice is a job submitted twice (``#`` ends the number, so
a fault rule can ``match`` exactly one job).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from bench.common import GEN_PATH

Record = tuple[float, float, str]


def outcome_of(exc: BaseException) -> str:
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "refused"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "closed"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "error"


def answer_of(response: httpx.Response) -> str:
    if response.status_code == 503 and response.headers.get("retry-after"):
        return "503+RA"
    return str(response.status_code)


def prompt(tag: str, n: int) -> str:
    return f"{tag} #{n}#"


class Traffic:
    def __init__(self, api_url: str, api_key: str, tag: str, *, timeout: float = 10.0,
                 concurrency: int = 32, read_rate: float = 10.0, webhook_base: str | None = None):
        self.api_url, self.tag, self.timeout = api_url, tag, timeout
        self.headers = {"X-API-Key": api_key}
        self.concurrency, self.read_rate, self.webhook_base = concurrency, read_rate, webhook_base
        self.submits: list[tuple[float, float, str, int]] = []  # (sent, answered, outcome, n)
        self.reads: list[Record] = []
        self.accepted: dict[int, str] = {}  # n -> job id
        self.status_urls: list[str] = []
        self.errors: list[str] = []  # a few samples of unexpected answers
        self.failures: list[str] = []  # a few samples of requests that got no answer at all
        self.next_n = 0
        self._stop = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"traffic-{tag}", daemon=True)
        self.thread.start()
        self.client = self._call(self._make_client())
        self._reader = asyncio.run_coroutine_threadsafe(self._read_loop(), self.loop)
        self._submitters: list[Any] = []

    # ------------------------------------------------------------------ control (main thread)
    def _call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _make_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, headers=self.headers, limits=httpx.Limits(
            max_connections=self.concurrency + 8, max_keepalive_connections=self.concurrency + 8))

    def submit(self, n: int, rate: float) -> Any:
        """Start submitting ``n`` more jobs at ``rate`` per second in the background (beside any
        submissions still running); returns their future."""
        future = asyncio.run_coroutine_threadsafe(self._submit_loop(n, rate), self.loop)
        self._submitters.append(future)
        return future

    def wait_submitted(self, timeout: float, future: Any = None) -> bool:
        """Until every submission (or those of ``future``) is answered or failed; False on timeout."""
        deadline = time.monotonic() + timeout
        for fut in [future] if future is not None else list(self._submitters):
            try:
                fut.result(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
        return True

    @property
    def done_submitting(self) -> bool:
        return all(fut.done() for fut in self._submitters)

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self._stop = True
        for fut in [*self._submitters, self._reader]:
            try:
                fut.result(self.timeout + 5)
            except Exception:  # noqa: BLE001 - stopping: whatever it was, it is over
                fut.cancel()
        try:
            self._call(self.client.aclose(), 10)
        except Exception:  # noqa: BLE001
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # ------------------------------------------------------------------ the loop's side
    async def _submit_loop(self, n: int, rate: float) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        tasks = []
        start = time.monotonic()
        for k in range(n):
            if self._stop:
                break
            slot = start + k / rate
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()  # at most `concurrency` requests open: a hanging API slows the pace
            number = self.next_n
            self.next_n += 1
            tasks.append(asyncio.ensure_future(self._one_submit(number, sem)))
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one_submit(self, number: int, sem: asyncio.Semaphore) -> None:
        body: dict[str, Any] = {"prompt": prompt(self.tag, number), "sync": False}
        if self.webhook_base:
            body["webhook_url"] = f"{self.webhook_base}/hook/{number}"
        sent = time.monotonic()
        try:
            response = await self.client.post(self.api_url + GEN_PATH, json=body)
            outcome = answer_of(response)
        except Exception as exc:  # noqa: BLE001 - every failure is an outcome
            outcome = outcome_of(exc)
            self._failure("submit", sent, exc)
        else:
            if response.status_code == 202:
                try:
                    doc = response.json()
                    doc = doc.get("result", doc)  # the API's envelope
                    self.accepted[number] = doc["request_id"]
                    self.status_urls.append(doc["status_url"])
                except (ValueError, KeyError, AttributeError) as exc:
                    self._sample(f"202 without a job: {exc}: {response.text[:200]}")
            else:
                self._sample(f"{response.status_code} {response.text[:200]}")
        finally:
            sem.release()
        self.submits.append((sent, time.monotonic(), outcome, number))

    def _failure(self, what: str, sent: float, exc: BaseException) -> None:
        if len(self.failures) < 8:
            self.failures.append(f"{what} sent at {sent:.2f} (monotonic), after {time.monotonic() - sent:.2f} s: "
                                 f"{outcome_of(exc)}: {type(exc).__name__}: {exc!r}")

    def _sample(self, text: str) -> None:
        if len(self.errors) < 8:
            self.errors.append(text)

    async def _read_loop(self) -> None:
        """Status reads of random accepted jobs at ``read_rate`` per second (at most 4 open)."""
        sem = asyncio.Semaphore(4)
        pending: set[asyncio.Future] = set()
        while not self._stop:
            await asyncio.sleep(1.0 / self.read_rate)
            if not self.status_urls:
                continue
            await sem.acquire()
            task = asyncio.ensure_future(self._one_read(random.choice(self.status_urls), sem))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _one_read(self, url: str, sem: asyncio.Semaphore) -> None:
        sent = time.monotonic()
        try:
            outcome = answer_of(await self.client.get(url))
        except Exception as exc:  # noqa: BLE001
            outcome = outcome_of(exc)
            self._failure("read", sent, exc)
        finally:
            sem.release()
        self.reads.append((sent, time.monotonic(), outcome))


class Receiver:
    """A webhook receiver on a fixed loopback port that can be taken down (the port then refuses
    connections) and brought back. Records ``(time, job number, webhook-id)`` per delivery."""

    def __init__(self, port: int):
        self.port = port
        self.received: list[tuple[float, int, str]] = []
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    number = int(self.path.rstrip("/").rsplit("/", 1)[-1])
                except ValueError:
                    number = -1
                try:
                    json.loads(body or b"{}")
                except ValueError:
                    number = -2
                received.append((time.monotonic(), number, self.headers.get("webhook-id") or ""))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_a: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None
