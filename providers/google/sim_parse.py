"""Reading a ``:generateContent`` request in the Google simulator, with Vertex-style
validation messages (400 INVALID_ARGUMENT)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from providers.google.sim_media import Facts, MediaRefused, describe_image, describe_video

DEFAULT_TEMPERATURE = 1.0  # Gemini 2.x default
MAX_CANDIDATES = 8
JSON_MIME = "application/json"


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Media:
    where: str  # "contents[0].parts[1]"
    mime: str
    data: bytes


@dataclass
class ParsedRequest:
    texts: list[str] = field(default_factory=list)  # the user's text parts
    system: list[str] = field(default_factory=list)  # the system instruction's text parts
    media: list[Media] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # fileData URIs
    facts: list[Facts] = field(default_factory=list)  # filled by ``analyse``
    temperature: float = DEFAULT_TEMPERATURE
    candidate_count: int = 1
    json_mode: bool = False
    schema: dict[str, Any] | None = None


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def camel_keys(value: Any, *, names: bool = False) -> Any:
    """Field names in lowerCamelCase. Google's JSON parsing (proto3 JSON) accepts a field's
    lowerCamelCase name and its original snake_case name alike, and the ``google-genai`` SDK
    sends a mix (``{"inlineData": {"mime_type": …}}``). Keys of a schema's ``properties`` are the
    caller's names (``names=True``) and stay as they are."""
    if isinstance(value, list):
        return [camel_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {(key if names else camel(key)): camel_keys(item, names=not names and camel(key) == "properties")
            for key, item in value.items()}


def decode_base64(value: Any, where: str) -> bytes:
    """Standard or URL-safe base64 (the ``google-genai`` SDK sends URL-safe)."""
    if not isinstance(value, str) or not value:
        raise BadRequest(f"Invalid value at '{where}.data' (TYPE_BYTES), expected base64 data")
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed") from exc


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, dict):
        raise BadRequest(f"Invalid value at '{where}': expected a Content object")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise BadRequest(f"Unable to submit request because it has an empty {where}.parts field.")
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise BadRequest(f"Invalid value at '{where}.parts[{i}]': expected a Part object")
    return parts


def _read_part(part: dict[str, Any], where: str, parsed: ParsedRequest, role: str) -> None:
    if isinstance(part.get("text"), str):
        if role == "user" and not part.get("thought"):
            parsed.texts.append(part["text"])
        return
    inline = part.get("inlineData")
    if isinstance(inline, dict):
        mime = str(inline.get("mimeType") or "").lower()
        if not mime:
            raise BadRequest(f"Missing mime_type at '{where}.inline_data'.")
        data = decode_base64(inline.get("data"), f"{where}.inline_data")
        if mime == "text/plain":
            parsed.texts.append(data.decode("utf-8", "replace"))
        elif role == "user":
            parsed.media.append(Media(where, mime, data))
        return
    file_data = part.get("fileData")
    if isinstance(file_data, dict):
        uri = file_data.get("fileUri")
        if not isinstance(uri, str) or not uri:
            raise BadRequest(f"Missing file_uri at '{where}.file_data'.")
        if not file_data.get("mimeType"):
            raise BadRequest(f"Missing mime_type at '{where}.file_data'.")
        parsed.references.append(uri)
        return
    if not part.keys() & {"functionCall", "functionResponse", "executableCode", "codeExecutionResult"}:
        raise BadRequest(f"Unable to submit request because {where} has no data (text, inline_data or file_data).")


def _config(config: Any, parsed: ParsedRequest) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise BadRequest("Invalid value at 'generation_config': expected an object")
    temperature = config.get("temperature", DEFAULT_TEMPERATURE)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise BadRequest(f"Unable to submit request because it has a temperature value of {temperature} but the "
                         f"supported range is from 0 (inclusive) to 2.0001 (exclusive). Update the value and try "
                         f"again.")
    parsed.temperature = float(temperature)
    count = config.get("candidateCount", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CANDIDATES:
        raise BadRequest(f"Unable to submit request because candidateCount must be between 1 and "
                         f"{MAX_CANDIDATES}.")
    parsed.candidate_count = count
    mime = str(config.get("responseMimeType") or "text/plain").lower()
    schema = config.get("responseSchema") or config.get("responseJsonSchema")
    if schema is not None and mime != JSON_MIME:
        raise BadRequest("Unable to submit request because response_schema is only supported with "
                         "response_mime_type application/json.")
    if schema is not None and not isinstance(schema, dict):
        raise BadRequest("Invalid value at 'generation_config.response_schema': expected a Schema object")
    parsed.json_mode = mime == JSON_MIME
    parsed.schema = schema


def parse_request(raw: bytes) -> tuple[dict[str, Any], ParsedRequest]:
    """The body as JSON and what matters in it; ``BadRequest`` for what Vertex would refuse."""
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise BadRequest(f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("Invalid JSON payload received. Expected an object.")
    body = camel_keys(body)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("Unable to submit request because it must include at least one contents field.")
    parsed = ParsedRequest()
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        role = content.get("role", "user") if isinstance(content, dict) else "user"
        if role not in ("user", "model"):
            raise BadRequest(f"Please use a valid role: user, model. (got {role!r} at {where})")
        for j, part in enumerate(_parts(content, where)):
            _read_part(part, f"{where}.parts[{j}]", parsed, role)
    system = body.get("systemInstruction")
    if system is not None:
        for part in _parts(system, "system_instruction"):
            if isinstance(part.get("text"), str):
                parsed.system.append(part["text"])
    _config(body.get("generationConfig"), parsed)
    return body, parsed


def analyse(parsed: ParsedRequest) -> None:
    """Decode every inline medium and fill ``parsed.facts`` (CPU-bound: run in a thread)."""
    for medium in parsed.media:
        try:
            if medium.mime.startswith("image/"):
                parsed.facts.append(describe_image(medium.data))
            elif medium.mime.startswith("video/"):
                parsed.facts.append(describe_video(medium.data))
            else:
                raise BadRequest(f"Unsupported MIME type at '{medium.where}.inline_data': {medium.mime}")
        except MediaRefused as exc:
            raise BadRequest(f"{exc} ({medium.where})") from exc
