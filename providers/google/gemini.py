"""Gemini text on Vertex AI (``:generateContent``): the LLM behind the prompt helpers and the
captions when ``model_provider`` is ``gemini``.

Wire format (``google-genai`` SDK, ``models.py`` ``_GenerateContentParameters_to_vertex``,
``_GenerateContentConfig_to_vertex``, ``_GenerateContentResponse_from_vertex``):

* request ``{"contents": [{"role": "user", "parts": [{"text"} | {"inlineData": {"mimeType",
  "data": <base64>}} | {"fileData": {"mimeType", "fileUri"}}]}], "systemInstruction": {"parts":
  [{"text"}]}, "generationConfig": {"temperature", "candidateCount", "maxOutputTokens",
  "responseMimeType", "responseSchema"}}``;
* response ``{"candidates": [{"content": {"role": "model", "parts": [{"text"}]},
  "finishReason", "safetyRatings"}], "promptFeedback": {"blockReason"}, "usageMetadata":
  {"promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "totalTokenCount"},
  "modelVersion", "responseId", "createTime"}``.

A blocked prompt (``promptFeedback.blockReason``) or an answer stopped by a safety filter
(``finishReason`` SAFETY, PROHIBITED_CONTENT, BLOCKLIST, SPII, IMAGE_SAFETY, …) raises
``Permanent`` with code ``content_moderated``; HTTP failures are classified by
``vertex.to_upstream_error``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx

from providers.base import Permanent, Retryable
from providers.google.settings import GoogleSettings, TokenProvider
from providers.google.vertex import model_url, to_upstream_error

USER_AGENT = "visiongate-google/0.1"
# Base URL used with an injected transport (e.g. ``httpx.ASGITransport`` around the simulator)
# when no endpoint is configured: the transport ignores the host.
SIMULATOR_PLACEHOLDER_URL = "http://google-simulator"

# Candidate finish reasons that mean a safety or policy filter removed the answer.
MODERATION_FINISH_REASONS = frozenset({
    "SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT",
})


# --------------------------------------------------------------------------- parts
def text_part(text: str) -> dict[str, Any]:
    return {"text": text}


def image_part(data: bytes, mime: str) -> dict[str, Any]:
    """An image sent inline (base64), e.g. ``image_part(png_bytes, "image/png")``."""
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode("ascii")}}


def file_part(uri: str, mime: str) -> dict[str, Any]:
    """A file Vertex AI reads itself: ``gs://bucket/object`` (or an https URL it can fetch)."""
    return {"fileData": {"mimeType": mime, "fileUri": uri}}


def video_part(data: bytes | None = None, mime: str = "video/mp4", *, uri: str | None = None) -> dict[str, Any]:
    """A video, inline (``data``) or by reference (``uri``, e.g. ``gs://…``)."""
    if (data is None) == (uri is None):
        raise ValueError("video_part needs exactly one of data or uri")
    return file_part(uri, mime) if uri is not None else image_part(data, mime)  # type: ignore[arg-type]


def _normalise_part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return text_part(part)
    if isinstance(part, dict) and len(part.keys() & {"text", "inlineData", "fileData"}) == 1:
        return part
    raise ValueError(f"a part is a string or one of {{text}}, {{inlineData}}, {{fileData}}: {part!r:.80}")


# --------------------------------------------------------------------------- request / response
def build_request(
    *,
    system: str | None,
    parts: list[Any],
    temperature: float,
    response_schema: dict[str, Any] | None = None,
    max_output_tokens: int | None = None,
) -> dict[str, Any]:
    """The ``:generateContent`` body for one user turn."""
    if not parts:
        raise ValueError("generate_text needs at least one part")
    config: dict[str, Any] = {"temperature": temperature, "candidateCount": 1}
    if max_output_tokens is not None:
        config["maxOutputTokens"] = max_output_tokens
    if response_schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseSchema"] = response_schema
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [_normalise_part(p) for p in parts]}],
        "generationConfig": config,
    }
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    return body


def _count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return int(value) if isinstance(value, (int, float)) else 0


