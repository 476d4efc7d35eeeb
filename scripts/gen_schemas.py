#!/usr/bin/env python3
"""Generate ``providers/bria/schemas_gen.py`` from the Vision Studio API reference.

Input: ``vision-studio-endpoints.json`` (the machine-readable form of seed 004: a list of
endpoints with ``method``, ``path`` and ``request_schema``). Output: one pydantic v2 model per
request schema of every ``/api/v1/bria/`` and ``/api/v1/bria-lora/`` endpoint, written so that
``Model.model_json_schema()`` (and FastAPI's OpenAPI) reproduce the seed's JSON schema.

Usage (from the repo root)::

    .venv/bin/python scripts/gen_schemas.py [SEED_JSON] [--output PATH] [--check]

``SEED_JSON`` defaults to ``spec/vision-studio-endpoints.json`` in the repo
root; ``--output`` defaults to ``providers/bria/schemas_gen.py``; ``--check`` writes nothing and
exits 1 when the committed file differs from what would be generated.

The generator fails loudly on anything it cannot reproduce exactly (an unknown JSON-schema
keyword, an enum component whose members it does not know, two different schemas with one title),
so a seed change can never silently produce a looser model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script, or loaded from its path (the tests): its helper beside it
    sys.path.insert(0, str(HERE))

from schema_codegen import COMPONENT_ENUMS, Ctx, GenError, lit, member_name, render_model  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SEED = REPO_ROOT / "spec" / "vision-studio-endpoints.json"
DEFAULT_OUTPUT = REPO_ROOT / "providers" / "bria" / "schemas_gen.py"
PATH_PREFIXES = ("/api/v1/bria/", "/api/v1/bria-lora/")

PRELUDE = '''
import base64
import binascii
import re
from enum import StrEnum
from typing import Any, {typing_names}

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError, Url
from pydantic_core import ValidationError as _CoreValidationError


def _drop_null_defaults(schema: dict[str, Any], cls: type) -> None:
    # Optional fields default to None, but the seed prints no "default": null for them.
    for prop in schema.get("properties", {{}}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class SeedModel(BaseModel):
    """Base of every generated request model."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_drop_null_defaults)


# ------------------------------------------------------------------ `format: uri` strings
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_DATA_URL_RE = re.compile(r"^data:([^,]*),(.+)$", re.DOTALL)
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/]*={{0,2}}$")


def _url_error(reason: str) -> PydanticCustomError:
    return PydanticCustomError("url_parsing", "Input should be a valid URL, {{error}}", {{"error": reason}})


def _expected(schemes: tuple[str, ...]) -> str:
    quoted = [f"'{{s}}'" for s in sorted(schemes)]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _uri_checker(schemes: tuple[str, ...]):
    def check(value: str) -> str:
        if value != value.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise _url_error("leading/trailing whitespace or control characters are not allowed")
        match = _SCHEME_RE.match(value)
        if match is None:
            raise _url_error("relative URL without a base")
        scheme = match.group(1).lower()
        if scheme not in schemes:
            raise PydanticCustomError(
                "url_scheme", "URL scheme should be {{expected_schemes}}", {{"expected_schemes": _expected(schemes)}}
            )
        if scheme == "data":
            data = _DATA_URL_RE.match(value)
            if data is None:
                raise _url_error("a data URL must look like data:<media type>[;base64],<data>")
            if data.group(1).lower().endswith(";base64"):
                payload = data.group(2)
                try:
                    if not _BASE64_RE.match(payload):
                        raise binascii.Error
                    base64.b64decode(payload, validate=True)
                except (binascii.Error, ValueError):
                    raise _url_error("the data URL payload is not valid base64") from None
            return value
        if not value[match.end():].startswith("//"):
            raise _url_error("expected '//' after the scheme")
        try:
            Url(value)
        except _CoreValidationError as exc:
            msg = exc.errors()[0]["msg"]
            raise _url_error(msg.removeprefix("Input should be a valid URL, ")) from None
        return value  # unchanged: no normalisation (pydantic's AnyUrl would add a trailing slash)

    return check


def _uri_type(*schemes: str) -> Any:
    return Annotated[
        str,
        AfterValidator(_uri_checker(schemes)),
        WithJsonSchema({{"type": "string", "minLength": 1, "format": "uri"}}),
    ]
