"""Tailored generation (LoRA), unit tier: id rules, the state rules, the intake resolver against a
migrated SQLite database (tenant scoping, training state, 004's model-dependent rule), Bria status
handling, the mapping of Bria's failures to answers, SSRF refusal of training image URLs (the
routes' kit as the API builds it), and the simulator's image analysis and rendering."""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET

import pytest
from fastapi.exceptions import RequestValidationError
from PIL import Image, ImageDraw

from api.errors import ApiError
from api.plugins import route_kit
from core.settings import Settings
from core.tenants import get_or_create_tenant
from providers.base import InvalidRequest, Permanent, RateLimited, Retryable
from providers.bria.builders import generation
from providers.bria.tailored import service
from providers.bria.tailored.client import TAILORED_MODEL_KEY
from providers.bria.tailored.routes_common import Tailored, path_id, same_id
from providers.bria.tailored.tables import LoraDataset, LoraModel, LoraProject
from providers.bria.simulator import edit
from providers.bria.simulator.tailored_looks import caption_for, colour_name, palette_of, render_tailored


# --------------------------------------------------------------------------- ids
@pytest.mark.parametrize("value, expected", [
    ("12", 12), (12, 12), (" 7 ", 7), ("0", None), (0, None), (-3, None), ("-3", None), ("1e3", None),
    ("abc", None), ("", None), (True, None), (None, None), (3.0, None), ("99999999999", None)])
def test_parse_id(value, expected):
    assert service.parse_id(value) == expected


def test_path_and_body_ids():
    assert path_id("project_id", "42") == 42
    with pytest.raises(RequestValidationError) as info:
        path_id("project_id", "forty-two")
    (err,) = info.value.errors()
    assert err["loc"] == ("path", "project_id") and err["type"] == "int_parsing"
    same_id("dataset_id", 5, 5)
    with pytest.raises(RequestValidationError) as info:
        same_id("dataset_id", 5, 6)
    (err,) = info.value.errors()
    assert err["loc"] == ("body", "dataset_id") and err["type"] == "id_mismatch"
    assert "(6)" in err["msg"] and "(5)" in err["msg"]


# --------------------------------------------------------------------------- Bria model states
def test_status_spellings_and_timestamps():
    assert service.normalise_status("completed", "Created") == "Completed"
    assert service.normalise_status("InProgress", "Created") == "InProgress"
    assert service.normalise_status("in_progress", "Created") == "InProgress"
    assert service.normalise_status(None, "Stopping") == "Stopping"
    model = LoraModel(status="Created", training_started_at=None, training_finished_at=None, error=None)
    service.apply_model_state(model, {"status": "InProgress"})
    assert model.status == "InProgress" and model.training_started_at and not model.training_finished_at
    service.apply_model_state(model, {"status": "Failed", "error": {"message": "GPU lost"}})
    assert model.status == "Failed" and model.training_finished_at and model.error == "GPU lost"


# --------------------------------------------------------------------------- state rules
def test_state_rules_refuse_with_a_code():
    draft, done = LoraDataset(id=4, status="draft"), LoraDataset(id=5, status="completed")
    created = LoraModel(id=9, status="Created")
    assert service.training_start_refusal(created, done, 5) is None
    for model, dataset, count, code in [(LoraModel(id=9, status="InProgress"), done, 5, "training_in_progress"),
                                        (LoraModel(id=9, status="Completed"), done, 5, "training_not_restartable"),
                                        (created, None, 0, "dataset_missing"),
                                        (created, draft, 5, "dataset_not_completed"),
                                        (created, done, 4, "dataset_too_small")]:
        assert service.training_start_refusal(model, dataset, count).code == code
    assert service.image_upload_refusal(done, 0).code == "dataset_completed"
    assert service.image_upload_refusal(draft, 200).code == "dataset_full"
    assert service.image_upload_refusal(draft, 199) is None
    assert service.dataset_update_refusal(draft, {"status": "completed"}, 4, []).code == "dataset_too_small"
    back = service.dataset_update_refusal(done, {"status": "draft"}, 5, [9])
    assert back.code == "training_in_progress" and back.message.endswith("model(s) 9; it cannot go back to draft now")
    assert service.dataset_update_refusal(done, {"status": "draft"}, 5, []) is None
    assert service.model_delete_refusal(LoraModel(id=9, status="Stopping")).code == "training_in_progress"
    assert service.training_stop_refusal(created).code == "not_training"


