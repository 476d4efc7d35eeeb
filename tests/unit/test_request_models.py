"""Every generated request model against the Vision Studio API reference (seed 004).

For every provider whose ``schemas_gen.py`` scripts/gen_schemas.py has written (at least bria,
openai, prompt and caption):

* its models cover every endpoint under the provider's path prefixes that takes a body;
* each model's JSON schema equals the seed's request schema ($refs resolved, enum members from
  INVENTORY.md §6.2): the generated model and the one the rest of the code uses (Bria's
  providers/bria/schemas.py adds 004's prose rules by subclassing);
* Python defaults equal the seed's; served together through FastAPI, every model and enum
  component is a component named exactly as in the seed;
* the committed files are exactly the generator's output and hold declarations only (their
  behaviour comes from providers/schema_runtime.py);
* the generator fails loudly on anything it cannot reproduce.

The reference lives in the repo, under spec/.
"""

from __future__ import annotations

import ast
import enum
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "spec"
SEED_JSON = SEEDS / "vision-studio-endpoints.json"
INVENTORY = SEEDS / "INVENTORY.md"

if not SEED_JSON.is_file() or not INVENTORY.is_file():
    raise RuntimeError(
        f"spec files missing: {SEED_JSON} / {INVENTORY} (the repo's copy of the reference); "
        "these tests must not be skipped."
    )


def load_generator():
    name = "gen_schemas_under_test"
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "gen_schemas.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gen = load_generator()
SEED = json.loads(SEED_JSON.read_text(encoding="utf-8"))
REQUIRED_PROVIDERS = {"bria", "openai", "prompt", "caption"}
WRITTEN = gen.written_providers()
# The module the rest of the code imports, where it is not the generated one.
PUBLIC_MODULES = {"bria": "providers.bria.schemas"}


def module_name(provider: str) -> str:
    return gen.PROVIDERS[provider].output.removesuffix(".py").replace("/", ".")


def generated(provider: str):
    return importlib.import_module(module_name(provider))


def public(provider: str):
    return importlib.import_module(PUBLIC_MODULES.get(provider, module_name(provider)))


def endpoints(provider: str) -> list[dict[str, Any]]:
    return gen.select(SEED, gen.PROVIDERS[provider])


CASES = [(provider, e) for provider in WRITTEN for e in endpoints(provider)]


def case_id(case) -> str:
    provider, e = case
    return f"{provider}: {e['method']} {e['path']}"


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


def refs_of(schemas: list[dict[str, Any]]) -> set[str]:
    return set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(schemas)))


# --------------------------------------------------------------------------- the provider table
def test_every_required_provider_is_generated():
    assert REQUIRED_PROVIDERS <= set(WRITTEN), WRITTEN


def test_provider_table_covers_every_endpoint_with_a_body_exactly_once():
    for e in SEED:
        if e.get("request_schema") is None:
            continue
        owners = [name for name, p in gen.PROVIDERS.items() if e["path"].startswith(p.prefixes)]
        assert len(owners) == 1, (e["path"], owners)
    for name, p in gen.PROVIDERS.items():
        assert endpoints(name), f"{name}: its prefixes {p.prefixes} select nothing"
        assert all(prefix.startswith("/api/v1/") and prefix.endswith("/") for prefix in p.prefixes), name
        assert p.output == f"providers/{name}/schemas_gen.py"
    assert gen.PROVIDERS["google"].prefixes == ("/api/v1/google-vision/",)


def test_component_enums_are_exactly_the_inventory_members():
    for name, members in gen.COMPONENT_ENUMS.items():
        assert members == inventory_enum(name)["enum"], name


# The enum components each provider's request schemas reference, and so its generated StrEnums.
EXPECTED_COMPONENTS = {
    "bria": {"ControlnetType", "ImagePromptMode", "MaskType", "ManualPlacement", "PlacementType", "EnhanceResolution"},
    "openai": {"GPTImageQuality", "GPTImageBackground"},
    "prompt": {"LlmProvider"},
    "caption": {"LlmProvider", "ImageCaptionMode", "VideoCaptionMode"},
}


@pytest.mark.parametrize("provider", WRITTEN)
def test_enum_components_are_str_enums_with_the_inventory_members(provider):
    refs = refs_of([e["request_schema"] for e in endpoints(provider)])
    if provider in EXPECTED_COMPONENTS:
        assert refs == EXPECTED_COMPONENTS[provider]
    module, facade = generated(provider), public(provider)
    declared = {n for n in module.__all__ if isinstance(getattr(module, n), type)
                and issubclass(getattr(module, n), enum.StrEnum)}
    assert declared == refs
    for name in refs:
        assert getattr(facade, name) is getattr(module, name)
        assert [m.value for m in getattr(module, name)] == inventory_enum(name)["enum"], name


