"""Google provider: Vertex AI (Gemini text today; Imagen and Veo to follow).

* ``settings.py``  – ``GoogleSettings`` (``GOOGLE_*`` environment variables).
* ``vertex.py``    – Vertex AI plumbing shared by every Google client: URLs and error classes.
* ``gemini.py``    – ``GeminiClient``: text from ``:generateContent`` (prompt helpers, captions).
* ``simulator.py`` – a local stand-in for Vertex AI ``:generateContent`` with fault injection;
  ``sim_parse.py`` reads its requests, ``sim_media.py`` looks at inline images and videos,
  ``sim_text.py`` writes its deterministic answers.
"""

from __future__ import annotations

from providers.google.settings import GoogleSettings
from providers.plugin import Plugin


def simulator():  # noqa: ANN201 - an ASGI app
    from providers.google.simulator import create_app

    return create_app()


# No endpoints of its own yet (the Google issue adds Imagen, Gemini image and Veo): today it
# brings the Gemini client the prompt helpers and captions use, and its simulator.
PLUGIN = Plugin(
    name="google",
    operations=(),
    settings=GoogleSettings,
    build=None,
    simulator=simulator,
    simulator_path="/google",
    url_setting="vertex_base_url",
    docs="docs/providers/google.md",
)
