"""Chat side of the OpenAI simulator: ``/v1/chat/completions`` answers made from the input.

* Deterministic: at ``temperature`` 0 the same request always gets the same text; above 0 the
  wording varies from call to call, as upstream.
* Text-only requests (the prompt helpers) get a prompt-like answer: the last user text, condensed,
  with a few photographic details appended.
* Requests with ``image_url`` parts (captions) get a description of what each image really shows
  (size, orientation, dominant colours, transparency), measured from the decoded ``data:`` URL; an
  ``http(s)`` URL is described as a URL, since the simulator fetches nothing.
* ``response_format`` ``json_schema`` gets JSON valid for the schema; arrays named like tags are
  filled from the schema's ``enum`` or a "possible tags: a, b, c" list in the messages, preferring
  tags that match the image's description. ``json_object`` gets ``{"text": …}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from providers.openai.sim_media import SimError, describe_image

DETAILS = (
    "soft natural light", "golden hour lighting", "shallow depth of field", "high detail", "35mm photograph",
    "balanced composition", "vivid colours", "cinematic atmosphere", "sharp focus", "gentle shadows",
    "wide angle view", "muted palette", "studio lighting", "rich textures",
)
_POSSIBLE_TAGS = re.compile(r"possible[ _]tags?\s*(?:are|:|-|=)?\s*(.+)", re.IGNORECASE)
_TAG_COUNT = re.compile(r"\b(\d{1,2})\s+(?:\w+\s+)?tags\b", re.IGNORECASE)


@dataclass
class ChatInput:
    texts: list[str] = field(default_factory=list)  # every text part, in order
    user_text: str = ""  # the last user message's text
    descriptions: list[str] = field(default_factory=list)
    image_facts: list[dict[str, Any]] = field(default_factory=list)
    images: int = 0


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [part for part in content if isinstance(part, dict)]
    return []


def describe_url(url: str) -> tuple[str, dict[str, Any] | None]:
    """One image part's description (and the measured facts for ``data:`` URLs)."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        try:
            data = base64.b64decode(payload, validate=True) if ";base64" in header else payload.encode()
            facts = describe_image(data)
        except (binascii.Error, ValueError, OSError, SyntaxError):
            raise SimError("You uploaded an unsupported image. Please make sure your image is valid and is of one "
                           "of the following formats: ['png', 'jpeg', 'gif', 'webp'].", param=None,
                           code="invalid_image_format") from None
        colours = facts["colours"]
        palette = (", ".join(colours[:-1]) + f" and {colours[-1]}") if len(colours) > 1 else (
            colours[0] if colours else "no visible colour")
        text = (f"A {facts['orientation']} {facts['format']} image of {facts['width']}x{facts['height']} pixels, "
                f"dominated by {palette}.")
        if facts["transparent_share"] >= 0.1:
            text += f" About {round(facts['transparent_share'] * 100)}% of it is transparent background."
        return text, facts
    if url.startswith(("http://", "https://")):
        return f"An image hosted at {url} (not fetched).", None
    raise SimError("Invalid 'image_url': expected a URL or a data: URL.", param="messages", code="invalid_value")


