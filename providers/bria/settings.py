"""Bria's settings, read from its documented variables. An empty base URL points the adapter at
the simulator (the default); setting ``BRIA_BASE_URL=https://engine.prod.bria-api.com`` and
``BRIA_API_TOKEN`` points the same adapter at the real service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BriaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    base_url: str = Field("", alias="BRIA_BASE_URL")
    api_token: str = Field("simulator-token", alias="BRIA_API_TOKEN")
