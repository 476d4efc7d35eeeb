"""What the Google simulator "sees" in inline media: real facts computed from the bytes.

Images: size, orientation, dominant colours by name, brightness. The size is read from the
header first; anything over ``MAX_PIXELS`` is refused before it is decoded. Videos (PyAV):
size, duration, frame count, frame rate, codec, and the colours of a few frames sampled across
the clip, plus whether the picture changes over time.
"""

from __future__ import annotations

import colorsys
import io
import warnings
from collections import Counter
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 25_000_000  # per image or video frame
THUMBNAIL = (96, 96)
SAMPLED_FRAMES = 4
MAX_DECODED_FRAMES = 3600  # beyond this the frame count is estimated from duration × rate
MIN_COLOUR_SHARE = 0.1


class MediaRefused(Exception):
    """The media cannot be processed: the simulator answers 400 INVALID_ARGUMENT."""


@dataclass
class Facts:
    kind: str  # "image" or "video"
    width: int
    height: int
    colours: list[tuple[str, float]]  # (name, share of the pixels), most common first
    brightness: float  # mean luma 0..1
    format: str = ""
    duration: float | None = None
    frames: int | None = None
    fps: float | None = None
    changes: bool | None = None  # video: do the sampled frames differ noticeably?
    extra: dict = field(default_factory=dict)

    @property
    def orientation(self) -> str:
        if self.width == self.height:
            return "square"
        return "landscape" if self.width > self.height else "portrait"

    @property
    def tone(self) -> str:
        return "bright" if self.brightness >= 0.6 else "dark" if self.brightness < 0.25 else "balanced"

    def words(self) -> list[str]:
        """Tag-like words for this medium, most telling first."""
        out = [name for name, _ in self.colours] + [self.orientation, self.kind]
        out.append(self.tone)
        if self.kind == "video":
            out.append("motion" if self.changes else "static")
        return out

    def colour_phrase(self) -> str:
        names = [name for name, _ in self.colours]
        if not names:
            return "transparent"
        if len(names) == 1:
            return f"mostly {names[0]}"
        return f"mostly {names[0]} with {' and '.join(names[1:])}"


# --------------------------------------------------------------------------- colours
def colour_name(r: int, g: int, b: int) -> str:
    h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
    if v < 0.2:
        return "black"
    if s < 0.18:
        return "white" if v > 0.85 else "gray"
    hue = h * 360
    if hue < 15 or hue >= 345:
        return "red" if v > 0.35 else "brown"
    if hue < 40:
        return "orange" if v > 0.6 else "brown"
    if hue < 70:
        return "yellow" if v > 0.5 else "olive"
    if hue < 165:
        return "green"
    if hue < 200:
        return "cyan"
    if hue < 255:
        return "blue"
    if hue < 290:
        return "purple"
    return "pink"


def palette(images: list[Image.Image]) -> tuple[list[tuple[str, float]], float]:
    """Dominant colour names (share ≥ 10 %, at most 3) and mean luma over ``images``."""
    counts: Counter[str] = Counter()
    total, value_sum = 0, 0.0
    for img in images:
        for r, g, b, a in img.getdata():
            if a < 128:  # transparent pixels show no colour
                continue
            counts[colour_name(r, g, b)] += 1
            value_sum += (0.299 * r + 0.587 * g + 0.114 * b) / 255  # luma
            total += 1
    if not total:
        return [], 0.0
    colours = [(name, round(n / total, 3)) for name, n in counts.most_common() if n / total >= MIN_COLOUR_SHARE][:3]
    return colours, value_sum / total


def _thumbnail(img: Image.Image) -> Image.Image:
    small = img.convert("RGBA")
    small.thumbnail(THUMBNAIL)
    return small


def _check_size(what: str, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise MediaRefused(f"The {what} has no pixels.")
    if width * height > MAX_PIXELS:
        raise MediaRefused(f"The {what} is {width}x{height} ({width * height / 1e6:.1f} MP); "
                           f"at most {MAX_PIXELS / 1e6:g} MP are supported.")


# --------------------------------------------------------------------------- images
def describe_image(data: bytes) -> Facts:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        width, height = img.size
    except Image.DecompressionBombError as exc:
        raise MediaRefused(f"The image is too large: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MediaRefused("Unable to process input image: the data is not a supported image.") from exc
    _check_size("image", width, height)
    try:
        img.draft("RGB", (THUMBNAIL[0] * 2, THUMBNAIL[1] * 2))  # JPEG: decode at reduced scale
        colours, brightness = palette([_thumbnail(img)])
    except (OSError, ValueError) as exc:
        raise MediaRefused("Unable to process input image: the image data is truncated or corrupt.") from exc
    return Facts("image", width, height, colours, brightness, format=img.format or "")


# --------------------------------------------------------------------------- videos
def describe_video(data: bytes) -> Facts:
    import av

    try:
        container = av.open(io.BytesIO(data))
    except (av.error.FFmpegError, ValueError) as exc:
        raise MediaRefused("Unable to process input video: the data is not a supported video.") from exc
    with container:
        if not container.streams.video:
            raise MediaRefused("Unable to process input video: it has no video stream.")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_size("video frame", width, height)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = None
        targets = ([duration * (i + 0.5) / SAMPLED_FRAMES for i in range(SAMPLED_FRAMES)] if duration
                   else [0.0])
        sampled: list[Image.Image] = []
        decoded, last_time = 0, 0.0
        try:
            for frame in container.decode(stream):
                decoded += 1
                last_time = frame.time if frame.time is not None else last_time
                if len(sampled) < len(targets) and last_time + 1e-6 >= targets[len(sampled)]:
                    sampled.append(_thumbnail(frame.to_image()))
                if decoded >= MAX_DECODED_FRAMES:
                    break
        except av.error.FFmpegError as exc:
            if not decoded:
                raise MediaRefused("Unable to process input video: its frames do not decode.") from exc
        if not decoded:
            raise MediaRefused("Unable to process input video: it has no frames.")
        if decoded < MAX_DECODED_FRAMES:
            frames = decoded
        else:
            frames = stream.frames or (round(duration * fps) if duration and fps else decoded)
        if duration is None and fps:
            duration = frames / fps
        codec = stream.codec_context.name
        fmt = container.format.name.split(",")[0]
    colours, brightness = palette(sampled)
    return Facts("video", width, height, colours, brightness, format=fmt, duration=duration, frames=frames,
                 fps=fps, changes=_changes(sampled), extra={"codec": codec})


def _changes(frames: list[Image.Image]) -> bool:
    """Whether the first and last sampled frames differ noticeably (mean channel difference)."""
    if len(frames) < 2:
        return False
    first, last = frames[0].convert("RGB"), frames[-1].convert("RGB").resize(frames[0].size)
    diffs = [abs(a - b) for p, q in zip(first.getdata(), last.getdata()) for a, b in zip(p, q)]
    return sum(diffs) / max(1, len(diffs)) > 4.0
