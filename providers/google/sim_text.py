"""The Google simulator's "model": deterministic text and JSON from the request.

Everything derives from a seed computed from the request (contents, system instruction, model)
and the temperature, so the same request always gets the same answer, and at a temperature
above 0 a different temperature gives a different one. Media are described from real facts
(``sim_media.Facts``); JSON answers follow ``responseSchema`` (Vertex's OpenAPI subset, upper-case
types) or ``responseJsonSchema`` (JSON Schema), picking enum members that match what was seen.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

from providers.google.sim_media import Facts

IMAGE_TOKENS = 258  # Gemini bills an image as 258 tokens
VIDEO_TOKENS_PER_SECOND = 263
DEFAULT_ARRAY_ITEMS = 5
MAX_SUBJECT_WORDS = 30
FILLER_TAGS = ("scene", "composition", "light", "texture", "background", "detail", "colour", "mood")
TEXT_FIELDS = ("caption", "description", "text", "summary", "prompt", "answer", "result")

DETAILS = ("in crisp detail", "with soft natural light", "under dramatic lighting", "with a shallow depth of field",
           "in warm golden-hour tones", "with rich textures", "in a clean minimal composition",
           "with vivid colours", "from a low angle", "with gentle shadows")
STYLES = ("photorealistic", "cinematic", "editorial photography", "high-resolution studio shot",
          "fine-art style", "documentary style")
MOODS = ("calm", "lively", "elegant", "playful", "serene", "bold")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
STOPWORDS = frozenset("""a an the and or of in on at to for with by from this that these those is are be as it its
into over under your you our we they their them then than so such about describe image video prompt write give
please return json tags tag caption generate create make enhance improve rewrite adapt
suggest""".split())


def seed_for(body: dict[str, Any], model: str, temperature: float) -> int:
    """A seed from what determines the answer: the conversation, the instruction, the model and
    the temperature (only when above 0, so every temperature-0 request for the same input agrees)."""
    subject = {k: body.get(k) for k in ("contents", "systemInstruction")}
    subject["model"] = model
    if temperature > 0:
        subject["temperature"] = round(temperature, 4)
    digest = hashlib.sha256(json.dumps(subject, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def count_tokens(text: str) -> int:
    """Roughly one token per word or punctuation mark."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def media_tokens(facts: list[Facts]) -> int:
    return sum(IMAGE_TOKENS if f.kind == "image" else max(1, round((f.duration or 1) * VIDEO_TOKENS_PER_SECOND))
               for f in facts)


def keywords(texts: list[str]) -> list[str]:
    """The content words of the user's text, in order, without repeats."""
    seen: list[str] = []
    for text in texts:
        for word in WORD.findall(text.lower()):
            if word not in STOPWORDS and word not in seen:
                seen.append(word)
    return seen


# --------------------------------------------------------------------------- prose
def describe(f: Facts) -> str:
    if f.kind == "image":
        return (f"A {f.orientation} image of {f.width}x{f.height} pixels, {f.colour_phrase()}; "
                f"the overall tone is {f.tone}.")
    duration = f"{f.duration:.1f}-second" if f.duration is not None else "short"
    rate = f" at {f.fps:g} fps" if f.fps else ""
    motion = "the picture changes over time" if f.changes else "the picture stays mostly still"
    return (f"A {duration} {f.orientation} video of {f.width}x{f.height} pixels ({f.frames} frames{rate}), "
            f"{f.colour_phrase()}; {motion}.")


def compose_text(texts: list[str], facts: list[Facts], references: list[str], rng: random.Random) -> str:
    """The answer in prose: media descriptions first, else an elaboration of the request."""
    sentences = [describe(f) for f in facts]
    sentences += [f"A file at {uri} (not fetched by the simulator)." for uri in references]
    if sentences:
        if len(facts) == 1 and rng.random() < 0.5:
            sentences.append(f"It has a {rng.choice(MOODS)} feel.")
        return " ".join(sentences)
    subject = request_subject(texts)
    details = rng.sample(DETAILS, 2)
    return f"{subject[0].upper()}{subject[1:]}, {details[0]}, {details[1]}, {rng.choice(STYLES)}, {rng.choice(MOODS)} mood."


