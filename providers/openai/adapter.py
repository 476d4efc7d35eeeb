"""The OpenAI provider: Vision Studio's three GPT image operations and the chat model behind the
prompt helpers and captions.

OpenAI answers image calls synchronously, once the images exist (10–60 s), with the images inline
as base64; there is no task to poll. ``run`` therefore makes one call and returns
``providers.base.Finished`` with the decoded images as ``Output.data``. Everything is async: a
worker process keeps up to ``OPENAI_MAX_IN_FLIGHT`` calls open on one event loop (a semaphore per
adapter bounds them; the connection pool has as many connections).

Errors are raised classified (``RateLimited`` / ``Retryable`` / ``Permanent``, see
``client.to_upstream_error``); a request refused by OpenAI's safety system, or a chat answer that
is a refusal or was cut by the content filter, is ``Permanent`` with code ``content_moderated``.

The HTTP client and the semaphore belong to the event loop they were first used on. Used from
another loop (say, ``asyncio.run`` per task), the adapter makes a fresh pair for that loop rather
than reusing connections bound to a loop that may be gone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any, Awaitable, Callable, Sequence

import httpx

from providers.base import Finished, Output, Permanent, Retryable
from providers.openai.builders import edit_call, generate_body, inpaint_call
from providers.openai.client import MODERATION_CODE, OpenAIClient
from providers.openai.settings import OpenAISettings

OPERATIONS = ("generate-image", "edit-image", "inpaint")
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def sniff_image_type(data: bytes) -> str | None:
    """The media type from the file's magic bytes (PNG, JPEG, WebP), else ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def images_finished(answer: dict[str, Any], model: str, request: dict[str, Any]) -> Finished:
    """An ``ImagesResponse`` as ``Finished``: one ``Output`` per image (bytes decoded from
    ``b64_json``, or the ``url`` DALL·E models may answer), and the call's facts as ``meta``."""
    items = answer.get("data")
    if not isinstance(items, list) or not items:
        raise Permanent("OpenAI answered without any image", code="upstream_empty_result")
    fmt = answer.get("output_format") or request.get("output_format") or "png"
    default_type = CONTENT_TYPES.get(str(fmt).lower(), "image/png")
    outputs: list[Output] = []
    for item in items:
        item = item if isinstance(item, dict) else {}
        meta = {"revised_prompt": item["revised_prompt"]} if item.get("revised_prompt") else {}
        if item.get("b64_json"):
            try:
                data = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise Retryable("OpenAI answered an image that is not valid base64",
                                code="upstream_bad_response") from None
            outputs.append(Output(data=data, content_type=sniff_image_type(data) or default_type, meta=meta))
        elif item.get("url"):
            outputs.append(Output(url=item["url"], content_type=default_type, meta=meta))
        else:
            raise Retryable("OpenAI answered an image without b64_json or url", code="upstream_bad_response")
    meta = {
        "model": model,
        "size": answer.get("size") or request.get("size"),
        "quality": answer.get("quality") or request.get("quality"),
        "background": answer.get("background") or request.get("background"),
        "output_format": fmt,
        "usage": answer.get("usage") or {},
        "revised_prompts": [o.meta["revised_prompt"] for o in outputs if o.meta.get("revised_prompt")] or None,
    }
    return Finished(outputs=outputs, meta={key: value for key, value in meta.items() if value is not None})


class OpenAIProvider:
    """``run`` performs one of ``OPERATIONS``; ``chat`` is one chat completion."""

    name = "openai"

    def __init__(self, settings: OpenAISettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not settings.api_base():
            raise ValueError("OPENAI_BASE_URL is empty: pass the OpenAI simulator's URL (ending in /v1) "
                             "with settings.model_copy(update={'base_url': ...}), or set it to 'openai'")
        self.settings = settings
        self._transport = transport
        self._bound: tuple[asyncio.AbstractEventLoop, OpenAIClient, asyncio.Semaphore] | None = None

    # -- plumbing
    def _for_loop(self) -> tuple[OpenAIClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._bound is None or self._bound[0] is not loop:
            s = self.settings
            client = OpenAIClient(s.api_base(), s.api_key.get_secret_value(), s.timeout_seconds,
                                  organization=s.organization, project=s.project, transport=self._transport,
                                  max_connections=s.max_in_flight)
            self._bound = (loop, client, asyncio.Semaphore(s.max_in_flight))
        return self._bound[1], self._bound[2]

    async def _call(self, send: Callable[[OpenAIClient], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        client, in_flight = self._for_loop()
        async with in_flight:
            return await send(client)

    # -- images
    async def run(self, op: str, params: dict[str, Any], images: Sequence[bytes] = (),
                  mask: bytes | None = None) -> Finished:
        """One image operation. ``params`` are the request's fields; ``images`` the input images'
        bytes (edit-image: all of them; inpaint: the first), ``mask`` the inpaint mask's bytes
        (ignored with ``inpaint_border_only``)."""
        model = self.settings.image_model
        if op == "generate-image":
            body = generate_body(params, model)
            answer = await self._call(lambda client: client.images_generate(body))
            return images_finished(answer, model, body)
        if op == "edit-image":
            call = edit_call(params, list(images), model)
        elif op == "inpaint":
            # Mask conversion decodes an image: keep it off the event loop.
            call = await asyncio.to_thread(inpaint_call, params, images[0] if images else None, mask, model)
        else:
            raise ValueError(f"unknown OpenAI operation {op!r}; expected one of {OPERATIONS}")
        answer = await self._call(lambda client: client.images_edit(call.fields, call.images, call.mask))
        return images_finished(answer, model, call.fields)

    # -- chat
    async def chat(self, messages: list[dict[str, Any]], temperature: float,
                   response_format: dict[str, Any] | None = None, *, model: str | None = None) -> dict[str, Any]:
        """One chat completion → ``{"text", "model", "usage": {prompt_tokens, completion_tokens,
        total_tokens}}``. ``messages`` are OpenAI chat messages (content may hold ``image_url``
        parts); ``response_format`` is passed through (e.g. a ``json_schema`` for tags)."""
        body: dict[str, Any] = {"model": model or self.settings.chat_model, "messages": messages,
                                "temperature": temperature}
        if response_format is not None:
            body["response_format"] = response_format
        answer = await self._call(lambda client: client.chat(body))
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise Retryable("OpenAI answered the chat call without a choice", code="upstream_bad_response")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        if message.get("refusal"):
            raise Permanent(str(message["refusal"]), code=MODERATION_CODE)
        if choice.get("finish_reason") == "content_filter":
            raise Permanent("OpenAI's content filter stopped the answer", code=MODERATION_CODE)
        text = message.get("content")
        if not isinstance(text, str):
            raise Retryable("OpenAI answered the chat call without text", code="upstream_bad_response")
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        return {"text": text, "model": answer.get("model") or body["model"],
                "usage": {key: int(usage.get(key) or 0) for key in USAGE_KEYS}}

    # -- lifecycle
    async def aclose(self) -> None:
        """Close the connections. Call it on the loop the adapter last ran on; connections of
        another loop are only dropped (that loop may be gone), and the adapter stays usable."""
        if self._bound is not None:
            loop, client, _ = self._bound
            self._bound = None
            if loop is asyncio.get_running_loop():
                await client.aclose()

    async def __aenter__(self) -> "OpenAIProvider":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
