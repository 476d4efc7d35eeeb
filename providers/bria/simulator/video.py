"""Video background removal for the simulator: decode, cut out every frame, encode.

PyAV (``av``) ships its own FFmpeg build, so this needs no system codec. Every frame goes
through the same segmentation as the image endpoints (``edit.foreground_mask``); the subject is
composited over the requested colour, or kept with alpha when the background is "Transparent"
and the preset can carry it (Bria: webm_vp9, mkv_vp9, mov_proresks).
"""

from __future__ import annotations

import io
from fractions import Fraction

from PIL import Image

from providers.bria.simulator.edit import foreground_mask, parse_colour

# preset -> (container format, file extension, codec, pixel format with alpha, without alpha, MIME)
PRESETS: dict[str, tuple[str, str, str, str | None, str, str]] = {
    "webm_vp9": ("webm", "webm", "libvpx-vp9", "yuva420p", "yuv420p", "video/webm"),
    "mkv_vp9": ("matroska", "mkv", "libvpx-vp9", "yuva420p", "yuv420p", "video/x-matroska"),
    "mkv_h264": ("matroska", "mkv", "libx264", None, "yuv420p", "video/x-matroska"),
    "mkv_h265": ("matroska", "mkv", "libx265", None, "yuv420p", "video/x-matroska"),
    "mkv_raw": ("matroska", "mkv", "rawvideo", None, "yuv420p", "video/x-matroska"),
    "mp4_h264": ("mp4", "mp4", "libx264", None, "yuv420p", "video/mp4"),
    "mp4_h265": ("mp4", "mp4", "libx265", None, "yuv420p", "video/mp4"),
    "mov_h265": ("mov", "mov", "libx265", None, "yuv420p", "video/quicktime"),
    "mov_proresks": ("mov", "mov", "prores_ks", "yuva444p10le", "yuv422p10le", "video/quicktime"),
    "avi_h264": ("avi", "avi", "libx264", None, "yuv420p", "video/x-msvideo"),
    "gif": ("gif", "gif", "gif", None, "rgb8", "image/gif"),
}
MAX_FRAMES = 300  # the simulator is not a render farm


def remove_background(data: bytes, background_color: str = "Transparent", preset: str = "webm_vp9") -> tuple[bytes, str, str]:
    """Returns ``(bytes, mime type, extension)`` of the processed video."""
    import av

    fmt, ext, codec, alpha_fmt, plain_fmt, mime = PRESETS.get(preset, PRESETS["webm_vp9"])
    transparent = (background_color or "Transparent").lower() == "transparent"
    keep_alpha = transparent and alpha_fmt is not None
    colour = parse_colour("black" if transparent else background_color)
    out = io.BytesIO()
    with av.open(io.BytesIO(data), mode="r") as source, av.open(out, mode="w", format=fmt) as target:
        in_stream = source.streams.video[0]
        rate = in_stream.average_rate or in_stream.guessed_rate or Fraction(25, 1)
        rate = Fraction(rate).limit_denominator(1001)
        stream = None
        for index, frame in enumerate(source.decode(in_stream)):
            if index >= MAX_FRAMES:
                break
            img = frame.to_image()
            if stream is None:
                width, height = img.width - img.width % 2, img.height - img.height % 2
                stream = target.add_stream(codec, rate=rate)
                stream.width, stream.height = width, height
                stream.pix_fmt = alpha_fmt if keep_alpha else plain_fmt
                if codec == "libvpx-vp9" and keep_alpha:
                    stream.options = {"auto-alt-ref": "0"}
                elif codec == "libx265":
                    stream.options = {"x265-params": "log-level=error"}
            img = img.crop((0, 0, stream.width, stream.height))
            mask = foreground_mask(img, force=True)
            if keep_alpha:
                composed = img.convert("RGBA")
                composed.putalpha(mask)
            else:
                composed = Image.new("RGB", img.size, colour[:3])
                composed.paste(img.convert("RGB"), mask=mask)
            for packet in stream.encode(frame_of(composed)):
                target.mux(packet)
        if stream is None:
            raise ValueError("the video has no frames")
        for packet in stream.encode():
            target.mux(packet)
    return out.getvalue(), mime, ext


def frame_of(img: Image.Image):
    """A video frame holding ``img``'s pixels, alpha included (``rgba`` when the image has an
    alpha band, ``rgb24`` otherwise). ``av.VideoFrame.from_image`` always converts to RGB, so a
    cut-out built with it would be encoded fully opaque."""
    import av

    mode, fmt, depth = ("RGBA", "rgba", 4) if "A" in img.getbands() else ("RGB", "rgb24", 3)
    if img.mode != mode:
        img = img.convert(mode)
    frame = av.VideoFrame(img.width, img.height, fmt)
    plane = frame.planes[0]
    raw, row = img.tobytes(), img.width * depth
    if plane.line_size != row:  # rows are padded for alignment
        pad = bytes(plane.line_size - row)
        raw = b"".join(raw[y * row:(y + 1) * row] + pad for y in range(img.height))
    plane.update(raw)
    return frame


def image_of(frame) -> Image.Image:
    """The inverse of ``frame_of``: an RGBA image when the frame's format has alpha, else RGB."""
    if len(frame.format.components) not in (2, 4):  # no alpha component (yuva420p, rgba, ya8 have one)
        return frame.to_image()
    plane = frame.reformat(format="rgba").planes[0]
    raw, row = bytes(plane), plane.width * 4
    if plane.line_size != row:
        raw = b"".join(raw[y * plane.line_size:y * plane.line_size + row] for y in range(plane.height))
    return Image.frombytes("RGBA", (plane.width, plane.height), raw)


# decoders that read the alpha of VP8/VP9 (stored beside the picture in WebM/Matroska); FFmpeg's
# native vp8/vp9 decoders ignore it and return yuv420p
ALPHA_DECODERS = {"vp9": "libvpx-vp9", "vp8": "libvpx"}


def decode_frames(data: bytes) -> list[Image.Image]:
    """Every frame of a video as a PIL image, with its alpha when the video carries one (for
    tests and demos: checks what a player that honours alpha would show)."""
    import av

    images: list[Image.Image] = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        name = stream.codec_context.name
        if name in ALPHA_DECODERS and str(stream.metadata.get("alpha_mode", "0")) == "1":
            decoder = av.CodecContext.create(ALPHA_DECODERS[name], "r")
            for packet in container.demux(stream):
                for frame in decoder.decode(packet if packet.size else None):
                    images.append(image_of(frame))
        else:
            images = [image_of(frame) for frame in container.decode(stream)]
    return images


def make_test_video(frames: int = 12, size: tuple[int, int] = (96, 64), fmt: str = "mp4", codec: str = "libx264") -> bytes:
    """A small clip of a red disc moving over a light background (for tests and demos)."""
    import av
    from PIL import ImageDraw

    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=12)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            img = Image.new("RGB", size, (235, 235, 230))
            r = size[1] // 4
            cx = r + (size[0] - 2 * r) * i // max(1, frames - 1)
            ImageDraw.Draw(img).ellipse((cx - r, size[1] // 2 - r, cx + r, size[1] // 2 + r), fill=(200, 30, 30))
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()
