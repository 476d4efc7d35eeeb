"""The Vision Studio API reference (seed 004) as the Bria schema tests read it: its request
schemas ($refs resolved), its enums in INVENTORY.md, and walks over JSON schemas. The reference
lives in the repo, under spec/."""

import json
import re
from pathlib import Path
from typing import Any

from providers.bria import schemas

REPO = Path(__file__).resolve().parents[2]
SEEDS = Path(__file__).resolve().parents[2] / "spec"
SEED_JSON = SEEDS / "vision-studio-endpoints.json"
INVENTORY = SEEDS / "INVENTORY.md"

if not SEED_JSON.is_file() or not INVENTORY.is_file():
    raise RuntimeError(
        f"spec files missing: {SEED_JSON} / {INVENTORY} (the repo's copy of the reference); "
        "these tests must not be skipped."
    )

ENDPOINTS = [
    e
    for e in json.loads(SEED_JSON.read_text(encoding="utf-8"))
    if e["path"].startswith(("/api/v1/bria/", "/api/v1/bria-lora/")) and e.get("request_schema")
]
GEN_IMAGE = ("POST", "/api/v1/bria/image/generation/generate-image")
GEN_IMAGE_SEED = next(e["request_schema"] for e in ENDPOINTS if (e["method"], e["path"]) == GEN_IMAGE)
Model = schemas.BriaGenerateImageRequest


# --------------------------------------------------------------------------- helpers
def inventory_enum(name: str) -> dict[str, Any]:
    """The JSON schema of an enum component, members from INVENTORY.md §6.2."""
    text = INVENTORY.read_text(encoding="utf-8")
    row = re.search(r"^\| `%s` \| ([^|]*)\|" % re.escape(name), text, re.M)
    assert row, f"component {name} not found in INVENTORY.md §6.2"
    return {"enum": re.findall(r'"([^"]*)"', row.group(1)), "title": name, "type": "string"}


def resolve(node: Any, lookup) -> Any:
    """Inline every {"$ref": ...}; sibling keywords (default, description) are kept beside it."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = lookup(node["$ref"])
            siblings = {k: resolve(v, lookup) for k, v in node.items() if k != "$ref"}
            return {"$ref->": resolve(target, lookup), **siblings}
        return {k: resolve(v, lookup) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, lookup) for v in node]
    return node


def seed_lookup(ref: str) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    assert ref.startswith(prefix), ref
    return inventory_enum(ref[len(prefix):])


def model_schema(model) -> dict[str, Any]:
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})
    return resolve(raw, lambda ref: defs[ref.split("/")[-1]])


def ids(e: dict[str, Any]) -> str:
    return f"{e['method']} {e['path']}"


LIMIT_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
              "minItems", "maxItems")


def walk(node: Any, path: str = ""):
    """Yield (path, dict) for every schema dict inside a property schema."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            if k not in ("examples", "default", "enum"):
                yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