def test_request_titles_are_unique_across_providers():
    seen: dict[str, dict[str, Any]] = {}
    for _, e in CASES:
        schema = e["request_schema"]
        assert seen.setdefault(schema["title"], schema) == schema, schema["title"]
    assert not set(seen) & set(gen.COMPONENT_ENUMS)


# --------------------------------------------------------------------------- seed vs models
@pytest.mark.parametrize("provider", WRITTEN)
def test_request_models_cover_every_endpoint_with_a_body(provider):
    seed_keys = {(e["method"], e["path"]) for e in endpoints(provider)}
    assert seed_keys
    assert set(generated(provider).REQUEST_MODELS) == seed_keys
    assert set(public(provider).REQUEST_MODELS) == seed_keys
    for key, model in public(provider).REQUEST_MODELS.items():
        assert issubclass(model, generated(provider).REQUEST_MODELS[key])


def assert_schema_equals_seed(model, endpoint: dict[str, Any]) -> None:
    seed = resolve(endpoint["request_schema"], seed_lookup)
    mine = model_schema(model)
    title = seed["title"]

    assert mine["title"] == title
    assert mine.get("description") == seed.get("description")
    assert mine["type"] == "object"
    # same property names, in the seed's order
    assert list(mine["properties"]) == list(seed["properties"]), title
    assert set(mine.get("required", [])) == set(seed.get("required", [])), title
    for name, s_prop in seed["properties"].items():
        m_prop = mine["properties"][name]
        where = f"{title}.{name}"
        # defaults: present in both or in neither, and equal
        assert ("default" in m_prop) == ("default" in s_prop), where
        assert m_prop.get("default") == s_prop.get("default"), where
        # enums, consts, limits and formats at every depth (anyOf members, items, prefixItems)
        s_nodes, m_nodes = dict(walk(s_prop)), dict(walk(m_prop))
        assert s_nodes.keys() == m_nodes.keys(), where
        for path, s_node in s_nodes.items():
            m_node = m_nodes[path]
            for key in ("type", "enum", "const", "format", *LIMIT_KEYS):
                assert m_node.get(key) == s_node.get(key), f"{where}{path}: {key}"
        # and nothing else differs either (title, description, examples, $ref siblings)
        assert m_prop == s_prop, where
    assert mine == seed


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_model_schema_equals_seed(case):
    provider, endpoint = case
    key = (endpoint["method"], endpoint["path"])
    assert_schema_equals_seed(generated(provider).REQUEST_MODELS[key], endpoint)
    assert_schema_equals_seed(public(provider).REQUEST_MODELS[key], endpoint)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_python_defaults_equal_seed_defaults(case):
    provider, endpoint = case
    model = public(provider).REQUEST_MODELS[(endpoint["method"], endpoint["path"])]
    seed = endpoint["request_schema"]
    required = set(seed.get("required", []))
    for name, prop in seed["properties"].items():
        field = model.model_fields[name]
        if name in required:
            assert field.is_required(), name
        else:
            assert not field.is_required(), name
            assert to_jsonable_python(field.default) == prop.get("default"), name


def uri_fields(schema: dict[str, Any]):
    """Fields whose strings must be URLs (not those that also take any string, e.g. base64)."""
    for name, prop in schema["properties"].items():
        members = prop.get("anyOf", [prop])
        strings = [m for m in members if m.get("type") == "string"]
        if strings and all(m.get("format") == "uri" for m in strings):
            yield name, prop


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_uri_fields_keep_seed_examples_and_reject_non_urls(case):
    provider, endpoint = case
    model = public(provider).REQUEST_MODELS[(endpoint["method"], endpoint["path"])]
    for name, prop in uri_fields(endpoint["request_schema"]):
        adapter = TypeAdapter(model.model_fields[name].rebuild_annotation())
        for example in prop.get("examples", []):
            if isinstance(example, str) and example.startswith(("http://", "https://")):
                assert adapter.validate_python(example) == example, name
        with pytest.raises(ValidationError) as info:
            adapter.validate_python("not a url")
        assert info.value.errors()[0]["type"] == "url_parsing", name


def test_openapi_components_read_like_the_seed():
    """Served through one FastAPI app, each model is a component named after the seed's title, and
    the enum components (shared names such as LlmProvider included) are components of their own,
    referenced as in the seed; no name is mangled."""
    app = FastAPI()
    models = [public(p).REQUEST_MODELS[(e["method"], e["path"])] for p, e in CASES]
    for i, model in enumerate(dict.fromkeys(models)):
        def endpoint(body):  # pragma: no cover - never called
            return {}
        endpoint.__annotations__ = {"body": model}
        app.post(f"/m{i}")(endpoint)
    components = app.openapi()["components"]["schemas"]
    seeds = [e["request_schema"] for _, e in CASES]
    for seed in seeds:
        assert components[seed["title"]] == seed, seed["title"]
    refs = refs_of(seeds)
    assert refs <= set(gen.COMPONENT_ENUMS)
    for name in refs:
        assert components[name] == inventory_enum(name), name
    assert set(components) == {s["title"] for s in seeds} | refs | {"HTTPValidationError", "ValidationError"}


