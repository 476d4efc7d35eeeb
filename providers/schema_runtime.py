"""Runtime shared by the generated request models (``providers/*/schemas_gen.py``).

scripts/gen_schemas.py writes one module of pydantic models per provider from the Vision Studio
API reference; those modules hold only declarations and import the behaviour they need from here:

* ``SeedModel``: the base of every generated request model. Unknown fields are ignored (the
  reference's schemas do not set ``additionalProperties: false``) and the JSON schema omits the
  ``"default": null`` of optional fields, as the reference does.
* ``uri_type(*schemes)``: the type of a ``format: uri`` string. It keeps the client's string
  unchanged (pydantic's ``AnyUrl`` would normalise it, e.g. add a trailing slash), accepts an
  absolute URL of one of ``schemes`` only, checks ``data:`` URLs (where allowed) for well-formed
  base64, and emits ``{"type": "string", "minLength": 1, "format": "uri"}`` as the reference does.

Errors are pydantic errors (``url_parsing`` / ``url_scheme``, the types pydantic's own URL types
use), so FastAPI reports them as 422 with the field's location.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, WithJsonSchema
from pydantic_core import PydanticCustomError, Url
from pydantic_core import ValidationError as _CoreValidationError

__all__ = [
    "SeedModel",
    "drop_null_defaults",
    "expected_schemes",
    "uri_checker",
    "uri_type",
    "url_error",
]

URI_JSON_SCHEMA = {"type": "string", "minLength": 1, "format": "uri"}

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_DATA_URL_RE = re.compile(r"^data:([^,]*),(.+)$", re.DOTALL)
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def drop_null_defaults(schema: dict[str, Any], cls: type) -> None:
    """``json_schema_extra`` hook: optional fields default to None, but the reference prints no
    ``"default": null`` for them."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class SeedModel(BaseModel):
    """Base of every generated request model."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=drop_null_defaults)


# ------------------------------------------------------------------ `format: uri` strings
def url_error(reason: str) -> PydanticCustomError:
    return PydanticCustomError("url_parsing", "Input should be a valid URL, {error}", {"error": reason})


def expected_schemes(schemes: tuple[str, ...]) -> str:
    """``'http' or 'https'``: the wording of pydantic's own ``url_scheme`` error."""
    quoted = [f"'{s}'" for s in sorted(schemes)]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def uri_checker(schemes: tuple[str, ...]) -> Callable[[str], str]:
    """A validator that returns the string unchanged when it is an absolute URL of ``schemes``."""
    allowed = tuple(s.lower() for s in schemes)

    def check(value: str) -> str:
        if value != value.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise url_error("leading/trailing whitespace or control characters are not allowed")
        match = _SCHEME_RE.match(value)
        if match is None:
            raise url_error("relative URL without a base")
        scheme = match.group(1).lower()
        if scheme not in allowed:
            raise PydanticCustomError(
                "url_scheme", "URL scheme should be {expected_schemes}", {"expected_schemes": expected_schemes(allowed)}
            )
        if scheme == "data":
            data = _DATA_URL_RE.match(value)
            if data is None:
                raise url_error("a data URL must look like data:<media type>[;base64],<data>")
            if data.group(1).lower().endswith(";base64"):
                payload = data.group(2)
                try:
                    if not _BASE64_RE.match(payload):
                        raise binascii.Error
                    base64.b64decode(payload, validate=True)
                except (binascii.Error, ValueError):
                    raise url_error("the data URL payload is not valid base64") from None
            return value
        if not value[match.end():].startswith("//"):
            raise url_error("expected '//' after the scheme")
        try:
            Url(value)
        except _CoreValidationError as exc:
            msg = exc.errors()[0]["msg"]
            raise url_error(msg.removeprefix("Input should be a valid URL, ")) from None
        return value  # unchanged: no normalisation (pydantic's AnyUrl would add a trailing slash)

    return check


def uri_type(*schemes: str) -> Any:
    """The annotated ``str`` type of a ``format: uri`` field accepting ``schemes``."""
    if not schemes:
        raise ValueError("uri_type needs at least one scheme")
    return Annotated[
        str,
        AfterValidator(uri_checker(schemes)),
        WithJsonSchema(dict(URI_JSON_SCHEMA)),
    ]
