"""Settings of the OpenAI provider, read from ``OPENAI_*`` environment variables (or ``.env``).

* ``OPENAI_BASE_URL`` (default ``""``) – the API root **including** ``/v1``, as the official SDK
  takes it. Empty means the OpenAI simulator (``providers/openai/simulator.py``), whose URL the
  process that mounts it passes in: ``settings.model_copy(update={"base_url": f"{mount}/v1"})``.
  ``openai`` is short for ``https://api.openai.com/v1``.
* ``OPENAI_API_KEY`` (default ``simulator-key``) – sent as ``Authorization: Bearer …``; the
  simulator takes any non-empty key.
* ``OPENAI_ORGANIZATION``, ``OPENAI_PROJECT`` (unset) – sent as ``OpenAI-Organization`` /
  ``OpenAI-Project`` when set.
* ``OPENAI_IMAGE_MODEL`` (default ``gpt-image-1``) – the model of generate-image, edit-image and
  inpaint. Always sent: without ``model`` OpenAI falls back to ``dall-e-2``.
* ``OPENAI_CHAT_MODEL`` (default ``gpt-4o-mini``) – the model of the prompt helpers and captions
  (``/chat/completions``); it must accept image inputs for captions.
* ``OPENAI_TIMEOUT_SECONDS`` (default ``120``) – the read timeout of one call. Image calls answer
  only once the images are done (10–60 s, more for several high-quality images).
* ``OPENAI_MAX_IN_FLIGHT`` (default ``64``) – calls one adapter (one worker process) keeps open at
  most; also the number of connections it pools.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

OPENAI_API_URL = "https://api.openai.com/v1"


class OpenAISettings(BaseSettings):
    """See the module docstring for each field's environment variable and meaning."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    base_url: str = Field("", alias="OPENAI_BASE_URL")
    api_key: SecretStr = Field(SecretStr("simulator-key"), alias="OPENAI_API_KEY")
    organization: str | None = Field(None, alias="OPENAI_ORGANIZATION")
    project: str | None = Field(None, alias="OPENAI_PROJECT")
    image_model: str = Field("gpt-image-1", min_length=1, alias="OPENAI_IMAGE_MODEL")
    chat_model: str = Field("gpt-4o-mini", min_length=1, alias="OPENAI_CHAT_MODEL")
    timeout_seconds: float = Field(120.0, gt=0, alias="OPENAI_TIMEOUT_SECONDS")
    max_in_flight: int = Field(64, ge=1, alias="OPENAI_MAX_IN_FLIGHT")

    @property
    def uses_simulator(self) -> bool:
        """True when no endpoint is configured: the OpenAI simulator stands in."""
        return not self.base_url.strip()

    def api_base(self) -> str:
        """The API root to call (ending in ``/v1``), without a trailing slash; "" while the
        simulator's URL is still to be supplied."""
        value = self.base_url.strip()
        if value.lower() == "openai":
            return OPENAI_API_URL
        return value.rstrip("/")
