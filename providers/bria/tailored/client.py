"""Bria Tailored Generation (LoRA) management: the upstream calls behind /api/v1/bria-lora/….

Every call goes to Bria API v1 under ``{base}/v1/tailored-gen/…`` with the ``api_token`` header
(``BriaHttp``: the token is only ever sent to Bria's origin). Sources, read for this mapping:

  [T1] Bria's Tailored Generation OpenAPI reference ("Tailored Generation API Reference",
       servers https://engine.prod.bria-api.com/v1 for the training endpoints), as mirrored in
       api-evangelist/bria ``openapi/bria-tailored-generation-openapi-original.yml`` and
       ``openapi/bria-model-api-openapi.yml``: paths, methods, bodies, answers and status codes:
         POST   /tailored-gen/projects                    {project_name, ip_medium, ip_type,
                                                          project_description, ip_name, ip_description} → 201 {id, …, status}
         PUT    /tailored-gen/projects/{id}               {project_name, project_description, ip_name, ip_description}
         DELETE /tailored-gen/projects/{id}               → 204; 409 while a model trains
         POST   /tailored-gen/datasets                    {project_id, name} → 201 {id, status: draft, captions_update_status}
         GET    /tailored-gen/datasets/{id}               → {…, status, captions_update_status, images_count}
         PUT    /tailored-gen/datasets/{id}               {name, status} (status completed needs ≥ 5 images: 409)
         DELETE /tailored-gen/datasets/{id}               → 204; 409 if a model training on it
         POST   /tailored-gen/datasets/{id}/images        {file | image_url, image_name, increase_resolution}
                                                          → 201 {id, caption, caption_source, image_url, …};
                                                          409 completed dataset / 200 images; 412 resolution
         GET    /tailored-gen/datasets/{id}/images        → [{id, caption, caption_source, …}]
         PUT    /tailored-gen/datasets/{id}/images        regenerate all captions → 202 {…, captions_update_status}
         PUT    /tailored-gen/datasets/{id}/images/{iid}  {caption} | {regenerate_caption: true} (not both: 400)
         DELETE /tailored-gen/datasets/{id}/images/{iid}  → 204; 409 in a completed dataset
         POST   /tailored-gen/models                      {name, dataset_id, description, …} → 201 {id, status: Created}
         GET    /tailored-gen/models/{id}                 → {status: Created|InProgress|Completed|Failed|Stopping|Stopped}
         PUT    /tailored-gen/models/{id}                 {name, description}
         DELETE /tailored-gen/models/{id}                 → 204; 409 while training
         POST   /tailored-gen/models/{id}/start_training  → 200 {status: InProgress}; 409 already started;
                                                          412 dataset not 'completed'
         POST   /tailored-gen/models/{id}/stop_training   → 200; 409 not training
  [T2] Bria-AI/ComfyUI-BRIA-API ``nodes/tailored_gen_node.py`` (Bria's own client): generation with
       a tailored model is ``POST /v1/text-to-image/tailored/{model_id}`` with ``prompt,
       num_results, aspect_ratio, sync, seed, model_influence, negative_prompt, fast, steps_num,
       include_generation_prefix, content_moderation, guidance_method_N(_scale, _image_file)``;
       the answer is ``{"result": [{"urls": [url], "seed": n}]}``.
  [T3] Third-party integrations found in public code (xkazm04/hyper ``docs/analysis/bria.md``,
       a Supabase edge function), hence [unconfirmed]: ``training_version`` "light" | "max" on
       POST /tailored-gen/models, ``caption_prefix`` on PUT /tailored-gen/datasets/{id} (the
       older, prefix-based captioning that Vision Studio's 004 still describes), the JSON body
       ``{"file": <base64>}`` for an image upload, and ``POST /v1/text-to-vector/tailored/{model_id}``.

Not confirmed, decided here:
* Bria's current reference describes newer fields (``training_mode``, ``visual_schema``,
  ``upload_type``) that Vision Studio's 004 does not have; we send 004's (``training_version``,
  ``caption_prefix``) and nothing else. [unconfirmed]
* Upload body: [T1] lists ``file`` (format: binary) under ``application/json``; we send the image
  bytes we fetched and checked as base64 in ``file`` (as [T3] does), never the client's URL, so
  Bria processes exactly what we validated. [unconfirmed]
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from providers.base import Permanent
from providers.bria.client import BriaHttp, to_upstream_error

BASE = "/v1/tailored-gen"
# Job-param keys set by the API's intake (service.py ``resolver``) once a client's model id is
# known to be the tenant's trained model: Bria's id for it and its training version. Names that
# start with "_" are never request fields, so a client cannot set them; a job without them (e.g.
# from a batch, which has no intake hook) is refused by the operations instead of guessing.
TAILORED_MODEL_KEY = "_tailored_model_id"
TRAINING_VERSION_KEY = "_tailored_training_version"
# Bria's model states [T1]; "Completed" is a trained, usable model.
MODEL_STATES = ("Created", "InProgress", "Completed", "Failed", "Stopping", "Stopped")
TRAINING_STATES = ("InProgress", "Stopping")
TRAINED = "Completed"
# Dataset rules [T1]: at least 5 images to mark a dataset completed, at most 200 images
# ("basic" upload type); uploaded images of at least 256x256 (smaller than 1024x1024 ones are
# upscaled by Bria with increase_resolution=true, its default); JPEG, PNG or WEBP.
MIN_IMAGES_TO_COMPLETE = 5
MAX_DATASET_IMAGES = 200
MIN_IMAGE_SIDE = 256


def _id(value: Any) -> str:
    return quote(str(value), safe="")


class TailoredClient:
    """Synchronous client for Bria's tailored-generation management API (one pooled connection
    set, shared by threads). Failures raise ``RateLimited`` / ``Retryable`` / ``Permanent``
    (``providers.bria.client.to_upstream_error``); the API maps them to HTTP answers."""

    def __init__(self, base_url: str, api_token: str, timeout: float = 30.0) -> None:
        self._http = BriaHttp(base_url, api_token, timeout)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.send(method, self.base_url + path, json=body)
        if response.status_code >= 400:
            raise to_upstream_error(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise Permanent(f"Bria answered {response.status_code} with a body that is not JSON",
                            code="upstream_bad_response", http_status=response.status_code) from None

    def _object(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = self._call(method, path, body)
        if not isinstance(data, dict):
            raise Permanent(f"Bria answered {method} {path} without a JSON object", code="upstream_bad_response")
        return data

    @staticmethod
    def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if v is not None}

    # ------------------------------------------------------------------ projects [T1]
    def create_project(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._object("POST", f"{BASE}/projects", self._drop_none(body))

    def update_project(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._object("PUT", f"{BASE}/projects/{_id(project_id)}", self._drop_none(body))

    def delete_project(self, project_id: str) -> None:
        self._call("DELETE", f"{BASE}/projects/{_id(project_id)}")

    # ------------------------------------------------------------------ datasets [T1] (+ caption_prefix [T3])
    def create_dataset(self, project_id: str, name: str) -> dict[str, Any]:
        return self._object("POST", f"{BASE}/datasets", {"project_id": _as_int(project_id), "name": name})

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._object("GET", f"{BASE}/datasets/{_id(dataset_id)}")

    def update_dataset(self, dataset_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._object("PUT", f"{BASE}/datasets/{_id(dataset_id)}", self._drop_none(body))

    def delete_dataset(self, dataset_id: str) -> None:
        self._call("DELETE", f"{BASE}/datasets/{_id(dataset_id)}")

    def upload_image(self, dataset_id: str, image_base64: str, image_name: str | None) -> dict[str, Any]:
        body = {"file": image_base64, "image_name": image_name, "increase_resolution": True}
        return self._object("POST", f"{BASE}/datasets/{_id(dataset_id)}/images", self._drop_none(body))

    def list_images(self, dataset_id: str) -> list[dict[str, Any]]:
        data = self._call("GET", f"{BASE}/datasets/{_id(dataset_id)}/images")
        if isinstance(data, dict) and isinstance(data.get("images"), list):
            data = data["images"]
        if not isinstance(data, list):
            raise Permanent("Bria answered the image list without a JSON array", code="upstream_bad_response")
        return [item for item in data if isinstance(item, dict)]

    def update_caption(self, dataset_id: str, image_id: str, *, caption: str | None,
                       regenerate: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"regenerate_caption": True} if regenerate else {"caption": caption}
        return self._object("PUT", f"{BASE}/datasets/{_id(dataset_id)}/images/{_id(image_id)}", body)

    def delete_image(self, dataset_id: str, image_id: str) -> None:
        self._call("DELETE", f"{BASE}/datasets/{_id(dataset_id)}/images/{_id(image_id)}")

    def regenerate_captions(self, dataset_id: str) -> dict[str, Any]:
        return self._object("PUT", f"{BASE}/datasets/{_id(dataset_id)}/images")

    # ------------------------------------------------------------------ models [T1] (+ training_version [T3])
    def create_model(self, *, name: str, dataset_id: str, training_version: str,
                     description: str | None) -> dict[str, Any]:
        body = {"name": name, "dataset_id": _as_int(dataset_id), "training_version": training_version,
                "description": description}
        return self._object("POST", f"{BASE}/models", self._drop_none(body))

    def get_model(self, model_id: str) -> dict[str, Any]:
        return self._object("GET", f"{BASE}/models/{_id(model_id)}")

    def update_model(self, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._object("PUT", f"{BASE}/models/{_id(model_id)}", self._drop_none(body))

    def delete_model(self, model_id: str) -> None:
        self._call("DELETE", f"{BASE}/models/{_id(model_id)}")

    def start_training(self, model_id: str) -> dict[str, Any]:
        # [T1] documents an optional body of expert parameters; fully automated training sends none.
        data = self._call("POST", f"{BASE}/models/{_id(model_id)}/start_training", {})
        return data if isinstance(data, dict) else {}

    def stop_training(self, model_id: str) -> dict[str, Any]:
        data = self._call("POST", f"{BASE}/models/{_id(model_id)}/stop_training")
        return data if isinstance(data, dict) else {}


def _as_int(value: Any) -> Any:
    """Bria types its ids as integers [T1]; keep any other upstream id as it came."""
    text = str(value)
    return int(text) if text.isdigit() else value


def upstream_id(data: dict[str, Any], *keys: str) -> str:
    """The id of a created object in Bria's answer (``id``, or e.g. ``project_id``)."""
    for key in ("id", *keys):
        value = data.get(key)
        if value not in (None, ""):
            return str(value)
    raise Permanent(f"Bria's answer has no id: {str(data)[:200]}", code="upstream_bad_response")
