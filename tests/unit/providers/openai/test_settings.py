"""OpenAISettings: environment variables, defaults, the base URL."""

from __future__ import annotations

from providers.openai.settings import OPENAI_API_URL, OpenAISettings

NAMES = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_ORGANIZATION", "OPENAI_PROJECT", "OPENAI_IMAGE_MODEL",
         "OPENAI_CHAT_MODEL", "OPENAI_TIMEOUT_SECONDS", "OPENAI_MAX_IN_FLIGHT")


def test_defaults_mean_the_simulator(monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    settings = OpenAISettings(_env_file=None)
    assert settings.uses_simulator and settings.api_base() == ""
    assert settings.api_key.get_secret_value() == "simulator-key"
    assert (settings.image_model, settings.chat_model) == ("gpt-image-1", "gpt-4o-mini")
    assert (settings.timeout_seconds, settings.max_in_flight) == (120.0, 64)
    assert settings.organization is None and settings.project is None
    assert "simulator-key" not in repr(settings)


def test_environment_variables(monkeypatch):
    values = {"OPENAI_BASE_URL": "https://proxy.example/v1/", "OPENAI_API_KEY": "sk-live",
              "OPENAI_ORGANIZATION": "org-1", "OPENAI_PROJECT": "proj-1", "OPENAI_IMAGE_MODEL": "gpt-image-1.5",
              "OPENAI_CHAT_MODEL": "gpt-4.1-mini", "OPENAI_TIMEOUT_SECONDS": "90", "OPENAI_MAX_IN_FLIGHT": "200"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = OpenAISettings(_env_file=None)
    assert not settings.uses_simulator and settings.api_base() == "https://proxy.example/v1"
    assert settings.api_key.get_secret_value() == "sk-live"
    assert (settings.organization, settings.project) == ("org-1", "proj-1")
    assert (settings.image_model, settings.chat_model) == ("gpt-image-1.5", "gpt-4.1-mini")
    assert (settings.timeout_seconds, settings.max_in_flight) == (90.0, 200)


def test_openai_shortcut_and_simulator_url():
    assert OpenAISettings(base_url="openai", _env_file=None).api_base() == OPENAI_API_URL
    mounted = OpenAISettings(_env_file=None).model_copy(update={"base_url": "http://127.0.0.1:8000/sim/openai/v1"})
    assert mounted.api_base() == "http://127.0.0.1:8000/sim/openai/v1"