# --------------------------------------------------------------------------- generated files
@pytest.mark.parametrize("provider", WRITTEN)
def test_committed_schemas_gen_is_up_to_date(provider):
    path = gen.PROVIDERS[provider].output
    committed = (REPO / path).read_text(encoding="utf-8")
    assert committed == gen.render(provider, SEED_JSON), (
        f"{path} differs from the generator's output; run `make schemas` "
        f"(.venv/bin/python scripts/gen_schemas.py --provider {provider}) and commit the result"
    )


@pytest.mark.parametrize("provider", WRITTEN)
def test_generated_files_hold_declarations_only(provider):
    tree = ast.parse((REPO / gen.PROVIDERS[provider].output).read_text(encoding="utf-8"))
    imported = {}
    for node in tree.body:
        assert isinstance(node, (ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.ClassDef)), ast.dump(node)[:80]
        if isinstance(node, ast.ImportFrom):
            imported[node.module] = {a.name for a in node.names}
        if isinstance(node, ast.ClassDef):
            assert all(isinstance(s, (ast.Expr, ast.Assign, ast.AnnAssign)) for s in node.body), node.name
    assert set(imported) <= {"enum", "typing", "pydantic", "providers.schema_runtime"}, imported
    assert "SeedModel" in imported["providers.schema_runtime"]
    module = generated(provider)
    from providers import schema_runtime

    assert module.SeedModel is schema_runtime.SeedModel
    for name in module.__all__:
        assert hasattr(module, name), name


def test_check_mode(tmp_path, capsys):
    assert gen.main(["--all", "--check"]) == 0
    out = tmp_path / "bria.py"
    assert gen.main(["--provider", "bria", "--output", str(out), "--check"]) == 1  # missing
    assert gen.main(["--provider", "bria", "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == gen.render("bria")
    assert gen.main(["--provider", "bria", "--output", str(out), "--check"]) == 0
    out.write_text(out.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert gen.main(["--provider", "bria", "--output", str(out), "--check"]) == 1  # stale
    assert "stale" in capsys.readouterr().err


def test_generator_default_seed_path_is_the_repo_spec():
    assert gen.DEFAULT_SEED.resolve() == SEED_JSON.resolve()


@pytest.mark.parametrize(
    "prop, message",
    [
        ({"$ref": "#/components/schemas/Unknown"}, "members are unknown"),
        ({"$ref": "#/definitions/Unknown"}, "unsupported \\$ref"),
        ({"type": "string", "pattern": "^a$"}, "unsupported keywords"),
        ({"type": "string", "format": "email"}, "unsupported format"),
        ({"type": "string", "format": "uri", "minLength": 5}, "exactly minLength 1"),
        ({"type": "string", "title": "X", "default": None}, "explicit null default"),
        ({"type": "string"}, "optional, non-nullable field without a default"),
        ({"type": "object"}, "unsupported schema"),
        ({"$ref": "#/components/schemas/LlmProvider", "default": "claude"}, "not a member of LlmProvider"),
    ],
)
def test_generator_fails_loudly_on_what_it_cannot_reproduce(tmp_path, prop, message):
    seed = [{"method": "POST", "path": "/api/v1/prompt/x", "request_schema": {
        "type": "object", "title": "X", "properties": {"x": prop}}}]
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    with pytest.raises(gen.GenError, match=message):
        gen.render("prompt", path)


def test_generator_fails_loudly_on_conflicts(tmp_path):
    body = {"type": "object", "title": "X", "properties": {"x": {"type": "string"}}, "required": ["x"]}
    other = {**body, "description": "another schema with the same title"}
    path = tmp_path / "seed.json"
    path.write_text(json.dumps([{"method": "POST", "path": "/api/v1/caption/a", "request_schema": body},
                                {"method": "POST", "path": "/api/v1/caption/b", "request_schema": other}]))
    with pytest.raises(gen.GenError, match="two different request schemas"):
        gen.render("caption", path)
    with pytest.raises(gen.GenError, match="no openai endpoint"):
        gen.render("openai", path)
    with pytest.raises(gen.GenError, match="unknown provider"):
        gen.render("nobody", path)
    assert gen.main(["--provider", "openai", str(path), "--check"]) == 2
