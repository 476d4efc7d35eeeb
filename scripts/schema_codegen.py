"""The code generation of scripts/gen_schemas.py: JSON-schema properties of the reference →
pydantic field declarations (types, constraints, defaults, ``format: uri`` aliases, enum
components), and one model's source. Anything it cannot reproduce exactly raises ``GenError``."""

from __future__ import annotations

import json
import keyword
import re
from typing import Any

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