# --------------------------------------------------------------------------- the intake resolver
def _seed(db) -> dict[str, int]:
    sync, _ = db
    with sync.begin() as s:
        a = get_or_create_tenant(s, "ta", "pro")
        b = get_or_create_tenant(s, "tb", "pro")
        ids = {"a": a.id, "b": b.id}
        for tenant, name in ((a.id, "a"), (b.id, "b")):
            project = LoraProject(tenant_id=tenant, upstream_id=f"p-{name}", project_name=name, ip_medium="illustration",
                                  ip_type="style")
            s.add(project)
            s.flush()
            dataset = LoraDataset(tenant_id=tenant, project_id=project.id, upstream_id=f"d-{name}", name=name)
            s.add(dataset)
            s.flush()
            for status, version in (("Completed", "light"), ("Created", "light"), ("Completed", "max")):
                m = LoraModel(tenant_id=tenant, project_id=project.id, dataset_id=dataset.id,
                              upstream_id=f"bria-{name}-{status}-{version}", name=status, training_version=version,
                              status=status)
                s.add(m)
                s.flush()
                ids[f"{name}.{status}.{version}"] = m.id
    return ids


def _resolve(db, field: str, params: dict, tenant: str, **kw) -> dict:
    _, asessions = db

    async def go() -> dict:
        async with asessions() as session:
            return await service.resolver(field, **kw)(params, tenant, session, Settings().upstream_defaults())

    return asyncio.run(go())


def test_resolver_scopes_by_tenant_and_training_state(db):
    ids = _seed(db)
    trained = ids["a.Completed.light"]
    out = _resolve(db, "model_id", {"model_id": str(trained), "prompt": "a fox"}, ids["a"])
    assert out[TAILORED_MODEL_KEY] == "bria-a-Completed-light" and out["model_id"] == str(trained)
    assert generation.route_lora_image(out) == "/v1/text-to-image/tailored/bria-a-Completed-light"
    # no model_id: unchanged
    assert _resolve(db, "model_id", {"prompt": "a fox"}, ids["a"]) == {"prompt": "a fox"}
    cases = [(str(ids["b.Completed.light"]), "model_not_found"),  # another tenant's
             ("424242", "model_not_found"), ("custom-model-123", "model_not_found"),
             (str(ids["a.Created.light"]), "model_not_trained")]
    for value, kind in cases:
        with pytest.raises(InvalidRequest) as info:
            _resolve(db, "model_id", {"model_id": value, "prompt": "a fox"}, ids["a"])
        (err,) = info.value.errors
        assert err["loc"] == ("body", "model_id") and err["type"] == kind, (value, err)
    with pytest.raises(InvalidRequest) as info:
        _resolve(db, "tailored_model_id", {"tailored_model_id": str(ids["b.Completed.light"])}, ids["a"])
    assert info.value.errors[0]["loc"] == ("body", "tailored_model_id")


def test_max_models_do_not_support_fast(db):
    ids = _seed(db)
    params = {"model_id": str(ids["a.Completed.max"]), "prompt": "a fox", "fast": True}
    with pytest.raises(InvalidRequest) as info:
        _resolve(db, "model_id", params, ids["a"], lora_rules=True)
    assert info.value.errors[0]["loc"] == ("body", "fast")
    assert _resolve(db, "model_id", {**params, "fast": False}, ids["a"], lora_rules=True)[TAILORED_MODEL_KEY]
    # the rule is the LoRA endpoint's: the plain endpoints have no fast-with-max rule
    assert _resolve(db, "model_id", params, ids["a"])[TAILORED_MODEL_KEY] == "bria-a-Completed-max"


def test_lora_bodies():
    p = {"model_id": "3", "_tailored_model_id": "777", "prompt": "a fox", "num_results": 2, "aspect_ratio": "4:3",
         "sync": True, "fast": False, "steps_num": 30, "model_influence": 0.8, "include_generation_prefix": True,
         "seed": 9}
    assert generation.build_lora_image(p) == {"prompt": "a fox", "num_results": 2, "aspect_ratio": "4:3", "fast": False,
                                       "steps_num": 30, "model_influence": 0.8, "include_generation_prefix": True,
                                       "seed": 9}
    v = generation.build_lora_vector({**p, "bria_model_version": "3.2", "negative_prompt": "text",
                               "guidance_method_1": "controlnet_canny", "guidance_method_1_image_url": "QUJD"})
    assert v["negative_prompt"] == "text" and v["guidance_method_1_image_file"] == "QUJD"
    assert "bria_model_version" not in v and "model_id" not in v and v["model_influence"] == 0.8
    assert generation.route_lora_vector(p) == "/v1/text-to-vector/tailored/777"