def read_messages(messages: Any) -> ChatInput:
    if not isinstance(messages, list) or not messages:
        raise SimError("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    seen = ChatInput()
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant"):
            raise SimError(f"Invalid value for 'messages[{index}]': expected a message with a known role.",
                           param=f"messages[{index}]")
        texts = []
        for part in _parts(message.get("content")):
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "image_url":
                ref = part.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else ref
                if not isinstance(url, str):
                    raise SimError("Missing required parameter: 'image_url.url'.", param=f"messages[{index}]",
                                   code="missing_required_parameter")
                description, facts = describe_url(url)
                seen.descriptions.append(description)
                seen.images += 1
                if facts:
                    seen.image_facts.append(facts)
        seen.texts.extend(texts)
        if message.get("role") == "user":
            seen.user_text = " ".join(texts)
    return seen


def condensed(text: str, limit: int = 240) -> str:
    words = " ".join(text.split())
    return words if len(words) <= limit else words[:limit].rsplit(" ", 1)[0]


def answer_text(seen: ChatInput, rng: random.Random) -> str:
    if seen.descriptions:
        return " ".join(seen.descriptions)
    subject = condensed(seen.user_text or " ".join(seen.texts)).rstrip(".") or "An image"
    return f"{subject}, {', '.join(rng.sample(DETAILS, 3))}."


# --------------------------------------------------------------------------- structured output
def possible_tags(seen: ChatInput) -> list[str]:
    for text in reversed(seen.texts):
        for line in text.splitlines():
            match = _POSSIBLE_TAGS.search(line)
            if match:
                raw = match.group(1).strip().strip("[]")
                tags = [t.strip().strip("'\"").strip() for t in raw.split(",")]
                return [t for t in tags if t]
    return []


def wanted_tags(seen: ChatInput) -> int | None:
    for text in reversed(seen.texts):
        match = _TAG_COUNT.search(text)
        if match:
            return int(match.group(1))
    return None


def pick_tags(candidates: list[str], count: int, seen: ChatInput, rng: random.Random) -> list[str]:
    """``count`` distinct tags: those that name what the images show first, then drawn by ``rng``."""
    words = set(" ".join(seen.descriptions).lower().replace(",", " ").replace(".", " ").split())
    fitting = [t for t in candidates if set(t.lower().split()) & words]
    rest = [t for t in candidates if t not in fitting]
    rng.shuffle(rest)
    return (fitting + rest)[:count]


def _own_tags(seen: ChatInput) -> list[str]:
    tags: list[str] = []
    for facts in seen.image_facts:
        tags += [facts["orientation"], *facts["colours"]]
    words = re.findall(r"[a-zA-Z]{4,}", seen.user_text)
    return list(dict.fromkeys(tags + [w.lower() for w in words] + ["image", "photo", "colour", "scene", "detail"]))


def value_for(schema: Any, name: str, root: dict[str, Any], seen: ChatInput, rng: random.Random,
              text: str, depth: int = 0) -> Any:
    """A JSON value valid for ``schema`` (the subset structured outputs use)."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    if "$ref" in schema:
        target: Any = root
        for key in str(schema["$ref"]).lstrip("#/").split("/"):
            target = target.get(key, {}) if isinstance(target, dict) else {}
        return value_for(target, name, root, seen, rng, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or [] if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return value_for(options[0], name, root, seen, rng, text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        return {key: value_for(sub, key, root, seen, rng, text, depth + 1)
                for key, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        low, high = int(schema.get("minItems") or 0), schema.get("maxItems")
        if "tag" in name.lower() or items.get("enum"):
            candidates = list(items.get("enum") or possible_tags(seen) or _own_tags(seen))
            count = wanted_tags(seen) or high or 5
            count = max(low, min(count, high if high is not None else count))
            return pick_tags(candidates, count, seen, rng)
        return [value_for(items, name, root, seen, rng, text, depth + 1) for _ in range(max(1, low))]
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def structured(response_format: Any, seen: ChatInput, rng: random.Random, text: str) -> str:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise SimError("Missing required parameter: 'response_format.json_schema.schema'.",
                           param="response_format", code="missing_required_parameter")
        return json.dumps(value_for(schema, str(spec.get("name") or ""), schema, seen, rng, text))
    if kind == "json_object":
        return json.dumps({"text": text})
    if kind not in (None, "text"):
        raise SimError(f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
                       param="response_format.type")
    return text


# --------------------------------------------------------------------------- completion
def complete(body: Any) -> dict[str, Any]:
    """The ``chat.completion`` answer for a request body (raises ``SimError`` on bad input)."""
    if not isinstance(body, dict):
        raise SimError("We could not parse the JSON body of your request.", code=None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise SimError("you must provide a model parameter", code=None)
    temperature = body.get("temperature", 1)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise SimError(f"Invalid 'temperature': expected a number between 0 and 2, got {temperature!r}.",
                       param="temperature", code="invalid_value")
    seen = read_messages(body.get("messages"))
    digest = hashlib.sha256(json.dumps([model, body.get("messages"), body.get("response_format")],
                                       sort_keys=True, default=str).encode()).hexdigest()
    seed = int(digest[:16], 16) if temperature == 0 else random.getrandbits(64)
    rng = random.Random(seed)
    text = answer_text(seen, rng)
    content = structured(body.get("response_format"), seen, rng, text)
    prompt_tokens = sum(len(t) for t in seen.texts) // 4 + 85 * seen.images + 4 * len(body["messages"])
    completion_tokens = max(1, len(content) // 4)
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "system_fingerprint": "fp_simulator",
    }
