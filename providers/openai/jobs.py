"""OpenAI's jobs as the port's ``AsyncProvider``: one call per job, answered with the images."""

from __future__ import annotations

from typing import Any

import httpx

from providers.base import Finished, Operation, Output
from providers.openai.client import to_upstream_error
from providers.openai.adapter import OpenAIProvider
from providers.openai.operations import media_of, short_name


class OpenAIJobs:
    name = "openai"

    def __init__(self, adapter: OpenAIProvider):
        self.adapter = adapter
        self.max_in_flight = adapter.settings.max_in_flight

    async def run(self, op: Operation, params: dict[str, Any]) -> Finished:
        images, mask = media_of(params)
        finished = await self.adapter.run(short_name(op), params, images, mask)
        if any(o.data is None for o in finished.outputs):  # DALL·E models answer URLs (valid 1 h)
            finished = Finished([o if o.data is not None else await self._download(o) for o in finished.outputs],
                                finished.meta)
        return finished

    async def _download(self, output: Output) -> Output:
        try:
            async with httpx.AsyncClient(timeout=self.adapter.settings.timeout_seconds) as client:
                response = await client.get(output.url)
        except httpx.HTTPError as exc:
            raise to_upstream_error(exc) from None
        if response.status_code != 200:
            raise to_upstream_error(response)
        return Output(data=response.content, content_type=response.headers.get("content-type", output.content_type),
                      meta=output.meta)

    async def aclose(self) -> None:
        await self.adapter.aclose()
