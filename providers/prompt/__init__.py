"""The prompt helpers (``/api/v1/prompt/…``): text from OpenAI Chat Completions or Gemini.

``PLUGIN`` is what ``providers/registry.py`` lists. The calls go to the OpenAI and Google
upstreams with their own settings (``OPENAI_*``, ``GOOGLE_*``), so there is no simulator of its
own: the OpenAI and Google simulators answer.
"""

from __future__ import annotations

from typing import Any

from providers.base import Finished, Operation
from providers.plugin import Dialect, Plugin, UpstreamDefaults
from providers.prompt.backends import TextSettings, text_models
from providers.prompt.llm import TextModels
from providers.prompt.operations import OPERATIONS, ask_for


class PromptProvider:
    """The ``AsyncProvider`` of the prompt helpers: one text-model call per job."""

    name = "prompt"

    def __init__(self, models: TextModels, max_in_flight: int):
        self.models = models
        self.max_in_flight = max_in_flight

    async def run(self, op: Operation, params: dict[str, Any]) -> Finished:
        ask = ask_for(op)
        answer = await self.models.complete(str(params.get("model_provider") or "openai"), system=ask.system,
                                            text=ask.message(params), temperature=float(params.get("temperature", 0.7)))
        return Finished([], answer)

    async def aclose(self) -> None:
        await self.models.aclose()


def build(settings: TextSettings, defaults: UpstreamDefaults) -> PromptProvider:
    return PromptProvider(text_models(defaults), settings.max_in_flight)


PLUGIN = Plugin(
    name="prompt",
    operations=tuple(OPERATIONS),
    settings=TextSettings,
    build=build,
    dialect=Dialect(always_sync=True),
    upstream_limits={"rpm": 3000, "concurrency": None},
    docs="docs/providers/prompt.md",
)
