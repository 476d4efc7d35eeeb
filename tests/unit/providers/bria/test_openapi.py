"""Every /api/v1/bria/ endpoint of the reference (seed 004, machine-readable form) exists in the
app's OpenAPI document with the seed's method, path, body encoding, request fields, enums,
limits and defaults; and the legacy aliases of 003 are there, marked deprecated."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from core.settings import Settings

SEEDS = Path(__file__).resolve().parents[4] / "spec"
ALL = json.loads((SEEDS / "vision-studio-endpoints.json").read_text(encoding="utf-8"))
SEED = [e for e in ALL if e["path"].startswith("/api/v1/bria/")]
LORA_SEED = [e for e in ALL if e["path"].startswith("/api/v1/bria-lora/")]
INVENTORY = (SEEDS / "INVENTORY.md").read_text(encoding="utf-8")
FORM = {"/api/v1/bria/prompt/enhance-prompt"}
LEGACY_PATHS = [
    "/api/v1/bria/image/editing/expand-image", "/api/v1/bria/image/editing/inpaint",
    "/api/v1/bria/image/editing/blur-background", "/api/v1/bria/image/editing/generate-solid-background",
    "/api/v1/bria/image/editing/generate-background", "/api/v1/bria/image/editing/generate-product-shadow",
    "/api/v1/bria/image/editing/generate-product-background-by-text",
    "/api/v1/bria/image/editing/generate-product-background-by-image",
    "/api/v1/bria/image/editing/upscale-image", "/api/v1/bria/video/editing/video-remove-background",
]


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    settings = Settings(VISIONGATE_ENV="test", DATABASE_URL="sqlite:///unused.db")
    return create_app(settings).openapi()


def inventory_enum(name: str) -> dict[str, Any]:
    row = re.search(r"^\| `%s` \| ([^|]*)\|" % re.escape(name), INVENTORY, re.M)
    assert row, name
    return {"enum": re.findall(r'"([^"]*)"', row.group(1)), "title": name, "type": "string"}


def resolve(node: Any, lookup) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            siblings = {k: resolve(v, lookup) for k, v in node.items() if k != "$ref"}
            return {**resolve(lookup(node["$ref"]), lookup), **siblings}
        return {k: resolve(v, lookup) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, lookup) for v in node]
    return node


def test_the_seed_lists_25_bria_and_27_bria_lora_endpoints():
    assert len(SEED) == 25
    assert len(LORA_SEED) == 27


def _key(param: dict[str, Any]) -> tuple[str, str]:
    return param["in"], param["name"]


@pytest.mark.parametrize("endpoint", SEED + LORA_SEED, ids=lambda e: f"{e['method']} {e['path']}")
def test_endpoint_is_in_the_openapi_document_as_the_seed_says(openapi, endpoint):
    paths = openapi["paths"]
    assert endpoint["path"] in paths, endpoint["path"]
    operation = paths[endpoint["path"]].get(endpoint["method"].lower())
    assert operation is not None, f"{endpoint['method']} missing"
    assert operation["summary"] == endpoint["title"]
    assert not operation.get("deprecated", False)
    params = [{"name": p["name"], "in": p["in"], "type": p["schema"]["type"]}
              for p in operation.get("parameters", []) if p["in"] != "header"]
    # Same parameters (name, place, type). Their order is not compared: the seed lists
    # "Get Project Datasets"'s query parameters before its path parameter, FastAPI lists path
    # parameters first, and OpenAPI gives the order no meaning.
    assert sorted(params, key=_key) == sorted(endpoint["params"], key=_key)
    seed_schema = endpoint["request_schema"]
    if seed_schema is None:
        assert "requestBody" not in operation
        return
    content = operation["requestBody"]["content"]
    media_type = "application/x-www-form-urlencoded" if endpoint["path"] in FORM else "application/json"
    assert list(content) == [media_type]
    components = openapi["components"]["schemas"]
    mine = resolve(content[media_type]["schema"], lambda ref: components[ref.split("/")[-1]])
    seed = resolve(seed_schema, lambda ref: inventory_enum(ref.split("/")[-1]))
    assert mine["title"] == seed["title"]
    assert set(mine.get("required", [])) == set(seed.get("required", []))
    assert list(mine["properties"]) == list(seed["properties"])
    for name, prop in seed["properties"].items():
        assert mine["properties"][name] == prop, name  # types, enums, limits, defaults, formats
    assert mine == seed


def test_legacy_aliases_are_routed_and_deprecated(openapi):
    for path in LEGACY_PATHS:
        operation = openapi["paths"][path]["post"]
        assert operation["deprecated"] is True, path
        assert "Deprecated alias" in operation["description"]
    video = openapi["paths"]["/api/v1/bria/video/editing/video-remove-background"]["post"]
    assert list(video["requestBody"]["content"]) == ["application/x-www-form-urlencoded"]
    components = openapi["components"]["schemas"]
    legacy = components["BriaExpandImageRequestLegacy"]["properties"]
    assert legacy["image_url"]["deprecated"] is True and legacy["image_file"]["deprecated"] is True
    assert "image" not in components["BriaExpandImageRequestLegacy"].get("required", [])
