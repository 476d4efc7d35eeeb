"""The text models behind the prompt helpers and the captions: ``model_provider: openai`` →
OpenAI Chat Completions (images as ``image_url`` parts), ``gemini`` → Vertex AI Gemini
``generateContent`` (images as ``inlineData`` parts). One call, one answer:
``{"text", "provider", "model", "temperature", "usage", ["json"]}``; failures are the port's three
classes, raised by the two clients (429 → RateLimited, 5xx/timeouts → Retryable, content blocks
→ Permanent ``content_moderated``, other refusals → Permanent)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from providers.base import Retryable
from providers.google.gemini import GeminiClient, image_part, text_part
from providers.openai.adapter import OpenAIProvider


@dataclass(frozen=True)
class Image:
    data: bytes
    mime: str


class TextModels:
    """Both back-ends, built lazily (a plugin that is never called opens no connection)."""

    def __init__(self, openai: OpenAIProvider, gemini: GeminiClient):
        self.openai = openai
        self.gemini = gemini

    async def complete(self, provider: str, *, system: str, text: str, temperature: float,
                       images: list[Image] = (), schema: dict[str, Any] | None = None,
                       schema_name: str = "answer") -> dict[str, Any]:
        if provider == "gemini":
            parts = [text_part(text)] + [image_part(i.data, i.mime) for i in images]
            answer = await self.gemini.generate_text(system=system, parts=parts, temperature=temperature,
                                                     response_schema=schema)
        else:
            content: list[dict[str, Any]] = [{"type": "text", "text": text}]
            content += [{"type": "image_url", "image_url": {
                "url": f"data:{i.mime};base64,{base64.b64encode(i.data).decode('ascii')}"}} for i in images]
            response_format = None if schema is None else {
                "type": "json_schema", "json_schema": {"name": schema_name, "schema": schema, "strict": True}}
            answer = await self.openai.chat([{"role": "system", "content": system},
                                             {"role": "user", "content": content}], temperature, response_format)
            provider = "openai"
        out = {"text": answer["text"].strip(), "provider": provider, "model": answer.get("model"),
               "temperature": temperature, "usage": answer.get("usage") or {}}
        if schema is not None:
            out["json"] = answer.get("json") if isinstance(answer.get("json"), (dict, list)) else _json(answer["text"])
        return out

    async def aclose(self) -> None:
        await self.openai.aclose()
        await self.gemini.aclose()


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise Retryable("the model's answer is not the JSON it was asked for", code="upstream_bad_json") from None
