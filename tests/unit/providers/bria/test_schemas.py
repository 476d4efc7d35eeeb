"""Bria / Bria-LoRA request models against the Vision Studio API reference (seed 004).

* providers/bria/schemas.py covers every Bria endpoint with a body, with rule-enforcing
  subclasses of the generated models;
* BriaGenerateImageRequest: every field limit at its boundary, defaults, and 004's prose rules.

What holds for every provider (each model's JSON schema equals the seed's request schema, Python
defaults, enum components, OpenAPI components, the committed schemas_gen.py is exactly the
generator's output) is checked in tests/unit/test_request_models.py.

The reference lives in the repo, under spec/.
"""

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from providers.bria import schemas, schemas_gen

SEEDS = Path(__file__).resolve().parents[4] / "spec"
SEED_JSON = SEEDS / "vision-studio-endpoints.json"
INVENTORY = SEEDS / "INVENTORY.md"

if not SEED_JSON.is_file() or not INVENTORY.is_file():
    raise RuntimeError(
        f"spec files missing: {SEED_JSON} / {INVENTORY} (the repo's copy of the reference); "
        "these tests must not be skipped."
    )

ENDPOINTS = [e for e in json.loads(SEED_JSON.read_text(encoding="utf-8"))
             if e["path"].startswith(("/api/v1/bria/", "/api/v1/bria-lora/")) and e.get("request_schema")]
GEN_IMAGE = ("POST", "/api/v1/bria/image/generation/generate-image")
GEN_IMAGE_SEED = next(e["request_schema"] for e in ENDPOINTS if (e["method"], e["path"]) == GEN_IMAGE)
Model = schemas.BriaGenerateImageRequest


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


# --------------------------------------------------------------------------- generate-image: limits
def ok(**kw):
    return Model(**{"prompt": "a cat", **kw})


def errors(**kw):
    with pytest.raises(ValidationError) as info:
        Model(**{"prompt": "a cat", **kw})
    return info.value.errors()


def assert_rejected(field, value, error_type=None, **extra):
    errs = errors(**{field: value, **extra})
    assert [e["loc"][0] for e in errs] == [field], errs
    if error_type:
        assert errs[0]["type"] == error_type, errs


def test_prompt_min_length_4():
    errs = errors(prompt="abc")
    assert errs[0]["type"] == "string_too_short" and errs[0]["loc"] == ("prompt",)
    assert ok(prompt="abcd").prompt == "abcd"
    with pytest.raises(ValidationError) as info:
        Model()
    assert info.value.errors()[0]["type"] == "missing"
    assert info.value.errors()[0]["loc"] == ("prompt",)


# field: (accepted values, rejected values, error type of a rejected one)
CHOICES = {
    "aspect_ratio": (["1:1", "2:3", "3:2", "3:4", "4:3", "16:9", "9:16", "4:5", "5:4"],
                     ["21:9", "7:4", "1:2", "", "1x1"], "literal_error"),
    "bria_model_version": (["2.3", "3.2"], ["2.2", "3.1", "3", 3.2], "literal_error"),
    "medium": (["photography", "art"], ["product", "Photography", "auto"], "literal_error"),
    "image_prompt_mode": (["regular", "style_only"], ["style", "Regular", "ip_adapter"], "enum"),
}


@pytest.mark.parametrize("field, value", [(f, v) for f, (good, _, _) in CHOICES.items() for v in good])
def test_choice_accepted(field, value):
    assert getattr(ok(**{field: value}), field) == value


@pytest.mark.parametrize("field, value", [(f, v) for f, (_, bad, _) in CHOICES.items() for v in bad])
def test_choice_rejected(field, value):
    assert_rejected(field, value, CHOICES[field][2])


@pytest.mark.parametrize(
    "field, bad_low, good_low, good_high, bad_high",
    [
        ("num_results", 0, 1, 4, 5),
        ("steps_num", 19, 20, 50, 51),
        ("text_guidance_scale", 0.99, 1, 10, 10.01),
        ("guidance_method_1_scale", -0.01, 0, 1, 1.01),
        ("guidance_method_2_scale", -0.01, 0, 1, 1.01),
        ("image_prompt_scale", -0.01, 0, 1, 1.01),
    ],
)
def test_numeric_bounds(field, bad_low, good_low, good_high, bad_high):
    assert getattr(ok(**{field: good_low}), field) == good_low
    assert getattr(ok(**{field: good_high}), field) == good_high
    assert_rejected(field, bad_low, "greater_than_equal")
    assert_rejected(field, bad_high, "less_than_equal")


