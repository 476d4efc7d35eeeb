"""What the tailored-generation integration tests share: the path, the envelope checks, training
images drawn in two colours, and building a project → dataset → images → trained model."""

from __future__ import annotations

import time
from typing import Any

import httpx
from PIL import Image, ImageDraw

from tests.integration.bria_media import Files
from tests.integration.conftest import Client

L = "/api/v1/bria-lora"
TRAINING_SECONDS = 1.5
ORANGE, TEAL = (235, 120, 20), (20, 150, 150)
PURPLE, LIME = (120, 40, 160), (150, 220, 40)


def training_image(main: tuple[int, int, int], accent: tuple[int, int, int], i: int, size=(320, 320)) -> Image.Image:
    img = Image.new("RGB", size, main)
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.ellipse((w * 0.1 + i * 8, h * 0.2, w * 0.5 + i * 8, h * 0.6), fill=accent)
    return img


def ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == "success" and set(body) == {"status", "result"}, body
    return body["result"]


def error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == "error" and set(body["error"]) >= {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def detail(resp: httpx.Response, loc: list[Any], kind: str | None = None) -> dict[str, Any]:
    assert resp.status_code == 422, resp.text
    items = resp.json()["detail"]
    hit = [d for d in items if d["loc"] == loc]
    assert hit, items
    if kind is not None:
        assert hit[0]["type"] == kind, items
    return hit[0]


def wait_model(c: Client, model_id: int, until: set[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        model = ok(c.http.get(f"{L}/models/{model_id}"))
        if model["status"] in until:
            return model
        time.sleep(0.2)
    raise TimeoutError(f"model {model_id} still {model['status']}")


def near_palette(rgb: tuple[int, ...], palette: list[tuple[int, int, int]], tol: int = 40) -> bool:
    return any(all(abs(a - b) <= tol for a, b in zip(rgb, p)) for p in palette)


def build_dataset(c: Client, files: Files, tag: str, colours: tuple[tuple[int, int, int], ...],
                  n: int = 5) -> tuple[dict, dict, list[dict]]:
    project = ok(c.http.post(f"{L}/projects", json={"project_name": f"brand {tag}", "ip_medium": "illustration",
                                                    "ip_type": "style", "project_description": "flat shapes"}))
    dataset = ok(c.http.post(f"{L}/datasets", json={"project_id": project["id"], "name": f"set {tag}"}))
    images = []
    for i in range(n):
        url = files.image(f"{tag}-{i}.png", training_image(*colours, i))
        images.append(ok(c.http.post(f"{L}/datasets/{dataset['id']}/images",
                                     json={"dataset_id": dataset["id"], "image_url": url})))
    return project, dataset, images


def trained_model(c: Client, dataset: dict, name: str, version: str = "light") -> dict[str, Any]:
    ok(c.http.put(f"{L}/datasets/{dataset['id']}", json={"dataset_id": dataset["id"], "status": "completed"}))
    model = ok(c.http.post(f"{L}/models", json={"name": name, "dataset_id": dataset["id"],
                                                 "training_version": version}))
    assert model["status"] == "Created"
    started = ok(c.http.post(f"{L}/models/{model['id']}/training/start"))
    assert started["status"] == "InProgress" and started["training_started_at"]
    return model