def request_subject(texts: list[str]) -> str:
    """What the request is about: the last text after its last colon ("Improve this prompt: a cat
    on a sofa" → "a cat on a sofa"), or its content words when that is long."""
    last = next((t for t in reversed(texts) if t.strip()), "")
    subject = last.rsplit(":", 1)[-1].strip().strip("\"'").rstrip(".!?").strip()
    if not subject or len(subject.split()) > MAX_SUBJECT_WORDS:
        subject = " ".join(keywords([subject or last])[:MAX_SUBJECT_WORDS])
    return subject or "an everyday scene"


# --------------------------------------------------------------------------- JSON
def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    if not kind:
        if "properties" in schema:
            return "object"
        if "items" in schema:
            return "array"
        return "string"
    return str(kind).lower()


class Answerer:
    """Builds a value that satisfies a schema from what the request contains."""

    def __init__(self, text: str, vocabulary: list[str], rng: random.Random) -> None:
        self.text = text
        self.vocabulary = vocabulary  # tag-like words, most telling first
        self.rng = rng

    def rank(self, options: list[Any]) -> tuple[list[Any], list[Any]]:
        """``(matching, rest)``: enum members that match the vocabulary (in its order), and the
        others shuffled."""
        def match(option: Any) -> int | None:
            tokens = set(WORD.findall(str(option).lower()))
            hits = [i for i, word in enumerate(self.vocabulary) if word in tokens]
            return min(hits) if hits else None

        matched = sorted((o for o in options if match(o) is not None), key=lambda o: match(o))
        rest = [o for o in options if match(o) is None]
        self.rng.shuffle(rest)
        return matched, rest

    def value(self, schema: dict[str, Any], name: str = "") -> Any:
        if not isinstance(schema, dict):
            return self.text
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self.value(schema[key][0], name)
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            matched, rest = self.rank(list(schema["enum"]))
            return (matched + rest)[0]
        kind = _type(schema)
        if kind == "object":
            props = schema.get("properties") or {}
            order = [k for k in schema.get("propertyOrdering") or [] if k in props]
            order += [k for k in props if k not in order]
            return {key: self.value(props[key], key) for key in order}
        if kind == "array":
            return self.array(schema, name)
        if kind in ("integer", "number"):
            low = schema.get("minimum", 0)
            high = schema.get("maximum", max(low, 10))
            number = self.rng.uniform(float(low), float(high))
            return int(round(number)) if kind == "integer" else round(number, 3)
        if kind == "boolean":
            return self.rng.random() < 0.5
        return self.string(schema, name)

    def string(self, schema: dict[str, Any], name: str) -> str:
        lowered = name.lower()
        if "tag" in lowered or "label" in lowered or "keyword" in lowered:
            return self.vocabulary[0] if self.vocabulary else "image"
        text = self.text
        if isinstance(schema.get("maxLength"), int):
            text = text[: schema["maxLength"]]
        return text

    def array(self, schema: dict[str, Any], name: str) -> list[Any]:
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {"type": "string"}
        low = int(schema.get("minItems") or 0)
        high = schema.get("maxItems")
        count = int(high) if high is not None else max(low, DEFAULT_ARRAY_ITEMS)
        if isinstance(items.get("enum"), list) and items["enum"]:
            # the members that fit what was seen, up to ``count``; others only to reach minItems
            matched, rest = self.rank(list(items["enum"]))
            ranked = matched + rest
            count = max(low, 1, min(count, len(matched)))
            return [ranked[i % len(ranked)] for i in range(count)]
        if _type(items) == "string":
            count = max(count, low)
            words = list(self.vocabulary) + [w for w in FILLER_TAGS if w not in self.vocabulary]
            words += [f"detail-{i}" for i in range(1, count - len(words) + 1)]
            return words[:count]
        return [self.value(items, name) for _ in range(max(count, low))]


def json_answer(schema: dict[str, Any] | None, text: str, vocabulary: list[str], rng: random.Random) -> Any:
    """The JSON value answered for ``responseMimeType: application/json``."""
    if not schema:
        return {"text": text, "tags": vocabulary[:DEFAULT_ARRAY_ITEMS]}
    return Answerer(text, vocabulary, rng).value(schema)
