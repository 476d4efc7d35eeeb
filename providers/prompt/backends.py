"""Settings of the text helpers and the two clients they use, each configured by its own
provider's variables (``OPENAI_*`` for OpenAI, ``GOOGLE_*``/``GEMINI_*`` for Gemini) and pointed
at that provider's simulator when it has no base URL."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from providers.google.gemini import GeminiClient
from providers.google.settings import GoogleSettings
from providers.openai.adapter import OpenAIProvider
from providers.openai.settings import OpenAISettings
from providers.plugin import UpstreamDefaults
from providers.prompt.llm import TextModels

OPENAI_SIMULATOR = "/openai"
GOOGLE_SIMULATOR = "/google"


class TextSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    max_in_flight: int = Field(64, ge=1, alias="VISIONGATE_TEXT_MAX_IN_FLIGHT")


def openai_client(defaults: UpstreamDefaults) -> OpenAIProvider:
    settings = OpenAISettings()
    if settings.uses_simulator:
        settings = settings.model_copy(update={"base_url": f"{defaults.simulator_url}{OPENAI_SIMULATOR}/v1"})
    return OpenAIProvider(settings)


def gemini_client(defaults: UpstreamDefaults) -> GeminiClient:
    settings = GoogleSettings()
    if settings.uses_simulator:
        settings = settings.model_copy(update={"vertex_base_url": f"{defaults.simulator_url}{GOOGLE_SIMULATOR}"})
    return GeminiClient(settings)


def text_models(defaults: UpstreamDefaults) -> TextModels:
    return TextModels(openai_client(defaults), gemini_client(defaults))
