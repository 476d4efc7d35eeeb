"""The six prompt helpers of the reference (``/api/v1/prompt/…``): the table, then what each asks
the text model. Every call is a job (persisted, queued, throttled, billed one credit, visible at
``GET /api/v1/jobs/{id}``) answered synchronously up to the sync deadline.

The result (the reference gives none; ours, documented in docs/providers/prompt.md):
``{"text": <the generated prompt>, "provider": "openai"|"gemini", "model", "temperature",
"usage": {"prompt_tokens", "completion_tokens", "total_tokens"}, "expires_at"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from providers.base import Kind, Operation
from providers.prompt import schemas_gen as S

TAG = "Prompt Enhancement"


@dataclass(frozen=True)
class Ask:
    """What one helper asks: a system instruction and the user message built from the request."""

    system: str
    user: str

    def message(self, params: dict[str, Any]) -> str:
        return self.user.format(**{k: str(v).strip() for k, v in params.items() if isinstance(v, (str, int, float))})


_STYLE = ("Answer with the prompt only: one paragraph, no preamble, no quotes, no lists. Name the subject, "
          "the setting, the lighting, the composition and the visual style concretely.")

ASKS: dict[str, Ask] = {
    "enhance-prompt": Ask(
        "You improve prompts for text-to-image models. Keep the user's intent and subject; add the "
        "specific visual detail a generator needs. " + _STYLE,
        "Improve this image prompt: {prompt}"),
    "adapt-background-prompt": Ask(
        "You adapt background scenes for product and marketing images to an audience and a place, "
        "so the background feels local and relevant without showing any product. " + _STYLE,
        "Adapt a background scene for {audience} in {location}."),
    "generate-background-prompt": Ask(
        "You write prompts for background scenes of product and marketing images: an empty, "
        "well-lit setting with room for a subject in front. " + _STYLE,
        "Write a background scene prompt for {audience} in {location}."),
    "generate-image-prompt": Ask(
        "You write prompts for complete marketing images: people, place and mood chosen for the "
        "audience and the location. " + _STYLE,
        "Write an image prompt for {audience} in {location}."),
    "adapt-subject-prompt": Ask(
        "You adapt the main subject of an image to an audience and a place (clothing, props, "
        "setting), keeping the subject recognisable. " + _STYLE,
        "Adapt the subject \"{subject}\" for {audience} in {location}."),
    "generate-subject-pose-prompt": Ask(
        "You describe a natural, photogenic pose for a subject: body position, gaze, hands, "
        "framing. " + _STYLE,
        "Describe a pose for: {subject}."),
}

_MODELS: dict[str, tuple[type, str]] = {
    "enhance-prompt": (S.PromptEnhancementRequest, "Enhance Prompt"),
    "adapt-background-prompt": (S.BackgroundAssetAdaptationRequest, "Prompt Background Adapt"),
    "generate-background-prompt": (S.BackgroundCreationRequest, "Prompt Generate Background"),
    "generate-image-prompt": (S.ImageCreationRequest, "Prompt Generate Image Creation"),
    "adapt-subject-prompt": (S.SubjectEnhancementRequest, "Prompt Adapt Subject"),
    "generate-subject-pose-prompt": (S.SubjectPosePromptRequest, "Prompt Generate Subject Pose"),
}

OPERATIONS = [
    Operation(name=f"prompt.{slug.replace('-', '_')}", provider="prompt", method="POST",
              path=f"/api/v1/prompt/{slug}", request_model=model, kind=Kind.JOB, summary=summary, tags=(TAG,),
              output="text", cost=lambda _p: 1,
              description="Answered synchronously (up to the server's sync deadline; then 202 with a status_url "
                          "at GET /api/v1/jobs/{id}). `result`: `text` (the prompt), `provider`, `model`, "
                          "`temperature`, `usage` (token counts), `expires_at`.")
    for slug, (model, summary) in _MODELS.items()
]


def ask_for(op: Operation) -> Ask:
    return ASKS[op.path.rsplit("/", 1)[1]]