@pytest.mark.parametrize("field", ["num_results", "steps_num"])
def test_integer_fields_reject_fractions(field):
    assert_rejected(field, 2.5, "int_from_float")


@pytest.mark.parametrize("field", ["guidance_method_1_scale", "guidance_method_2_scale", "image_prompt_scale", "seed",
                                   "negative_prompt", "medium", "guidance_method_1", "guidance_method_2",
                                   "image_prompt_mode", "guidance_method_1_image_url", "image_prompt_urls"])
def test_nullable_fields_accept_null(field):
    assert getattr(ok(**{field: None}), field) is None


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("method", ["controlnet_canny", "controlnet_depth", "controlnet_recoloring", "controlnet_color_grid"])
def test_guidance_methods_accepted(n, method):
    m = ok(**{f"guidance_method_{n}": method, f"guidance_method_{n}_image_url": "https://example.com/g.png"})
    value = getattr(m, f"guidance_method_{n}")
    assert value == method and isinstance(value, schemas.ControlnetType)
    assert m.model_dump(mode="json")[f"guidance_method_{n}"] == method


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("method", ["controlnet_pose", "canny", "CONTROLNET_CANNY"])
def test_guidance_methods_rejected(n, method):
    assert_rejected(f"guidance_method_{n}", method, "enum")


def test_seed_and_negative_prompt_types():
    assert ok(seed=123).seed == 123
    assert ok(seed=-5).seed == -5  # the seed's schema puts no bound on seed
    assert_rejected("seed", "abc", "int_parsing")
    assert ok(negative_prompt="text, logo").negative_prompt == "text, logo"


@pytest.mark.parametrize("field", ["sync", "prompt_enhancement", "enhance_image", "prompt_content_moderation",
                                   "content_moderation", "ip_signal"])
def test_booleans(field):
    assert getattr(ok(**{field: True}), field) is True
    assert getattr(ok(**{field: False}), field) is False
    assert_rejected(field, "maybe", "bool_parsing")


def test_defaults_equal_the_seed():
    m = ok()
    assert m.sync is True
    assert m.steps_num == 30
    assert m.text_guidance_scale == 5.0
    assert m.aspect_ratio == "1:1"
    assert m.num_results == 1
    assert m.bria_model_version == "3.2"
    for flag in ("prompt_enhancement", "enhance_image", "prompt_content_moderation", "content_moderation", "ip_signal"):
        assert getattr(m, flag) is False, flag
    for name, prop in GEN_IMAGE_SEED["properties"].items():
        if name != "prompt":
            assert getattr(m, name) == prop.get("default"), name


URL_FIELDS = ["guidance_method_1_image_url", "guidance_method_2_image_url"]
VALID_URLS = [
    "https://example.com/a b?x=1",
    "https://example.com",
    "http://Example.COM/Path/../x.PNG?q=%20&y=1#frag",
    "https://images.pexels.com/photos/31976103/pexels-photo-31976103.jpeg",
    "https://user:pw@example.com:8443/ä.png",
]
INVALID_URLS = [
    ("not a url", "url_parsing"),
    ("", "url_parsing"),
    ("/relative/path.png", "url_parsing"),
    ("example.com/a.png", "url_parsing"),
    ("https:example.com/a.png", "url_parsing"),
    ("https://", "url_parsing"),
    (" https://example.com/a.png", "url_parsing"),
    ("https://exa mple.com/", "url_parsing"),
    ("ftp://example.com/a.png", "url_scheme"),
    ("gs://bucket/a.png", "url_scheme"),
    ("data:image/png;base64,AAAA", "url_scheme"),
]


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize("url", VALID_URLS)
def test_uri_fields_keep_valid_urls_unchanged(field, url):
    m = ok(**{field: url})
    assert getattr(m, field) == url
    assert m.model_dump(mode="json")[field] == url
    assert ok(image_prompt_urls=[url, url]).image_prompt_urls == [url, url]


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize("url, error_type", INVALID_URLS)
def test_uri_fields_reject_invalid_urls(field, url, error_type):
    assert_rejected(field, url, error_type)


@pytest.mark.parametrize("url, error_type", INVALID_URLS)
def test_image_prompt_urls_items_are_uris(url, error_type):
    errs = errors(image_prompt_urls=["https://example.com/ok.png", url])
    assert len(errs) == 1
    assert errs[0]["loc"] == ("image_prompt_urls", 1) and errs[0]["type"] == error_type
    assert ok(image_prompt_urls=[]).image_prompt_urls == []
    assert_rejected("image_prompt_urls", "https://example.com/not-a-list.png", "list_type")


