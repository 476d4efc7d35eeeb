"""Tailored generation (LoRA) end to end, managing: tenant scoping, uploads, the state rules of
datasets, models and training, Bria's failures and the envelope, through HTTP against the
simulator's tailored-generation API, with the package's trained models (conftest.py)."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from tests.integration.bria_media import encode
from tests.integration.providers.bria.tailored import (L, ORANGE, TEAL, detail, error, ok, training_image,
                                                       wait_model)
from tests.integration.system import System

pytestmark = pytest.mark.integration


def test_another_tenants_objects_are_404(world):
    a, b = world["a"], world["b"]
    pa, da, ma, ia = world["project_a"], world["dataset_a"], world["model_a"], world["images_a"][0]
    for method, path, body in (
            ("GET", f"{L}/projects/{pa['id']}", None),
            ("PUT", f"{L}/projects/{pa['id']}", {"project_id": pa["id"], "project_name": "stolen"}),
            ("DELETE", f"{L}/projects/{pa['id']}", None),
            ("GET", f"{L}/projects/{pa['id']}/datasets", None),
            ("GET", f"{L}/projects/{pa['id']}/models", None),
            ("GET", f"{L}/datasets/{da['id']}", None),
            ("PUT", f"{L}/datasets/{da['id']}", {"dataset_id": da["id"], "name": "x"}),
            ("DELETE", f"{L}/datasets/{da['id']}", None),
            ("GET", f"{L}/datasets/{da['id']}/images", None),
            ("GET", f"{L}/datasets/{da['id']}/images/{ia['id']}", None),
            ("DELETE", f"{L}/datasets/{da['id']}/images/{ia['id']}", None),
            ("PUT", f"{L}/datasets/{da['id']}/images/{ia['id']}/caption",
             {"dataset_id": da["id"], "image_id": ia["id"], "caption": "x"}),
            ("PUT", f"{L}/datasets/{da['id']}/images/captions", None),
            ("GET", f"{L}/models/{ma['id']}", None),
            ("PUT", f"{L}/models/{ma['id']}", {"model_id": ma["id"], "name": "x"}),
            ("DELETE", f"{L}/models/{ma['id']}", None),
            ("POST", f"{L}/models/{ma['id']}/training/start", None),
            ("POST", f"{L}/models/{ma['id']}/training/stop", None),
            ("POST", f"{L}/datasets", {"project_id": pa["id"], "name": "x"}),
            ("POST", f"{L}/models", {"name": "x", "dataset_id": da["id"], "training_version": "light"})):
        resp = b.http.request(method, path, json=body)
        err = error(resp, 404)
        assert err["code"].endswith("not_found"), (method, path, err)
    # lists show only one's own objects
    assert [p["id"] for p in ok(b.http.get(f"{L}/projects"))] == [world["project_b"]["id"]]
    assert [m["id"] for m in ok(b.http.get(f"{L}/models"))] == [world["model_b"]["id"]]
    assert world["dataset_b"]["id"] in [d["id"] for d in ok(b.http.get(f"{L}/datasets"))]
    assert da["id"] not in [d["id"] for d in ok(b.http.get(f"{L}/datasets"))]
    # and A's objects are unchanged
    assert ok(a.http.get(f"{L}/projects/{pa['id']}"))["project_name"] == pa["project_name"]
    assert ok(a.http.get(f"{L}/models/{ma['id']}"))["status"] == "Completed"


def test_project_datasets_with_models(world):
    a = world["a"]
    pa, da, ma = world["project_a"], world["dataset_a"], world["model_a"]
    (plain,) = ok(a.http.get(f"{L}/projects/{pa['id']}/datasets"))
    assert plain["id"] == da["id"] and "models" not in plain and "model_ids" not in plain
    (full,) = ok(a.http.get(f"{L}/projects/{pa['id']}/datasets",
                            params={"include_models": "true", "include_models_ids": "true"}))
    assert full["model_ids"] == [ma["id"]] and full["models"][0]["name"] == "orange model"
    assert [m["id"] for m in ok(a.http.get(f"{L}/projects/{pa['id']}/models"))] == [ma["id"]]


# =========================================================================== input rules
def test_upload_rules(world, lora_files, tenants):
    a, _ = tenants
    project = ok(a.http.post(f"{L}/projects", json={"project_name": "rules", "ip_medium": "photography",
                                                    "ip_type": "defined_character", "ip_name": "Lora"}))
    ds = ok(a.http.post(f"{L}/datasets", json={"project_id": project["id"], "name": "rules"}))
    images = f"{L}/datasets/{ds['id']}/images"
    # file_path (a path on our server) is refused with the reason and the alternative
    err = detail(a.http.post(images, json={"dataset_id": ds["id"], "file_path": "/etc/passwd"}),
                 ["body", "file_path"], "file_path_not_supported")
    assert "image_url" in err["msg"]
    err = detail(a.http.post(images, json={"dataset_id": ds["id"]}), ["body", "image_url"], "image_required")
    assert "image_file" in err["msg"] and "multipart" in err["msg"]
    # path and body ids must agree; path ids must be integers
    url = lora_files.image("rules-ok.png", training_image(ORANGE, TEAL, 0))
    err = detail(a.http.post(images, json={"dataset_id": ds["id"] + 1000, "image_url": url}),
                 ["body", "dataset_id"], "id_mismatch")
    assert str(ds["id"]) in err["msg"] and str(ds["id"] + 1000) in err["msg"]
    detail(a.http.get(f"{L}/datasets/abc"), ["path", "dataset_id"], "int_parsing")
    detail(a.http.put(f"{L}/projects/{project['id']}", json={"project_id": project["id"] + 1, "project_name": "x"}),
           ["body", "project_id"], "id_mismatch")
    # the URL is fetched SSRF-safely: 127.0.0.1 is not on the allow-list
    detail(a.http.post(images, json={"dataset_id": ds["id"], "image_url": "http://127.0.0.1:9/x.png"}),
           ["body", "image_url"], "input_url_blocked")
    # it must be a real image of an allowed format and size
    detail(a.http.post(images, json={"dataset_id": ds["id"],
                                     "image_url": lora_files.put("rules-text.png", b"not an image")}),
           ["body", "image_url"], "not_an_image")
    detail(a.http.post(images, json={"dataset_id": ds["id"], "image_url": lora_files.put(
        "rules.gif", encode(training_image(ORANGE, TEAL, 0), "GIF"), "image/gif")}),
        ["body", "image_url"], "image_format_not_allowed")
    detail(a.http.post(images, json={"dataset_id": ds["id"], "image_url": lora_files.image(
        "rules-small.png", training_image(ORANGE, TEAL, 0, (200, 120)))}), ["body", "image_url"], "image_size_not_allowed")
    assert ok(a.http.get(images)) == []
    # base64 (with or without a data: prefix) and multipart uploads, checked the same way
    png = encode(training_image(ORANGE, TEAL, 1), "PNG")
    b64 = base64.b64encode(png).decode()
    by_b64 = ok(a.http.post(images, json={"dataset_id": ds["id"], "image_file": f"data:image/png;base64,{b64}",
                                          "image_name": "b64.png"}))
    assert by_b64["width"] == 320 and by_b64["format"] == "PNG" and by_b64["source_url"] is None
    by_form = ok(a.http.post(images, files={"file": ("form.png", png, "image/png")}))
    assert by_form["image_name"] == "form.png" and "orange" in by_form["caption"]
    detail(a.http.post(images, files={"file": ("bad.png", b"not an image", "image/png")}),
           ["body", "image_file"], "not_an_image")
    detail(a.http.post(images, json={"dataset_id": ds["id"], "image_file": "%%%"}), ["body", "image_file"],
           "base64_invalid")
    small = base64.b64encode(encode(training_image(ORANGE, TEAL, 0, (200, 120)), "PNG")).decode()
    detail(a.http.post(images, json={"dataset_id": ds["id"], "image_file": small}), ["body", "image_file"],
           "image_size_not_allowed")
    detail(a.http.post(images, data={"dataset_id": str(ds["id"] + 1)}, files={"file": ("x.png", png, "image/png")}),
           ["body", "dataset_id"], "id_mismatch")
    for uploaded in (by_b64, by_form):
        assert ok(a.http.delete(f"{images}/{uploaded['id']}"))["deleted"] is True
    assert ok(a.http.get(images)) == []
    # 004's prose rule: ip_name for defined_character
    detail(a.http.post(f"{L}/projects", json={"project_name": "x", "ip_medium": "photography",
                                              "ip_type": "defined_character"}), ["body", "ip_name"], "ip_name_required")

    # captions: manual, regenerated, and for the whole dataset after a new caption prefix
    image = ok(a.http.post(images, json={"dataset_id": ds["id"], "image_url": url, "image_name": "pose.png"}))
    assert image["image_name"] == "pose.png" and "orange" in image["caption"]
    cap = f"{images}/{image['id']}/caption"
    manual = ok(a.http.put(cap, json={"dataset_id": ds["id"], "image_id": image["id"], "caption": "Lora waving"}))
    assert manual["caption"] == "Lora waving" and manual["caption_source"] == "manual"
    detail(a.http.put(cap, json={"dataset_id": ds["id"], "image_id": image["id"], "caption": "x",
                                 "regenerate_caption": True}), ["body", "caption"], "caption_conflict")
    detail(a.http.put(cap, json={"dataset_id": ds["id"], "image_id": image["id"] + 1, "caption": "x"}),
           ["body", "image_id"], "id_mismatch")
    again = ok(a.http.put(cap, json={"dataset_id": ds["id"], "image_id": image["id"], "regenerate_caption": True}))
    assert again["caption_source"] == "automatic" and "orange" in again["caption"]
    ok(a.http.put(f"{L}/datasets/{ds['id']}", json={"dataset_id": ds["id"], "caption_prefix": "Lora, a fox mascot"}))
    started = ok(a.http.put(f"{images}/captions"))
    assert started["captions_update_status"] in ("in_progress", "completed")
    deadline = time.time() + 10
    while ok(a.http.get(f"{L}/datasets/{ds['id']}"))["captions_update_status"] != "completed":
        assert time.time() < deadline
        time.sleep(0.2)
    (recaptioned,) = ok(a.http.get(images))
    assert recaptioned["caption"].startswith("Lora, a fox mascot, ") and "orange" in recaptioned["caption"]
    # deleting an image
    assert ok(a.http.delete(f"{images}/{image['id']}"))["deleted"] is True
    error(a.http.get(f"{images}/{image['id']}"), 404, "image_not_found")


# =========================================================================== training states
def test_training_state_errors(world, lora_files, tenants, slow_training):
    a, _ = tenants
    project = ok(a.http.post(f"{L}/projects", json={"project_name": "states", "ip_medium": "illustration",
                                                    "ip_type": "object_variants"}))
    ds = ok(a.http.post(f"{L}/datasets", json={"project_id": project["id"], "name": "states"}))
    for i in range(4):
        url = lora_files.image(f"states-{i}.png", training_image(TEAL, ORANGE, i))
        ok(a.http.post(f"{L}/datasets/{ds['id']}/images", json={"dataset_id": ds["id"], "image_url": url}))
    model = ok(a.http.post(f"{L}/models", json={"name": "m", "dataset_id": ds["id"], "training_version": "light"}))
    # a draft dataset cannot be trained on; 4 images cannot be completed
    error(a.http.post(f"{L}/models/{model['id']}/training/start"), 409, "dataset_not_completed")
    error(a.http.put(f"{L}/datasets/{ds['id']}", json={"dataset_id": ds["id"], "status": "completed"}), 409,
          "dataset_too_small")
    # not trained → no generation, no stop
    detail(a.http.post(f"{L}/image/generation/generate-image", json={"model_id": str(model["id"]), "prompt": "abcd"}),
           ["body", "model_id"], "model_not_trained")
    error(a.http.post(f"{L}/models/{model['id']}/training/stop"), 409, "not_training")
    url = lora_files.image("states-4.png", training_image(TEAL, ORANGE, 4))
    ok(a.http.post(f"{L}/datasets/{ds['id']}/images", json={"dataset_id": ds["id"], "image_url": url}))
    ok(a.http.put(f"{L}/datasets/{ds['id']}", json={"dataset_id": ds["id"], "status": "completed"}))
    # a completed dataset takes no new images
    error(a.http.post(f"{L}/datasets/{ds['id']}/images", json={"dataset_id": ds["id"], "image_url": url}), 409,
          "dataset_completed")
    ok(a.http.post(f"{L}/models/{model['id']}/training/start"))
    error(a.http.post(f"{L}/models/{model['id']}/training/start"), 409, "training_in_progress")
    error(a.http.delete(f"{L}/models/{model['id']}"), 409, "training_in_progress")
    error(a.http.delete(f"{L}/datasets/{ds['id']}"), 409, "training_in_progress")
    error(a.http.delete(f"{L}/projects/{project['id']}"), 409, "training_in_progress")
    detail(a.http.post(f"{L}/image/generation/generate-vector", json={"model_id": str(model["id"]), "prompt": "abcd"}),
           ["body", "model_id"], "model_not_trained")
    stopping = ok(a.http.post(f"{L}/models/{model['id']}/training/stop"))
    assert stopping["status"] in ("Stopping", "Stopped")
    stopped = wait_model(a, model["id"], {"Stopped"})
    assert stopped["trained"] is False and stopped["training_finished_at"]
    error(a.http.post(f"{L}/models/{model['id']}/training/start"), 409, "training_not_restartable")
    # now everything can go, and the records go with it
    ok(a.http.put(f"{L}/models/{model['id']}", json={"model_id": model["id"], "name": "renamed",
                                                      "description": "stopped early"}))
    assert ok(a.http.get(f"{L}/models/{model['id']}"))["name"] == "renamed"
    assert ok(a.http.delete(f"{L}/projects/{project['id']}"))["deleted"] is True
    error(a.http.get(f"{L}/models/{model['id']}"), 404, "model_not_found")
    error(a.http.get(f"{L}/datasets/{ds['id']}"), 404, "dataset_not_found")


def test_failed_training_is_reported(world, tenants, system: System, lora_files):
    a, _ = tenants
    ds = world["dataset_a"]
    model = ok(a.http.post(f"{L}/models", json={"name": "doomed", "dataset_id": ds["id"], "training_version": "max"}))
    system.faults({"on": "submit", "kind": "error", "match": "start_training", "message": "GPU lost"})
    ok(a.http.post(f"{L}/models/{model['id']}/training/start"))
    failed = wait_model(a, model["id"], {"Failed", "Completed"})
    assert failed["status"] == "Failed" and failed["error"]
    detail(a.http.post(f"{L}/image/generation/generate-image", json={"model_id": str(model["id"]), "prompt": "abcd"}),
           ["body", "model_id"], "model_not_trained")
    ok(a.http.delete(f"{L}/models/{model['id']}"))


# =========================================================================== upstream errors
def test_upstream_errors_are_mapped_and_leave_no_record(world, tenants, system: System):
    a, _ = tenants
    before = ok(a.http.get(f"{L}/projects"))
    body = {"project_name": "flaky", "ip_medium": "illustration", "ip_type": "style"}
    system.faults({"on": "submit", "kind": "500", "match": "tailored-gen/projects"})
    error(a.http.post(f"{L}/projects", json=body), 502, "upstream_500")
    system.faults({"on": "submit", "kind": "429", "match": "tailored-gen/projects", "retry_after": 3})
    resp = a.http.post(f"{L}/projects", json=body)
    error(resp, 429, "upstream_rate_limited")
    assert resp.headers["Retry-After"] == "3"
    assert ok(a.http.get(f"{L}/projects")) == before  # nothing recorded for the failed calls
    system.faults({"on": "submit", "kind": "error", "code": 409, "match": "tailored-gen/datasets/",
                   "message": "Conflict error (completed dataset)"})
    ds = world["dataset_a"]
    error(a.http.put(f"{L}/datasets/{ds['id']}", json={"dataset_id": ds["id"], "name": "renamed"}), 409)
    assert ok(a.http.get(f"{L}/datasets/{ds['id']}"))["name"] == ds["name"]
    # Bria refusing the input is a 422 in FastAPI's shape
    system.faults({"on": "submit", "kind": "error", "code": 400, "match": "tailored-gen/projects",
                   "message": "Bad request - validation error"})
    item = detail(a.http.post(f"{L}/projects", json=body), ["body"], "upstream_rejected")
    assert "validation error" in item["msg"]
    created = ok(a.http.post(f"{L}/projects", json=body))  # and with Bria well again it works
    assert ok(a.http.delete(f"{L}/projects/{created['id']}"))["deleted"] is True


def test_auth_and_envelope(system: System, world):
    anon = httpx.get(f"{system.api_url}{L}/projects")
    error(anon, 401)
    resp = world["a"].http.get(f"{L}/projects")
    assert "RateLimit" in resp.headers and ok(resp)