'''


def render(seed_path: Path | str = DEFAULT_SEED) -> str:
    seed_path = Path(seed_path)
    raw = seed_path.read_bytes()
    endpoints = json.loads(raw)
    selected = [
        e for e in endpoints
        if e["path"].startswith(PATH_PREFIXES) and e.get("request_schema") is not None
    ]
    if not selected:
        raise GenError(f"{seed_path}: no Bria endpoint with a request schema")

    ctx = Ctx()
    ctx.use("Annotated")
    by_title: dict[str, dict[str, Any]] = {}
    models: list[str] = []
    mapping: list[tuple[str, str, str]] = []
    for e in selected:
        schema = e["request_schema"]
        title = schema.get("title")
        if not title:
            raise GenError(f"{e['method']} {e['path']}: request schema without a title")
        if title in by_title:
            if by_title[title] != schema:
                raise GenError(f"two different request schemas are titled {title!r}")
        else:
            by_title[title] = schema
            models.append(render_model(schema, ctx))
        key = (e["method"].upper(), e["path"])
        if key in [(m, p) for m, p, _ in mapping]:
            raise GenError(f"duplicate endpoint {key}")
        mapping.append((key[0], key[1], title))

    header = f'''# GENERATED FILE - DO NOT EDIT.
#
# Generated by scripts/gen_schemas.py from {seed_path.name}, the machine-readable form of
# the Vision Studio API reference (seed 004); seed sha256:
# {hashlib.sha256(raw).hexdigest()}
# Regenerate from the repo root with:
#
#     .venv/bin/python scripts/gen_schemas.py [spec/vision-studio-endpoints.json]
#
# tests/unit/test_bria_schemas.py fails when this file differs from the generator's output.
# Prose-only rules of 004 (conditional requirements, base64 checks) are NOT here: they live in
# providers/bria/schemas.py, which re-exports these models; import from there.
#
# Decisions:
# * Extra fields: the seed's schemas do not set additionalProperties: false, so unknown fields
#   are ignored (pydantic/FastAPI default, stated explicitly as extra="ignore"), not rejected.
# * `format: uri`: a plain str type (HttpUri) that keeps the client's string unchanged (pydantic's
#   AnyUrl would normalise it, e.g. add a trailing slash), validates an absolute http(s) URL
#   (other schemes only where the seed's examples show them, e.g. data: for ref_images) and
#   emits {{"type": "string", "minLength": 1, "format": "uri"}}.
# * Enums: `$ref` components (ControlnetType, ...) are StrEnum classes named after the component,
#   so OpenAPI shows them as components; members come from INVENTORY.md §6.2 because the seed
#   prints only "Type: string". Inline enums/consts are Literal[...], as in the seed.
# * Optional fields default to None; the schema omits "default": null, as the seed does.
'''
    parts = [header, "\n"]
    typing_names = ", ".join(sorted(ctx.typing_names))
    parts.append(PRELUDE.format(typing_names=typing_names).lstrip("\n"))
    parts.append("\n\n")
    for schemes, alias in sorted(ctx.uri_types.items(), key=lambda kv: kv[1]):
        parts.append(f"{alias} = _uri_type({', '.join(lit(s) for s in schemes)})\n")
    parts.append("\n\n# ------------------------------------------------------------------ enum components\n")
    for name in sorted(ctx.components):
        parts.append(f"class {name}(StrEnum):\n")
        for value in COMPONENT_ENUMS[name]:
            parts.append(f"    {member_name(value)} = {lit(value)}\n")
        parts.append("\n\n")
    parts.append("# ------------------------------------------------------------------ request models\n")
    parts.append("\n\n".join(models))
    parts.append("\n\n# (method, path) -> request model\n")
    parts.append("REQUEST_MODELS: dict[tuple[str, str], type[BaseModel]] = {\n")
    for method, path, title in mapping:
        parts.append(f"    ({lit(method)}, {lit(path)}): {title},\n")
    parts.append("}\n")
    names = ["SeedModel", *sorted(set(ctx.uri_types.values())), *sorted(ctx.components),
             *by_title.keys(), "REQUEST_MODELS"]
    parts.append("\n__all__ = [\n" + "".join(f"    {lit(n)},\n" for n in names) + "]\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seed", nargs="?", default=str(DEFAULT_SEED), help="vision-studio-endpoints.json")
    ap.add_argument("--output", default=str(DEFAULT_OUTPUT))
    ap.add_argument("--check", action="store_true", help="exit 1 if the output file is stale")
    args = ap.parse_args(argv)
    try:
        text = render(args.seed)
    except (GenError, OSError, ValueError, KeyError) as exc:
        print(f"gen_schemas: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else None
        if current != text:
            print(f"gen_schemas: {out} is stale; regenerate it", file=sys.stderr)
            return 1
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
