"""OpenAI: GPT image generation, editing and inpainting, and the chat model behind the prompt
helpers and captions (``providers/prompt``, ``providers/caption``).

* ``operations``  – the table (three endpoints) and the media each takes;
* ``schemas``     – the generated request models (``schemas_gen``) plus the reference's prose rules;
* ``settings``    – ``OpenAISettings`` (``OPENAI_*``; an empty ``OPENAI_BASE_URL`` is the simulator);
* ``client``      – async HTTP calls and ``to_upstream_error``;
* ``builders``    – Vision Studio request → OpenAI call (sizes, masks, the border-only mask);
* ``adapter``     – ``OpenAIProvider.run`` (images) and ``chat``; ``jobs.OpenAIJobs`` is the port;
* ``simulator``   – a local OpenAI stand-in (``/v1/images/…``, ``/v1/chat/completions``, ``/_sim/``).

``PLUGIN`` is what ``providers/registry.py`` lists.
"""

from __future__ import annotations

from providers.openai.adapter import OpenAIProvider
from providers.openai.jobs import OpenAIJobs
from providers.openai.operations import OPERATIONS
from providers.openai.settings import OpenAISettings
from providers.plugin import Dialect, Plugin, UpstreamDefaults

SIMULATOR_PATH = "/openai"


def build(settings: OpenAISettings, defaults: UpstreamDefaults) -> OpenAIJobs:
    if settings.uses_simulator:
        settings = settings.model_copy(update={"base_url": f"{defaults.simulator_url}{SIMULATOR_PATH}/v1"})
    return OpenAIJobs(OpenAIProvider(settings))


def simulator():  # noqa: ANN201 - an ASGI app
    from providers.openai.simulator import create_app

    return create_app()


PLUGIN = Plugin(
    name="openai",
    operations=tuple(OPERATIONS),
    settings=OpenAISettings,
    build=build,
    simulator=simulator,
    simulator_path=SIMULATOR_PATH,
    dialect=Dialect(always_sync=True),
    upstream_limits={"rpm": 500, "concurrency": None},
    docs="docs/providers/openai.md",
)