# --------------------------------------------------------------------------- Bria failures → answers
def _upstream(exc: Exception, **kw):
    def fail():
        raise exc

    return asyncio.run(Tailored(route_kit(Settings())).upstream(fail, **kw))


def test_upstream_failures_map_to_answers():
    with pytest.raises(ApiError) as info:
        _upstream(RateLimited("slow down", retry_after=2.2))
    assert info.value.status_code == 429 and info.value.headers == {"Retry-After": "3"}
    with pytest.raises(ApiError) as info:
        _upstream(Retryable("boom", code="upstream_500", http_status=500))
    assert info.value.status_code == 502 and info.value.code == "upstream_500"
    with pytest.raises(ApiError) as info:
        _upstream(Retryable("slow", code="upstream_timeout"))
    assert info.value.status_code == 504
    with pytest.raises(ApiError) as info:
        _upstream(Permanent("Dataset status must be 'completed'", code="upstream_412", http_status=412))
    assert info.value.status_code == 409
    with pytest.raises(RequestValidationError) as info:
        _upstream(Permanent("bad", http_status=400))
    assert info.value.errors()[0]["type"] == "upstream_rejected"
    with pytest.raises(ApiError) as info:
        _upstream(Permanent("who?", http_status=403))
    assert info.value.status_code == 502
    assert _upstream(Permanent("gone", http_status=404), missing_ok=True) is None


def test_training_images_are_fetched_ssrf_safely_and_checked():
    for url in ("http://127.0.0.1/x.png", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/a.png"):
        with pytest.raises(InvalidRequest) as info:
            route_kit(Settings()).fetch_media(url, service.TRAINING_IMAGE_URL)
        (err,) = info.value.errors
        assert err["loc"] == ("body", "image_url") and err["type"] == "input_url_blocked", err
    decode = route_kit(Settings()).decode_media
    for value, kind in ((123, "string_type"), ("not base64!", "base64_invalid"), ("QUJD", "not_an_image")):
        with pytest.raises(InvalidRequest) as info:
            decode(value, service.TRAINING_IMAGE_FILE)
        (err,) = info.value.errors
        assert err["loc"] == ("body", "image_file") and err["type"] == kind, err


# --------------------------------------------------------------------------- simulator: captions and looks
def _picture(size, background, accent) -> Image.Image:
    img = Image.new("RGB", size, background)
    ImageDraw.Draw(img).rectangle((size[0] * 0.6, size[1] * 0.6, size[0] * 0.9, size[1] * 0.9), fill=accent)
    return img


def test_caption_describes_the_image():
    caption = caption_for(_picture((640, 360), (30, 70, 220), (245, 220, 40)))
    assert "640x360" in caption and "landscape" in caption and "dominated by blue" in caption and "yellow" in caption
    dark = caption_for(_picture((300, 500), (10, 10, 10), (0, 100, 0)), prefix="Rex, a dog,")
    assert dark.startswith("Rex, a dog, a dark portrait 300x500") and "black" in dark
    assert colour_name((250, 250, 250)) == "white"
    assert palette_of(_picture((100, 100), (255, 0, 0), (0, 0, 255)))[0][0][0] > 200


def test_rendering_follows_the_model_palette_prompt_and_seed():
    palette = [(240, 128, 16), (16, 144, 144)]
    one = render_tailored(palette, "model-1", "a fox", 1)
    img = Image.open(io.BytesIO(one)).convert("RGB")
    colours = img.getcolors(2**24)
    near = sum(n for n, c in colours if any(max(abs(a - b) for a, b in zip(c, p)) <= 8 for p in palette))
    assert near / (img.width * img.height) > 0.95
    assert render_tailored(palette, "model-1", "a fox", 1) == one  # deterministic
    assert render_tailored(palette, "model-1", "a fox", 2) != one
    assert render_tailored(palette, "model-2", "a fox", 1) != one
    assert render_tailored([(120, 40, 160), (150, 220, 40)], "model-1", "a fox", 1) != one
    svg = ET.fromstring(edit.trace_svg(edit.load(one), colours=2))
    fills = [p.get("fill") for p in svg.findall("{http://www.w3.org/2000/svg}path")]
    assert len(fills) == 2
    for fill in fills:
        rgb = tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5))
        assert any(max(abs(a - b) for a, b in zip(rgb, p)) <= 24 for p in palette), fill