def test_uri_error_messages():
    (err,) = errors(guidance_method_1_image_url="not a url")
    assert err["msg"] == "Input should be a valid URL, relative URL without a base"
    (err,) = errors(guidance_method_1_image_url="ftp://example.com/a.png")
    assert err["msg"] == "URL scheme should be 'http' or 'https'"


def test_extra_fields_are_ignored():
    m = ok(unknown=1)
    assert "unknown" not in m.model_dump()


def test_model_id_is_kept_for_tailored_generation():
    # 003 sends model_id to this endpoint for tailored generation. It is not a field of 004's
    # schema, but it is kept (not silently dropped) so the API's intake can resolve it against
    # the tenant's trained models (unknown → 422 model_not_found there: tests/integration).
    m = schemas.BriaGenerateImageRequest.model_validate({"prompt": "abcd", "model_id": "custom-model-123"})
    assert m.model_dump(mode="json")["model_id"] == "custom-model-123"
    assert "model_id" not in schemas.BriaGenerateImageRequest.model_validate({"prompt": "abcd"}).model_dump()
    assert "model_id" not in schemas.BriaGenerateImageRequest.model_json_schema()["properties"]
    (err,) = errors(model_id={"id": 1})
    assert err["type"] == "model_id_type" and err["loc"] == ("model_id",)


# --------------------------------------------------------------------------- generate-image: prose rules
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


@pytest.mark.parametrize("n", [1, 2])
def test_rule_a_guidance_method_requires_an_image(n):
    errs = errors(**{f"guidance_method_{n}": "controlnet_canny"})
    assert errs == [{
        "type": "guidance_image_missing",
        "loc": (f"guidance_method_{n}",),
        "msg": f"guidance_method_{n}_image_url or guidance_method_{n}_image_file is required when "
               f"guidance_method_{n} is set",
        "input": "controlnet_canny",
        "ctx": {"n": n, "guidance_method": "controlnet_canny"},
    }]
    assert ok(**{f"guidance_method_{n}": "controlnet_canny", f"guidance_method_{n}_image_url": "https://e.com/c.png"})
    assert ok(**{f"guidance_method_{n}": "controlnet_canny", f"guidance_method_{n}_image_file": PNG_B64})
    # an image of the other slot does not count
    other = 3 - n
    errs = errors(**{f"guidance_method_{n}": "controlnet_depth", f"guidance_method_{other}_image_url": "https://e.com/c.png"})
    assert [e["loc"] for e in errs] == [(f"guidance_method_{n}",)]


def test_rule_a_both_methods_missing_images_reports_both():
    errs = errors(guidance_method_1="controlnet_canny", guidance_method_2="controlnet_depth")
    assert [e["loc"] for e in errs] == [("guidance_method_1",), ("guidance_method_2",)]


def test_rule_a_images_without_a_method_are_allowed():
    m = ok(guidance_method_1_image_url="https://e.com/c.png", guidance_method_2_image_file=PNG_B64, num_results=4)
    assert m.guidance_method_1 is None and m.num_results == 4


@pytest.mark.parametrize("num_results", [2, 3, 4])
def test_rule_b_num_results_must_be_1_with_guidance(num_results):
    errs = errors(num_results=num_results, guidance_method_2="controlnet_depth",
                  guidance_method_2_image_url="https://e.com/d.png")
    assert errs == [{
        "type": "num_results_with_guidance",
        "loc": ("num_results",),
        "msg": f"num_results must be 1 when a guidance method is used (guidance_method_2 set), got {num_results}",
        "input": num_results,
        "ctx": {"methods": "guidance_method_2", "num_results": num_results},
    }]
    assert ok(num_results=1, guidance_method_2="controlnet_depth", guidance_method_2_image_url="https://e.com/d.png")
    assert ok(num_results=num_results).num_results == num_results  # no guidance: 1-4 allowed


def test_rules_a_and_b_reported_together():
    errs = errors(num_results=3, guidance_method_1="controlnet_canny", guidance_method_2="controlnet_depth",
                  guidance_method_2_image_file=PNG_B64)
    assert [(e["type"], e["loc"]) for e in errs] == [
        ("guidance_image_missing", ("guidance_method_1",)),
        ("num_results_with_guidance", ("num_results",)),
    ]
    assert "guidance_method_1 and guidance_method_2 set" in errs[1]["msg"]


