"""OpenAI's request models: the generated ones (exactly the reference's schemas), plus the rules
the reference states only in prose, each a 422 naming its field."""

from __future__ import annotations

from pydantic import ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from providers.openai import schemas_gen as G

GPTGenerateImageRequest = G.GPTGenerateImageRequest
GPTEditImageRequest = G.GPTEditImageRequest


def _missing(kind: str, message: str, field: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=None)


class GPTInpaintingRequest(G.GPTInpaintingRequest):
    __doc__ = G.GPTInpaintingRequest.__doc__

    @model_validator(mode="after")
    def _image_and_mask(self) -> "GPTInpaintingRequest":
        errors = []
        if not (self.image_url or self.image_file):
            errors.append(_missing("image_required", "image_url or image_file is required (image_url takes "
                                   "precedence over image_file)", "image_url"))
        if not self.inpaint_border_only and not (self.mask_url or self.mask_file):
            errors.append(_missing("mask_required", "mask_url or mask_file is required unless "
                                   "inpaint_border_only is true", "mask_url"))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self
