"""Small image helpers for the OpenAI provider tests."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from PIL import Image


def image_bytes(size: tuple[int, int] = (64, 48), colour: Any = (200, 30, 30), mode: str = "RGB",
                fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def half_mask(size: tuple[int, int], mode: str = "L") -> bytes:
    """A mask whose left half marks the area to edit: white in an L/RGB mask, alpha 0 in RGBA."""
    width, height = size
    if mode == "RGBA":
        img = Image.new("RGBA", size, (0, 0, 0, 255))
        img.paste((0, 0, 0, 0), (0, 0, width // 2, height))
    else:
        img = Image.new(mode, size, 0 if mode == "L" else (0, 0, 0))
        img.paste(255 if mode == "L" else (255, 255, 255), (0, 0, width // 2, height))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def run(coro: Any) -> Any:
    return asyncio.run(coro)