def test_rule_c_image_prompt_has_no_stated_dependencies():
    # 004 marks image_prompt_mode/_file/_urls/_scale optional and states no dependency between
    # them; nor does INVENTORY §8. Each combination is accepted, and num_results is not limited.
    assert ok(image_prompt_mode="style_only", image_prompt_urls=["https://e.com/s.png"], image_prompt_scale=0.7,
              num_results=4)
    assert ok(image_prompt_file=PNG_B64)
    assert ok(image_prompt_mode="regular")
    assert ok(image_prompt_file=PNG_B64, image_prompt_urls=["https://e.com/s.png"])


B64_FIELDS = ["guidance_method_1_image_file", "guidance_method_2_image_file", "image_prompt_file"]


@pytest.mark.parametrize("field", B64_FIELDS)
@pytest.mark.parametrize("value", [PNG_B64, "data:image/png;base64," + PNG_B64, "DATA:IMAGE/JPEG;BASE64,/9j/4AAQ",
                                   "data:image/svg+xml;base64,PHN2Zz4=", "QUJD", "QUI=", "QQ=="])
def test_rule_d_base64_accepted_unchanged(field, value):
    assert getattr(ok(**{field: value}), field) == value


@pytest.mark.parametrize("field", B64_FIELDS)
@pytest.mark.parametrize(
    "value, reason",
    [
        ("not base64!", "it contains characters outside the base64 alphabet"),
        ("QUJD\nREVG", "it contains characters outside the base64 alphabet"),
        ("QUJD REVG", "it contains characters outside the base64 alphabet"),
        ("QU-_", "it contains characters outside the base64 alphabet"),
        ("QUJDR", "its length (5) is not a multiple of 4"),
        ("QUI", "its length (3) is not a multiple of 4"),
        ("Q===", "it contains characters outside the base64 alphabet"),
        ("", "it is empty"),
        ("data:image/png;base64,", "it is empty"),
        ("data:text/plain;base64,QUJD", "a data URI must start with 'data:image/<type>;base64,'"),
        ("data:image/png,QUJD", "a data URI must start with 'data:image/<type>;base64,'"),
        ("https://example.com/a.png", "it contains characters outside the base64 alphabet"),
    ],
)
def test_rule_d_base64_rejected(field, value, reason):
    (err,) = errors(**{field: value})
    assert err["type"] == "base64_invalid"
    assert err["loc"] == (field,)
    assert err["msg"].startswith(
        f"{field} must be a base64-encoded image (optionally prefixed with 'data:image/<type>;base64,'): {reason}"
    ), err["msg"]


# --------------------------------------------------------------------------- through FastAPI
def test_fastapi_returns_422_with_field_locations():
    app = FastAPI()

    @app.post("/api/v1/bria/image/generation/generate-image")
    def generate(body: schemas.BriaGenerateImageRequest):
        return {"status": "success", "result": body.model_dump(mode="json")}

    client = TestClient(app)
    url = "https://example.com/a b?x=1"
    r = client.post("/api/v1/bria/image/generation/generate-image",
                    json={"prompt": "a cat", "guidance_method_1": "controlnet_canny",
                          "guidance_method_1_image_url": url})
    assert r.status_code == 200
    assert r.json()["result"]["guidance_method_1_image_url"] == url
    assert r.json()["result"]["guidance_method_1"] == "controlnet_canny"

    r = client.post("/api/v1/bria/image/generation/generate-image",
                    json={"prompt": "a cat", "num_results": 2, "guidance_method_1": "controlnet_canny"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [(d["type"], d["loc"]) for d in detail] == [
        ("guidance_image_missing", ["body", "guidance_method_1"]),
        ("num_results_with_guidance", ["body", "num_results"]),
    ]
    assert all(isinstance(d["msg"], str) and d["msg"] for d in detail)

    r = client.post("/api/v1/bria/image/generation/generate-image",
                    json={"prompt": "abc", "image_prompt_file": "%%%", "guidance_method_2_image_url": "not a url"})
    assert r.status_code == 422
    assert sorted((d["type"], tuple(d["loc"])) for d in r.json()["detail"]) == [
        ("base64_invalid", ("body", "image_prompt_file")),
        ("string_too_short", ("body", "prompt")),
        ("url_parsing", ("body", "guidance_method_2_image_url")),
    ]
