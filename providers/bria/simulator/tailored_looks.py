"""The simulator's tailored generation, its looks: captions that describe an uploaded image
(size, orientation, dominant and secondary colours by name, brightness; measured with Pillow), a
dataset's palette, and images drawn with a trained model's palette, seeded by prompt and seed."""

from __future__ import annotations

import hashlib
import io
import random
import textwrap

from PIL import Image, ImageDraw, ImageOps

from providers.simulator.render import size_for

PALETTE_COLOURS = 4

# Named colours for captions (CSS names, a small set).
COLOUR_NAMES = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "light grey": (211, 211, 211),
    "dark grey": (64, 64, 64), "red": (220, 30, 30), "dark red": (139, 0, 0), "pink": (255, 160, 190),
    "orange": (255, 140, 0), "brown": (130, 80, 40), "yellow": (245, 220, 40), "olive": (128, 128, 0),
    "green": (40, 170, 60), "dark green": (0, 100, 0), "teal": (0, 128, 128), "cyan": (0, 220, 230),
    "light blue": (150, 200, 250), "blue": (30, 70, 220), "navy": (0, 0, 128), "purple": (128, 40, 160),
    "magenta": (230, 40, 200), "beige": (235, 225, 200),
}


# --------------------------------------------------------------------------- image analysis
def colour_name(rgb: tuple[int, int, int]) -> str:
    return min(COLOUR_NAMES, key=lambda n: sum((a - b) ** 2 for a, b in zip(COLOUR_NAMES[n], rgb)))


def palette_of(img: Image.Image, colours: int = PALETTE_COLOURS) -> list[tuple[tuple[int, int, int], float]]:
    """The image's dominant colours with their share of the pixels, largest first."""
    small = img.convert("RGB").resize((64, 64), Image.Resampling.BOX)
    poster = small.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    flat = poster.getpalette() or []
    counts = sorted(poster.getcolors() or [], reverse=True)
    total = sum(c for c, _ in counts) or 1
    return [((flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]), c / total) for c, i in counts]


def caption_for(img: Image.Image, prefix: str | None = None, size: tuple[int, int] | None = None) -> str:
    """A caption made from what the image shows: size (``size``: the original's, when ``img`` is
    a reduced copy), orientation, colours, brightness."""
    w, h = size or img.size
    orientation = "square" if abs(w - h) <= 0.05 * max(w, h) else ("landscape" if w > h else "portrait")
    palette = palette_of(img)
    (main, share), rest = palette[0], palette[1:]
    brightness = sum(ImageOps.grayscale(img.convert("RGB")).resize((32, 32)).getdata()) / (32 * 32 * 255)
    tone = "bright" if brightness > 0.66 else ("dark" if brightness < 0.33 else "mid-toned")
    text = (f"a {tone} {orientation} {w}x{h} image dominated by {colour_name(main)} "
            f"(#{main[0]:02x}{main[1]:02x}{main[2]:02x}, {share:.0%})")
    if rest:
        others = ", ".join(f"{colour_name(c)} (#{c[0]:02x}{c[1]:02x}{c[2]:02x})" for c, _ in rest[:2])
        text += f" with {others}"
    return f"{prefix.strip().rstrip(',')}, {text}" if prefix and prefix.strip() else text


# --------------------------------------------------------------------------- rendering with a model
def render_tailored(palette: list[tuple[int, int, int]], model_key: str, prompt: str, seed: int,
                    aspect_ratio: str = "1:1") -> bytes:
    """A PNG drawn only with the model's palette: a background in one of its colours and shapes
    in the others, chosen and placed by a RNG seeded with model, prompt and seed."""
    size = size_for(aspect_ratio, "1MP")
    digest = hashlib.sha256(f"{model_key}\x00{prompt}\x00{seed}\x00{aspect_ratio}".encode()).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    colours = palette or [(128, 128, 128)]
    image = Image.new("RGB", size, rng.choice(colours[:2]))
    draw = ImageDraw.Draw(image)
    w, h = size
    for _ in range(rng.randint(8, 16)):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.25) * min(w, h)
        fill = rng.choice(colours)
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        else:
            draw.rectangle((cx - r, cy - r / 2, cx + r, cy + r / 2), fill=fill)
    text = textwrap.shorten(prompt, width=80)
    draw.text((w * 0.03, h * 0.92), f"{text} (seed {seed})", fill=colours[-1])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()
