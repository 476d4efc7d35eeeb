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
import keyword
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SEED = REPO_ROOT / "spec" / "vision-studio-endpoints.json"
DEFAULT_OUTPUT = REPO_ROOT / "providers" / "bria" / "schemas_gen.py"
PATH_PREFIXES = ("/api/v1/bria/", "/api/v1/bria-lora/")

# Enum components referenced as ``$ref: #/components/schemas/X``. The seed JSON does not carry
# their members (004's "Schemas" section prints them as "Type: string"); the members below are
# those of INVENTORY.md §6.2 (taken there from 004's docstrings and schema examples).
COMPONENT_ENUMS: dict[str, list[str]] = {
    "ControlnetType": ["controlnet_canny", "controlnet_depth", "controlnet_recoloring", "controlnet_color_grid"],
    "ImagePromptMode": ["regular", "style_only"],
    "MaskType": ["manual", "automatic", "border_only"],
    "ManualPlacement": [
        "upper_left", "upper_right", "bottom_left", "bottom_right", "right_center",
        "left_center", "upper_center", "bottom_center", "center_vertical", "center_horizontal",
    ],
    "PlacementType": [
        "original", "automatic", "manual_placement", "manual_padding", "custom_coordinates",
        "automatic_aspect_ratio",
    ],
    "EnhanceResolution": ["1MP", "2MP", "4MP"],
}

REF_PREFIX = "#/components/schemas/"
DEFAULT_URI_SCHEMES = ("http", "https")
PROPERTY_KEYS = {
    "type", "title", "description", "default", "examples", "anyOf", "$ref", "enum", "const",
    "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "format", "items", "prefixItems", "minItems", "maxItems",
}
OBJECT_KEYS = {"type", "title", "description", "properties", "required"}
_MISSING = object()


class GenError(Exception):
    pass


# --------------------------------------------------------------------------- literals
def lit(value: Any) -> str:
    """A Python literal for a JSON value (strings in double quotes, deterministic)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(lit(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{lit(k)}: {lit(v)}" for k, v in value.items()) + "}"
    raise GenError(f"cannot express {value!r} as a literal")


def num(value: float | int, integer: bool) -> str:
    if integer:
        if float(value) != int(value):
            raise GenError(f"non-integral bound {value} on an integer")
        return repr(int(value))
    return repr(float(value))


def member_name(value: str) -> str:
    name = re.sub(r"\W", "_", value)
    if not name or name[0].isdigit() or keyword.iskeyword(name) or name.startswith("_"):
        name = "v_" + name
    return name


def uri_alias(schemes: tuple[str, ...]) -> str:
    extra = [s for s in schemes if s not in DEFAULT_URI_SCHEMES]
    return "Http" + "".join("Or" + s.capitalize() for s in extra) + "Uri"


def example_schemes(examples: Any) -> set[str]:
    found: set[str] = set()
    stack = [examples]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", item)
            if m:
                found.add(m.group(1).lower())
    return found


# --------------------------------------------------------------------------- type mapping
class Ctx:
    def __init__(self) -> None:
        self.components: list[str] = []
        self.uri_types: dict[tuple[str, ...], str] = {}
        self.typing_names: set[str] = set()

    def use(self, *names: str) -> None:
        self.typing_names.update(names)

    def component(self, ref: str) -> str:
        if not ref.startswith(REF_PREFIX):
            raise GenError(f"unsupported $ref {ref!r}")
        name = ref[len(REF_PREFIX):]
        if name not in COMPONENT_ENUMS:
            raise GenError(f"component {name!r} is referenced but its members are unknown: add it to COMPONENT_ENUMS")
        if name not in self.components:
            self.components.append(name)
        return name

    def uri(self, schemes: tuple[str, ...]) -> str:
        return self.uri_types.setdefault(schemes, uri_alias(schemes))


def constraints(s: dict[str, Any], where: str) -> list[str]:
    """Field(...) keyword arguments for the validation keywords of one (non-union) schema."""
    out: list[str] = []
    t = s.get("type")
    integer = t == "integer"
    for key, kw in (("minimum", "ge"), ("maximum", "le"), ("exclusiveMinimum", "gt"), ("exclusiveMaximum", "lt")):
        if key in s:
            if t not in ("integer", "number"):
                raise GenError(f"{where}: {key} on type {t}")
            out.append(f"{kw}={num(s[key], integer)}")
    for key, kw in (("minLength", "min_length"), ("maxLength", "max_length")):
        if key in s and s.get("format") != "uri":
            if t != "string":
                raise GenError(f"{where}: {key} on type {t}")
            out.append(f"{kw}={int(s[key])}")
    if t == "array" and "prefixItems" not in s:
        for key, kw in (("minItems", "min_length"), ("maxItems", "max_length")):
            if key in s:
                out.append(f"{kw}={int(s[key])}")
    return out


def base_type(s: dict[str, Any], ctx: Ctx, where: str, schemes: tuple[str, ...]) -> str:
    """The bare Python type of one non-union schema, without its Field constraints."""
    unknown = set(s) - PROPERTY_KEYS
    if unknown:
        raise GenError(f"{where}: unsupported keywords {sorted(unknown)}")
    if "$ref" in s:
        return ctx.component(s["$ref"])
    t = s.get("type")
    if "const" in s:
        ctx.use("Literal")
        return f"Literal[{lit(s['const'])}]"
    if "enum" in s:
        ctx.use("Literal")
        return "Literal[" + ", ".join(lit(v) for v in s["enum"]) + "]"
    if t == "string":
        fmt = s.get("format")
        if fmt is None:
            return "str"
        if fmt != "uri":
            raise GenError(f"{where}: unsupported format {fmt!r}")
        if s.get("minLength") != 1 or "maxLength" in s:
            raise GenError(f"{where}: uri strings are expected to carry exactly minLength 1")
        return ctx.uri(schemes)
    if t == "integer":
        return "int"
    if t == "number":
        return "float"
    if t == "boolean":
        return "bool"
    if t == "null":
        return "None"
    if t == "array":
        if "prefixItems" in s:
            items = s["prefixItems"]
            n = len(items)
            if s.get("minItems") != n or s.get("maxItems") != n or "items" in s:
                raise GenError(f"{where}: prefixItems must be a closed tuple (minItems = maxItems = {n})")
            return "tuple[" + ", ".join(type_expr(i, ctx, f"{where}[{k}]", schemes) for k, i in enumerate(items)) + "]"
        if "items" not in s:
            raise GenError(f"{where}: array without items")
        return f"list[{type_expr(s['items'], ctx, where + '[]', schemes)}]"
    raise GenError(f"{where}: unsupported schema {s!r}")


def type_expr(s: dict[str, Any], ctx: Ctx, where: str, schemes: tuple[str, ...]) -> str:
    """A self-contained type (constraints inside ``Annotated``), used for union members and items."""
    if "anyOf" in s:
        ctx.use("Union")
        return "Union[" + ", ".join(type_expr(m, ctx, where, schemes) for m in s["anyOf"]) + "]"
    bare = base_type(s, ctx, where, schemes)
    cons = constraints(s, where)
    if cons:
        ctx.use("Annotated")
        return f"Annotated[{bare}, Field({', '.join(cons)})]"
    return bare


def default_expr(prop: dict[str, Any], py_type: str, ctx: Ctx) -> str:
    value = prop["default"]
    refs = [prop["$ref"]] if "$ref" in prop else [m["$ref"] for m in prop.get("anyOf", []) if "$ref" in m]
    if refs and isinstance(value, str):
        name = ctx.component(refs[0])
        if value not in COMPONENT_ENUMS[name]:
            raise GenError(f"default {value!r} is not a member of {name}")
        return f"{name}.{member_name(value)}"
    if isinstance(value, list) and py_type.startswith("tuple["):
        return "(" + ", ".join(lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return lit(value)


# --------------------------------------------------------------------------- rendering
def docstring(text: str, indent: str) -> str:
    if '"""' in text or "\\" in text or text.endswith('"') or text != text.strip():
        return indent + lit(text)
    lines = text.split("\n")
    body = lines[0] + "".join("\n" + (indent + ln if ln else "") for ln in lines[1:])
    return f'{indent}"""{body}"""'