def parse_response(body: Any, *, requested_model: str, json_expected: bool = False) -> dict[str, Any]:
    """``{"text", "model", "usage", "finish_reason"}`` (plus ``"json"``, the parsed answer, when a
    JSON answer was asked for) from a ``:generateContent`` response; raises for blocked or empty
    answers."""
    if not isinstance(body, dict):
        raise Retryable("Vertex AI answered with something other than a JSON object", code="upstream_bad_response")
    feedback = body.get("promptFeedback") or {}
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        reason = feedback["blockReason"]
        detail = feedback.get("blockReasonMessage") or "the request was blocked by Gemini's safety filters"
        raise Permanent(f"{detail} (blockReason {reason})", code="content_moderated")
    candidates = body.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        raise Retryable("Gemini returned no candidates", code="upstream_empty_response")
    candidate = candidates[0]
    finish = str(candidate.get("finishReason") or "FINISH_REASON_UNSPECIFIED")
    if finish in MODERATION_FINISH_REASONS:
        blocked = [r.get("category") for r in candidate.get("safetyRatings") or []
                   if isinstance(r, dict) and r.get("blocked")]
        extra = f": {', '.join(str(c) for c in blocked)}" if blocked else ""
        message = candidate.get("finishMessage") or "the answer was blocked by Gemini's safety filters"
        raise Permanent(f"{message} (finishReason {finish}{extra})", code="content_moderated")
    content = candidate.get("content") or {}
    parts = content.get("parts") if isinstance(content, dict) else None
    text = "".join(p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str)
                   and not p.get("thought"))
    if not text:
        if finish in ("STOP", "FINISH_REASON_UNSPECIFIED"):
            raise Retryable("Gemini returned an empty answer", code="upstream_empty_response")
        raise Permanent(f"Gemini returned no text (finishReason {finish})", code="upstream_no_text")
    usage = body.get("usageMetadata") or {}
    prompt_tokens = _count(usage, "promptTokenCount")
    # Thinking tokens are billed as output: count them with the answer's.
    completion_tokens = _count(usage, "candidatesTokenCount") + _count(usage, "thoughtsTokenCount")
    result: dict[str, Any] = {
        "text": text,
        "model": body.get("modelVersion") or requested_model,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": _count(usage, "totalTokenCount") or prompt_tokens + completion_tokens,
        },
        "finish_reason": finish,
    }
    if json_expected:
        try:
            result["json"] = json.loads(text)
        except ValueError as exc:
            raise Retryable(f"Gemini's JSON answer does not parse (finishReason {finish}): {exc}",
                            code="upstream_bad_json") from exc
    return result


# --------------------------------------------------------------------------- client
class GeminiClient:
    """Async Gemini text client for Vertex AI.

    One pooled ``httpx.AsyncClient`` per event loop (made on first use, remade when the loop
    changes, e.g. a worker that runs each job under its own ``asyncio.run``), and at most
    ``settings.max_in_flight`` requests at a time. ``transport`` replaces the network (tests,
    or the simulator in-process through ``httpx.ASGITransport``); ``token_provider`` replaces the
    static ``GOOGLE_ACCESS_TOKEN``.
    """

    def __init__(
        self,
        settings: GoogleSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        token_provider: TokenProvider | None = None,
    ) -> None:
        base_url = settings.base_url()
        if not base_url:
            if transport is None:
                raise ValueError("GOOGLE_VERTEX_BASE_URL is empty: pass the Google simulator's URL "
                                 "(or a transport), or set the Vertex AI endpoint")
            base_url = SIMULATOR_PLACEHOLDER_URL
        self.settings = settings
        self.base_url = base_url
        self._transport = transport
        self._token = token_provider or settings.token_provider()
        self._client: httpx.AsyncClient | None = None
        self._gate: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def url(self, model: str, method: str = "generateContent") -> str:
        s = self.settings
        return model_url(self.base_url, s.api_version, s.project, s.location, model, method)

    def _session(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._gate is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=httpx.Timeout(self.settings.timeout_seconds, connect=min(10.0, self.settings.timeout_seconds)),
                limits=httpx.Limits(max_connections=self.settings.max_in_flight, keepalive_expiry=30.0),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
            )
            self._gate = asyncio.Semaphore(self.settings.max_in_flight)
            self._loop = loop
        return self._client, self._gate

    async def aclose(self) -> None:
        client, self._client, self._gate, self._loop = self._client, None, None, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> "GeminiClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _headers(self) -> dict[str, str]:
        try:
            token = await self._token()
        except Exception as exc:  # noqa: BLE001 - any failure of the token source
            raise Retryable(f"could not obtain a Google access token: {type(exc).__name__}: {exc}",
                            code="upstream_auth_unavailable") from exc
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def post(self, url: str, body: dict[str, Any]) -> Any:
        """POST ``body`` to ``url``; the JSON answer, or a classified ``UpstreamError``."""
        client, gate = self._session()
        headers = await self._headers()
        async with gate:
            try:
                response = await client.post(url, content=json.dumps(body).encode(), headers=headers)
            except httpx.HTTPError as exc:
                raise to_upstream_error(exc) from exc
        if response.status_code >= 300:
            raise to_upstream_error(response)
        try:
            return response.json()
        except ValueError as exc:
            raise Retryable("Vertex AI answered with a body that is not JSON", code="upstream_bad_response",
                            http_status=response.status_code) from exc

    async def generate_text(
        self,
        *,
        system: str | None,
        parts: list[dict[str, Any]],
        temperature: float,
        response_schema: dict[str, Any] | None = None,
        model: str | None = None,
        max_output_tokens: int | None = None,
    ) -> dict[str, Any]:
        """One ``:generateContent`` call. Returns ``{"text", "model", "usage": {"prompt_tokens",
        "completion_tokens", "total_tokens"}, "finish_reason"}``, plus ``"json"`` (the parsed
        answer) when ``response_schema`` is given. ``parts`` are ``text_part`` /
        ``image_part`` / ``video_part`` / ``file_part`` dicts (a plain string is a text part)."""
        model = model or self.settings.gemini_text_model
        body = build_request(system=system, parts=parts, temperature=temperature,
                             response_schema=response_schema, max_output_tokens=max_output_tokens)
        answer = await self.post(self.url(model), body)
        return parse_response(answer, requested_model=model, json_expected=response_schema is not None)
