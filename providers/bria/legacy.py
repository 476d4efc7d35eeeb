"""003's legacy paths: deprecated aliases of Bria operations.

003's client examples call nine editing-generation endpoints under /image/editing/ and the video
endpoint as /video/editing/video-remove-background with form data (INVENTORY §8-A 1–3). Each is
an alias row: its own request model (the canonical one plus 003's field names, marked
deprecated), routed as deprecated, normalised into the canonical operation's params and
validated again by the canonical model, so 004's limits and rules apply unchanged. Aliases never
become jobs of their own: the job is the canonical operation's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

from providers.base import Operation
from providers.bria import schema_rules

_LEGACY_DOC = {
    "image_url": "Deprecated (003): URL of the input image; use `image`.",
    "image_file": "Deprecated (003): base64 input image; use `image`.",
    "mask_url": "Deprecated (003): URL of the mask; use `mask`.",
    "mask_file": "Deprecated (003): base64 mask; use `mask`.",
    "blur_scale": "Deprecated (003): use `scale`.",
    "bg_prompt": "Deprecated (003): use `prompt`.",
    "force_rmbg": "Deprecated (003): use `force_background_detection`.",
    "enhance_ref_image": "Deprecated (003): use `enhance_ref_images`.",
    "ref_image_url": "Deprecated (003): use `ref_images`.",
    "ref_image_file": "Deprecated (003): use `ref_images`.",
    "content_moderation": "Deprecated (003): sets visual_input_content_moderation and visual_output_content_moderation.",
    "video_url": "Deprecated (003): URL of the input video; use `video`.",
}
_IGNORED_DOC = "Deprecated (003): 004 has no such field; ignored."


def legacy_model(canonical: type[BaseModel], ignored: tuple[str, ...] = ()) -> type[BaseModel]:
    """The alias's request model: ``canonical`` plus 003's names (deprecated); the canonical
    fields those names stand for become optional here (the canonical model requires them again)."""
    renames = {**schema_rules.LEGACY_FIELDS.get(canonical.__name__, {}),
               **{k: (v[0], None) for k, v in schema_rules.LEGACY_SPLIT.get(canonical.__name__, {}).items()}}
    fields: dict[str, Any] = {}
    for legacy, (target, _convert) in renames.items():
        info = canonical.model_fields[target]
        if info.is_required():
            fields[target] = (Any, Field(None, title=info.title, description=f"{info.description} "
                                         f"(or the deprecated {', '.join(k for k, v in renames.items() if v[0] == target)})"))
        if legacy == "content_moderation":
            kind: Any = bool | None
        elif legacy in ("ref_image_url", "ref_image_file"):
            kind = str | list[str] | None
        elif legacy in ("force_rmbg", "enhance_ref_image"):
            kind = bool | None
        elif legacy == "blur_scale":
            kind = int | None
        else:
            kind = str | None
        fields[legacy] = (kind, Field(None, description=_LEGACY_DOC.get(legacy), json_schema_extra={"deprecated": True}))
    for name in ignored:
        fields[name] = (Any, Field(None, description=_IGNORED_DOC, json_schema_extra={"deprecated": True}))
    return create_model(f"{canonical.__name__}Legacy", __base__=canonical,
                        __doc__=f"{canonical.__name__} with the field names of the older client examples (003).",
                        **fields)


def canonical_params(canonical: type[BaseModel]) -> Any:
    """Normaliser: alias params → the canonical request, validated by ``canonical`` (pydantic's
    ValidationError escapes; the API turns it into a 422)."""

    fields = canonical.model_fields

    def normalize(params: dict[str, Any]) -> dict[str, Any]:
        # Unset and default values are left out, so the canonical defaults apply (and are not
        # validated: expand-image's default prompt "" is below its own minLength).
        given = {k: v for k, v in params.items()
                 if v is not None and not (k in fields and not fields[k].is_required() and fields[k].default == v)}
        return canonical.model_validate(given).model_dump(mode="json")

    return normalize


def alias(op: Operation, path: str, ignored: tuple[str, ...] = (), body: str = "json") -> Operation:
    """A deprecated alias of ``op`` at ``path``: 003's field names too (``ignored`` ones accepted
    and dropped), normalised into ``op``'s params and validated by its model."""
    return Operation(name=f"{op.name}.legacy", provider="bria", method="POST", path=path,
                     request_model=legacy_model(op.request_model, ignored), kind=op.kind,
                     summary=f"{op.summary} (legacy path)", tags=op.tags, output=op.output, body=body,
                     deprecated=True, alias_of=op.name, normalize=canonical_params(op.request_model),
                     description=f"Deprecated alias of `{op.method} {op.path}` kept for older clients; "
                                 "same behaviour and limits.")
