"""Small real media for the Google simulator to look at, and fault-injection shorthand."""

from __future__ import annotations

import io
import struct
import zlib

import httpx
from PIL import Image

SIM_TOKEN = "sim-secret-token"


_control: httpx.Client | None = None


def control() -> httpx.Client:
    """One client for the simulator's control API (making an httpx client costs ~0.1 s)."""
    global _control
    if _control is None:
        _control = httpx.Client(timeout=10)
    return _control


def add_faults(base_url: str, *rules: dict) -> None:
    control().post(f"{base_url}/_sim/faults", json=list(rules)).raise_for_status()


def png(size: tuple[int, int], colour: tuple[int, int, int], accent: tuple[int, int, int] | None = None) -> bytes:
    """A PNG of one colour; with ``accent``, its right third in that colour."""
    img = Image.new("RGB", size, colour)
    if accent is not None:
        img.paste(accent, (size[0] * 2 // 3, 0, size[0], size[1]))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def video(frames: int = 24, size: tuple[int, int] = (64, 96), rate: int = 12, fmt: str = "mp4",
          codec: str = "libx264") -> bytes:
    """A clip of a green square moving down over a blue background."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            img = Image.new("RGB", size, (30, 60, 210))
            top = (size[1] - 20) * i // max(1, frames - 1)
            img.paste((40, 200, 60), (size[0] // 4, top, size[0] * 3 // 4, top + 20))
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds no pixel data (a bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
