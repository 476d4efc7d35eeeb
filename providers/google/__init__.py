"""Google provider: Vertex AI (Gemini text today; Imagen and Veo to follow).

* ``settings.py``  – ``GoogleSettings`` (``GOOGLE_*`` environment variables).
* ``vertex.py``    – Vertex AI plumbing shared by every Google client: URLs and error classes.
* ``gemini.py``    – ``GeminiClient``: text from ``:generateContent`` (prompt helpers, captions).
* ``simulator.py`` – a local stand-in for Vertex AI ``:generateContent`` with fault injection;
  ``sim_parse.py`` reads its requests, ``sim_media.py`` looks at inline images and videos,
  ``sim_text.py`` writes its deterministic answers.
"""
