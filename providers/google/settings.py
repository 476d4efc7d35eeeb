"""Settings of the Google provider (Vertex AI), read from ``GOOGLE_*`` environment variables.

* ``GOOGLE_VERTEX_BASE_URL`` – the Vertex AI endpoint. Empty (the default) means the Google
  simulator (``providers/google/simulator.py``), whose URL the process that mounts it passes in
  (``settings.model_copy(update={"vertex_base_url": url})``). For Google itself use the regional
  endpoint, e.g. ``https://us-central1-aiplatform.googleapis.com`` (``vertex_endpoint(location)``
  gives it for any location), or the value ``google`` to have it derived from the location.
* ``GOOGLE_CLOUD_PROJECT`` / ``GOOGLE_CLOUD_LOCATION`` – the project and region in the path.
* ``GOOGLE_ACCESS_TOKEN`` – the bearer token sent as ``Authorization: Bearer …``. The simulator
  takes any token. Real deployments supply an OAuth 2.0 access token (``gcloud auth
  print-access-token``, or one refreshed by a sidecar); such tokens expire after about an hour,
  so long-running processes should pass a ``token_provider`` to the client instead (an async
  callable returning a fresh token, e.g. one built on ``google.auth`` service-account
  credentials).
* ``GOOGLE_VERTEX_API_VERSION`` – ``v1`` (the GA surface; the ``google-genai`` SDK defaults to
  ``v1beta1``, which the simulator accepts too).
* ``GEMINI_TEXT_MODEL`` – the Gemini model for prompt helpers and captions.
* ``GOOGLE_TIMEOUT_SECONDS`` – per-request timeout (video captions take a while).
* ``GOOGLE_MAX_IN_FLIGHT`` – concurrent requests one client sends at most.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# An async callable returning a current OAuth access token (called before every request).
TokenProvider = Callable[[], Awaitable[str]]

# Vertex AI multi-region locations, served from aiplatform.{location}.rep.googleapis.com.
MULTI_REGIONS = ("us", "eu")


def vertex_endpoint(location: str) -> str:
    """Google's Vertex AI endpoint for ``location`` (what the ``google-genai`` SDK uses):
    ``global`` → aiplatform.googleapis.com, multi-regions → aiplatform.{loc}.rep.googleapis.com,
    regions → {loc}-aiplatform.googleapis.com."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in MULTI_REGIONS:
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def static_token(token: str) -> TokenProvider:
    """A token provider that always answers ``token``."""

    async def provide() -> str:
        return token

    return provide


class GoogleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    vertex_base_url: str = Field("", alias="GOOGLE_VERTEX_BASE_URL")
    project: str = Field("visiongate-sim", alias="GOOGLE_CLOUD_PROJECT")
    location: str = Field("us-central1", alias="GOOGLE_CLOUD_LOCATION")
    access_token: SecretStr = Field(SecretStr("simulator-token"), alias="GOOGLE_ACCESS_TOKEN")
    api_version: str = Field("v1", alias="GOOGLE_VERTEX_API_VERSION")
    gemini_text_model: str = Field("gemini-2.5-flash", alias="GEMINI_TEXT_MODEL")
    timeout_seconds: float = Field(120.0, gt=0, alias="GOOGLE_TIMEOUT_SECONDS")
    max_in_flight: int = Field(16, ge=1, alias="GOOGLE_MAX_IN_FLIGHT")

    @property
    def uses_simulator(self) -> bool:
        """True when no endpoint is configured: the Google simulator stands in."""
        return not self.vertex_base_url.strip()

    def base_url(self) -> str:
        """The endpoint to call, without a trailing slash ("" when the simulator's URL is still
        to be supplied)."""
        value = self.vertex_base_url.strip()
        if value.lower() == "google":
            return vertex_endpoint(self.location)
        return value.rstrip("/")

    def token_provider(self) -> TokenProvider:
        """The default token source: the static ``GOOGLE_ACCESS_TOKEN``."""
        token = self.access_token  # a plain str after ``model_copy(update=…)``, which skips validation
        return static_token(token.get_secret_value() if isinstance(token, SecretStr) else str(token))