def render_field(name: str, prop: dict[str, Any], required: bool, ctx: Ctx, where: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise GenError(f"{where}: field name {name!r} needs an alias (not supported)")
    schemes = DEFAULT_URI_SCHEMES
    has_plain_string = any(m.get("type") == "string" and "format" not in m for m in prop.get("anyOf", []))
    if not has_plain_string:
        extra = sorted(example_schemes(prop.get("examples", [])) - set(DEFAULT_URI_SCHEMES))
        schemes = DEFAULT_URI_SCHEMES + tuple(extra)
    kwargs: list[str] = []
    if "anyOf" in prop:
        for key in prop:
            if key not in ("anyOf", "title", "description", "default", "examples"):
                raise GenError(f"{where}: keyword {key!r} beside anyOf")
        py_type = type_expr({"anyOf": prop["anyOf"]}, ctx, where, schemes)
    else:
        py_type = base_type(prop, ctx, where, schemes)
        kwargs += constraints(prop, where)
    if "default" in prop:
        if required:
            raise GenError(f"{where}: required field with a default")
        if prop["default"] is None:
            raise GenError(f"{where}: explicit null default (the base model drops null defaults from the schema)")
        first = default_expr(prop, py_type, ctx)
    elif required:
        first = "..."
    else:
        if "null" not in [m.get("type") for m in prop.get("anyOf", [])]:
            raise GenError(f"{where}: optional, non-nullable field without a default")
        first = "None"
    for key in ("title", "description", "examples"):
        if key in prop:
            kwargs.append(f"{key}={lit(prop[key])}")
    args = "".join(f"        {a},\n" for a in [first, *kwargs])
    return f"    {name}: {py_type} = Field(\n{args}    )\n"


def render_model(schema: dict[str, Any], ctx: Ctx) -> str:
    title = schema["title"]
    if not title.isidentifier():
        raise GenError(f"schema title {title!r} is not a valid class name")
    unknown = set(schema) - OBJECT_KEYS
    if unknown or schema.get("type") != "object":
        raise GenError(f"{title}: unsupported object schema keywords {sorted(unknown)}")
    required = set(schema.get("required", []))
    if required - set(schema["properties"]):
        raise GenError(f"{title}: required names unknown properties {sorted(required - set(schema['properties']))}")
    out = [f"class {title}(SeedModel):\n"]
    if "description" in schema:
        out.append(docstring(schema["description"], "    ") + "\n")
    fields = [render_field(name, prop, name in required, ctx, f"{title}.{name}")
              for name, prop in schema["properties"].items()]
    if not fields:
        raise GenError(f"{title}: no properties")
    out.append(("\n" if "description" in schema else "") + "\n".join(fields))
    return "".join(out)


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
