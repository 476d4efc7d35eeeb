#!/usr/bin/env python3
"""Generate each provider's ``schemas_gen.py`` from the Vision Studio API reference.

Input: ``vision-studio-endpoints.json`` (the machine-readable form of seed 004: a list of
endpoints with ``method``, ``path`` and ``request_schema``). Output, per provider of ``PROVIDERS``:
one pydantic v2 model per request schema of every endpoint under the provider's path prefixes,
written so that ``Model.model_json_schema()`` (and FastAPI's OpenAPI) reproduce the seed's JSON
schema. The generated modules hold declarations only; their behaviour (URL checks, the base model)
is imported from ``providers/schema_runtime.py``.

Usage (from the repo root)::

    .venv/bin/python scripts/gen_schemas.py --provider NAME [--provider NAME ...] [--output PATH]
    .venv/bin/python scripts/gen_schemas.py --all            # also: make schemas
    .venv/bin/python scripts/gen_schemas.py --all --check

``--provider`` writes that provider's file (``--output`` overrides the path of a single provider);
``--all`` regenerates every provider whose file has been written (a provider of the table joins
``--all`` once ``--provider NAME`` has written its file). ``--check`` writes nothing and exits 1
when a file is missing or differs from what would be generated. ``--seed PATH`` (or a positional
path) reads another copy of the reference; the default is ``spec/vision-studio-endpoints.json``.

The generator fails loudly (exit 2) on anything it cannot reproduce exactly (an unknown
JSON-schema keyword, an enum component whose members it does not know, two different schemas with
one title), so a seed change can never silently produce a looser model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from schema_render import GenError, Rendered, render_module  # noqa: E402

__all__ = ["COMPONENT_ENUMS", "DEFAULT_SEED", "PROVIDERS", "GenError", "Provider", "main", "render",
           "render_provider", "select", "written_providers"]

REPO_ROOT = _HERE.parent
DEFAULT_SEED = REPO_ROOT / "spec" / "vision-studio-endpoints.json"


class Provider(NamedTuple):
    prefixes: tuple[str, ...]  # request paths the provider serves (each ends with "/")
    output: str  # the generated module, relative to the repo root
    rules: str | None = None  # hand-written module adding 004's prose-only rules, if any


PROVIDERS: dict[str, Provider] = {
    "bria": Provider(("/api/v1/bria/", "/api/v1/bria-lora/"), "providers/bria/schemas_gen.py",
                     rules="providers/bria/schemas.py"),
    "openai": Provider(("/api/v1/openai/",), "providers/openai/schemas_gen.py"),
    "prompt": Provider(("/api/v1/prompt/",), "providers/prompt/schemas_gen.py"),
    "caption": Provider(("/api/v1/caption/",), "providers/caption/schemas_gen.py"),
    # In the table so that `--provider NAME` is all it takes; not generated yet (their enum and
    # object components are not in COMPONENT_ENUMS, so the generator stops on them).
    "google": Provider(("/api/v1/google-vision/",), "providers/google/schemas_gen.py"),
    "firefly": Provider(("/api/v1/firefly/",), "providers/firefly/schemas_gen.py"),
    "runway": Provider(("/api/v1/runway/",), "providers/runway/schemas_gen.py"),
}

# Enum components referenced as ``$ref: #/components/schemas/X``. The seed JSON does not carry
# their members (004's "Schemas" section prints them as "Type: string"); the members below are
# exactly those of INVENTORY.md §6.2 (taken there from 004's docstrings and schema examples), in
# its order. Shared by every provider: one component name, one member list.
COMPONENT_ENUMS: dict[str, list[str]] = {
    # Bria
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
    # prompt, caption: 004 docstrings ("openai" or "gemini"; the caption modes)
    "LlmProvider": ["openai", "gemini"],
    "ImageCaptionMode": ["simple", "expert", "image_tagging"],
    "VideoCaptionMode": [
        "simple", "expert", "detailed", "tagging", "segment_timestamps", "segment_timestamps_descriptive",
        "segment_timestamps_tags",
    ],
    # OpenAI: 004 docstring of generate-image ("medium, high, auto"; "transparent, auto")
    "GPTImageQuality": ["medium", "high", "auto"],
    "GPTImageBackground": ["transparent", "auto"],
}


def select(endpoints: list[dict[str, Any]], provider: Provider) -> list[dict[str, Any]]:
    """The provider's endpoints that take a request body, in the seed's order."""
    return [e for e in endpoints if e["path"].startswith(provider.prefixes) and e.get("request_schema") is not None]


def _comment(text: str, bullet: bool = False) -> str:
    """``text`` as ``#`` comment lines of at most 99 characters (a ``* `` bullet if asked)."""
    first, rest = ("# * ", "#   ") if bullet else ("# ", "# ")
    return textwrap.fill(text, width=99, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) + "\n"


