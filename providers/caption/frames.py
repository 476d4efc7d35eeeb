"""Frames sampled evenly from a video (already checked from its container metadata by the
gateway), each scaled to at most ``side`` pixels and encoded as JPEG, with its time."""

from __future__ import annotations

import io

import av
from PIL import Image


def sample_frames(data: bytes, count: int = 8, side: int = 768) -> list[tuple[float, bytes]]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else (
            container.duration / 1_000_000 if container.duration else 0.0)
        wanted = [duration * (i + 0.5) / count for i in range(count)] if duration > 0 else []
        frames: list[tuple[float, bytes]] = []
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
            if wanted and t + 1e-6 < wanted[0]:
                continue
            image: Image.Image = frame.to_image()
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=85)
            frames.append((round(t, 2), buffer.getvalue()))
            while wanted and wanted[0] <= t + 1e-6:
                wanted.pop(0)
            if len(frames) >= count or (duration > 0 and not wanted):
                break
        return frames
