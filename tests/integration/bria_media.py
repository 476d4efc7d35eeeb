"""What the Bria endpoint tests share: input images made with Pillow (sent as base64, or served
by ``Files``, a local HTTP server on 127.0.0.2: the only address the system's outbound allow-list
admits; 127.0.0.1 stays refused), and submitting a job and reading its outputs."""

from __future__ import annotations

import base64
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from PIL import Image, ImageDraw

from tests.integration.conftest import Client

B = "/api/v1/bria"
SERVE_HOST = "127.0.0.2"


# =========================================================================== input media
def subject(size: tuple[int, int] = (320, 240), alpha: bool = False, two: bool = False) -> Image.Image:
    """A dark red disc (and, with ``two``, a blue square) on a light background, or on
    transparency with ``alpha``."""
    w, h = size
    img = Image.new("RGBA" if alpha else "RGB", size, (0, 0, 0, 0) if alpha else (236, 236, 230))
    draw = ImageDraw.Draw(img)
    if two:
        draw.ellipse((w * 0.08, h * 0.25, w * 0.38, h * 0.65), fill=(170, 20, 30, 255))
        draw.rectangle((w * 0.6, h * 0.3, w * 0.9, h * 0.75), fill=(20, 40, 170, 255))
    else:
        draw.ellipse((w * 0.3, h * 0.25, w * 0.7, h * 0.75), fill=(170, 20, 30, 255))
    return img


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def b64(img: Image.Image, fmt: str = "PNG", prefix: bool = False) -> str:
    data = base64.b64encode(encode(img, fmt)).decode()
    return f"data:image/{fmt.lower()};base64,{data}" if prefix else data


def mask_for(size: tuple[int, int]) -> Image.Image:
    w, h = size
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse((w * 0.28, h * 0.22, w * 0.72, h * 0.78), fill=255)
    return mask


class Files:
    """A tiny HTTP server for input media: ``put(name, bytes, type)`` → URL."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                entry = files.get(self.path)
                if entry is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", entry[1])
                self.send_header("Content-Length", str(len(entry[0])))
                self.end_headers()
                self.wfile.write(entry[0])

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((SERVE_HOST, 0), Handler)
        self.base = f"http://{SERVE_HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def put(self, name: str, data: bytes, content_type: str = "image/png") -> str:
        self.files[f"/{name}"] = (data, content_type)
        return f"{self.base}/{name}"

    def image(self, name: str, img: Image.Image, fmt: str = "PNG") -> str:
        return self.put(name, encode(img, fmt), f"image/{fmt.lower()}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# =========================================================================== helpers
def submit(c: Client, path: str, body: dict[str, Any]) -> httpx.Response:
    return c.http.post(B + path, json=body)


def run(c: Client, path: str, body: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Submit asynchronously and wait: the COMPLETED (or ERROR) status document."""
    if "sync" in body or path.split("/")[-1] in SYNC_DEFAULT_TRUE:
        body = {**body, "sync": False}
    resp = submit(c, path, body)
    assert resp.status_code == 202, resp.text
    return c.wait(resp.json()["result"]["request_id"], timeout=timeout)


SYNC_DEFAULT_TRUE = {"generate-image", "generate-image-fast", "generate-image-hd", "generate-vector-base",
                     "generate-vector-fast", "generate-variation", "generate-product-background-by-text",
                     "generate-product-background-by-image"}


def completed(doc: dict[str, Any]) -> list[bytes]:
    assert doc["status"] == "COMPLETED", doc
    urls = doc["result"]["urls"]
    assert urls and doc["result"].get("image_url", doc["result"].get("video_url")) == urls[0]
    out = []
    for url in urls:
        got = httpx.get(url, timeout=30)
        assert got.status_code == 200, got.text
        out.append(got.content)
    return out


def png_of(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def assert_422(resp: httpx.Response, field: str, error_type: str | None = None) -> dict[str, Any]:
    assert resp.status_code == 422, resp.text
    details = resp.json()["detail"]
    hit = [d for d in details if d["loc"][:2] == ["body", field] or (len(d["loc"]) == 1 and field in d["msg"])]
    assert hit, details
    if error_type is not None:
        assert any(d["type"] == error_type for d in hit), details
    return hit[0]


def near(a: tuple[int, ...], b: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