def header(name: str, provider: Provider, seed_name: str, sha256: str, rendered: Rendered) -> str:
    prefixes = ", ".join(f"{p}*" for p in provider.prefixes)
    if provider.rules:
        rules = ("Prose-only rules of 004 (conditional requirements, base64 checks) are NOT here: they live "
                 f"in {provider.rules}, which re-exports these models; import from there.")
    else:
        rules = ("Prose-only rules of 004 (conditional requirements, base64 checks) are NOT enforced here; a "
                 "hand-written module of the provider adds them by subclassing (as providers/bria/schemas.py "
                 "does).")
    decisions = [
        "Behaviour is imported from providers/schema_runtime.py (the SeedModel base"
        + (", the URL type" if rendered.uri_types else "") + "); this file holds declarations only.",
        "Extra fields: the seed's schemas do not set additionalProperties: false, so unknown fields are "
        'ignored (pydantic/FastAPI default, stated explicitly as extra="ignore"), not rejected.',
    ]
    if rendered.uri_types:
        decisions.append(
            f"`format: uri`: a plain str type ({', '.join(rendered.uri_types)}) that keeps the client's "
            "string unchanged (pydantic's AnyUrl would normalise it, e.g. add a trailing slash), validates "
            "an absolute http(s) URL (other schemes only where the seed's examples show them, e.g. data:) "
            'and emits {"type": "string", "minLength": 1, "format": "uri"}.')
    if rendered.components:
        decisions.append(
            f"Enums: `$ref` components ({', '.join(rendered.components)}) are StrEnum classes named after "
            "the component, so OpenAPI shows them as components; members come from INVENTORY.md §6.2 "
            'because the seed prints only "Type: string". Inline enums/consts are Literal[...], as in the '
            "seed.")
    decisions.append('Optional fields default to None; the schema omits "default": null, as the seed does.')
    return (
        "# GENERATED FILE - DO NOT EDIT.\n"
        "#\n"
        + _comment(f"Request models of the {name} provider ({prefixes}), generated by scripts/gen_schemas.py "
                   f"from {seed_name}, the machine-readable form of the Vision Studio API reference "
                   "(seed 004); seed sha256:")
        + f"# {sha256}\n"
        "# Regenerate from the repo root with `make schemas`, or:\n"
        "#\n"
        f"#     .venv/bin/python scripts/gen_schemas.py --provider {name}\n"
        "#\n"
        "# tests/unit/test_request_models.py fails when this file differs from the generator's output.\n"
        + _comment(rules)
        + "#\n"
        "# Decisions:\n"
        + "".join(_comment(d, bullet=True) for d in decisions)
    )


def render_provider(name: str, seed_path: Path | str = DEFAULT_SEED) -> tuple[str, Rendered]:
    """The text of ``name``'s generated module, and what it declares."""
    if name not in PROVIDERS:
        raise GenError(f"unknown provider {name!r} (known: {', '.join(PROVIDERS)})")
    provider = PROVIDERS[name]
    seed_path = Path(seed_path)
    raw = seed_path.read_bytes()
    endpoints = json.loads(raw)
    selected = select(endpoints, provider)
    if not selected:
        raise GenError(f"{seed_path}: no {name} endpoint ({', '.join(provider.prefixes)}) with a request schema")
    try:
        rendered = render_module(selected, COMPONENT_ENUMS)
    except GenError as exc:
        raise GenError(f"{name}: {exc}") from None
    head = header(name, provider, seed_path.name, hashlib.sha256(raw).hexdigest(), rendered)
    return head + "\n" + rendered.body, rendered


def render(name: str, seed_path: Path | str = DEFAULT_SEED) -> str:
    """The text of ``name``'s generated module."""
    return render_provider(name, seed_path)[0]


def written_providers(root: Path = REPO_ROOT) -> list[str]:
    """Providers of the table whose generated module exists (what ``--all`` covers)."""
    return [name for name, p in PROVIDERS.items() if (root / p.output).is_file()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seed_arg", nargs="?", metavar="SEED_JSON", help="vision-studio-endpoints.json")
    ap.add_argument("--seed", help="vision-studio-endpoints.json (default: spec/ of the repo)")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--provider", action="append", choices=list(PROVIDERS), metavar="NAME",
                       help=f"one of: {', '.join(PROVIDERS)} (repeatable)")
    which.add_argument("--all", action="store_true", help="every provider whose file has been written")
    ap.add_argument("--output", help="output path (only with a single --provider)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is missing or stale")
    args = ap.parse_args(argv)
    if args.seed and args.seed_arg:
        ap.error("give the seed either positionally or with --seed, not both")
    seed = args.seed or args.seed_arg or str(DEFAULT_SEED)
    names = list(dict.fromkeys(args.provider)) if args.provider else written_providers()
    if args.output and len(names) != 1:
        ap.error("--output needs exactly one --provider")
    if not names:
        print("gen_schemas: no provider's file has been written yet; use --provider NAME", file=sys.stderr)
        return 2
    texts: dict[str, str] = {}
    for name in names:  # render everything before writing anything
        try:
            texts[name] = render(name, seed)
        except (GenError, OSError, ValueError, KeyError) as exc:
            print(f"gen_schemas: {exc}", file=sys.stderr)
            return 2
    status = 0
    for name, text in texts.items():
        out = Path(args.output) if args.output else REPO_ROOT / PROVIDERS[name].output
        if args.check:
            current = out.read_text(encoding="utf-8") if out.is_file() else None
            if current != text:
                what = "is missing" if current is None else "is stale"
                print(f"gen_schemas: {out} {what}; regenerate it with --provider {name}", file=sys.stderr)
                status = 1
            continue
        if not out.parent.is_dir():
            print(f"gen_schemas: {out.parent} does not exist (create the provider's package first)", file=sys.stderr)
            return 2
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            out.write_text(text, encoding="utf-8")
            print(f"wrote {out}")
        else:
            print(f"unchanged {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
