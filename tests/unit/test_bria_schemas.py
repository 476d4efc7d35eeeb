"""Bria / Bria-LoRA request models against the Vision Studio API reference (seed 004).

* every generated model's JSON schema equals the seed's request schema ($refs resolved);
* the committed providers/bria/schemas_gen.py is exactly what scripts/gen_schemas.py produces.

The reference lives in the repo, under spec/ (tests/unit/bria_seed.py reads it);
BriaGenerateImageRequest's limits and prose rules: test_bria_generate_image_model.py.
"""

import importlib.util
import json
import re

import pytest
from fastapi import FastAPI
from pydantic_core import to_jsonable_python

from providers.bria import schemas, schemas_gen
from tests.unit.bria_seed import (REPO, SEED_JSON, ENDPOINTS, GEN_IMAGE, inventory_enum, resolve, seed_lookup,
                                  model_schema, ids, LIMIT_KEYS, walk)


# --------------------------------------------------------------------------- seed vs models
def test_request_models_cover_every_bria_endpoint_with_a_body():
    seed_keys = {(e["method"], e["path"]) for e in ENDPOINTS}
    assert set(schemas.REQUEST_MODELS) == seed_keys
    assert set(schemas_gen.REQUEST_MODELS) == seed_keys
    assert len(seed_keys) == 34
    for key, model in schemas.REQUEST_MODELS.items():
        assert issubclass(model, schemas_gen.REQUEST_MODELS[key])
    # the rule-enforcing subclass is the one the rest of the code gets
    assert schemas.REQUEST_MODELS[GEN_IMAGE] is schemas.BriaGenerateImageRequest
    assert schemas.BriaGenerateImageRequest is not schemas_gen.BriaGenerateImageRequest


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids)
def test_model_schema_equals_seed(endpoint):
    seed = resolve(endpoint["request_schema"], seed_lookup)
    model = schemas.REQUEST_MODELS[(endpoint["method"], endpoint["path"])]
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


def test_openapi_components_read_like_the_seed():
    """Served through FastAPI, each model is a component named after the seed's title, and the
    enum components (ControlnetType, ...) are components of their own, referenced as in the seed."""
    app = FastAPI()
    for i, model in enumerate(dict.fromkeys(schemas.REQUEST_MODELS.values())):
        def endpoint(body):  # pragma: no cover - never called
            return {}
        endpoint.__annotations__ = {"body": model}
        app.post(f"/m{i}")(endpoint)
    components = app.openapi()["components"]["schemas"]
    for e in ENDPOINTS:
        seed = e["request_schema"]
        assert components[seed["title"]] == seed, seed["title"]
    refs = {m.group(1) for m in re.finditer(r'"#/components/schemas/([^"]+)"', json.dumps([e["request_schema"] for e in ENDPOINTS]))}
    assert refs == {"ControlnetType", "ImagePromptMode", "MaskType", "ManualPlacement", "PlacementType", "EnhanceResolution"}
    for name in refs:
        assert components[name] == inventory_enum(name), name


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids)
def test_python_defaults_equal_seed_defaults(endpoint):
    model = schemas.REQUEST_MODELS[(endpoint["method"], endpoint["path"])]
    seed = endpoint["request_schema"]
    required = set(seed.get("required", []))
    for name, prop in seed["properties"].items():
        field = model.model_fields[name]
        if name in required:
            assert field.is_required(), name
        else:
            assert not field.is_required(), name
            assert to_jsonable_python(field.default) == prop.get("default"), name


# --------------------------------------------------------------------------- generator
def load_generator():
    spec = importlib.util.spec_from_file_location("gen_schemas", REPO / "scripts" / "gen_schemas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_schemas_gen_is_up_to_date():
    gen = load_generator()
    expected = gen.render(SEED_JSON)
    committed = (REPO / "providers" / "bria" / "schemas_gen.py").read_text(encoding="utf-8")
    assert committed == expected, (
        "providers/bria/schemas_gen.py differs from the generator's output; run "
        "`.venv/bin/python scripts/gen_schemas.py` and commit the result"
    )


def test_generator_default_seed_path_is_the_repo_spec():
    gen = load_generator()
    assert gen.DEFAULT_SEED.resolve() == SEED_JSON.resolve()


@pytest.mark.parametrize(
    "prop, message",
    [
        ({"$ref": "#/components/schemas/Unknown"}, "members are unknown"),
        ({"type": "string", "pattern": "^a$"}, "unsupported keywords"),
        ({"type": "string", "format": "email"}, "unsupported format"),
        ({"type": "string", "title": "X", "default": None}, "explicit null default"),
    ],
)
def test_generator_fails_loudly_on_what_it_cannot_reproduce(tmp_path, prop, message):
    gen = load_generator()
    seed = [{"method": "POST", "path": "/api/v1/bria/x", "request_schema": {
        "type": "object", "title": "X", "properties": {"x": prop}}}]
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    with pytest.raises(gen.GenError, match=message):
        gen.render(path)


