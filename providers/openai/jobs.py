"""OpenAI's jobs as the port's ``AsyncProvider``: one call per job, answered with the images."""

from __future__ import annotations

from typing import Any

from providers.base import Finished, Operation
from providers.openai.adapter import OpenAIProvider
from providers.openai.operations import media_of, short_name


class OpenAIJobs:
    name = "openai"

    def __init__(self, adapter: OpenAIProvider):
        self.adapter = adapter
        self.max_in_flight = adapter.settings.max_in_flight

    async def run(self, op: Operation, params: dict[str, Any]) -> Finished:
        images, mask = media_of(params)
        return await self.adapter.run(short_name(op), params, images, mask)

    async def aclose(self) -> None:
        await self.adapter.aclose()
