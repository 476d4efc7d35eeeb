"""The Bria adapter: Bria API v2's async protocol mapped onto the provider port.

Protocol (docs.bria.ai "Async requests, webhooks and polling" and "Status service"):
``POST /v2/<endpoint>`` with ``sync: false`` → ``202 {request_id, status_url}``; then
``GET /v2/status/{request_id}`` → ``IN_PROGRESS`` | ``COMPLETED`` (``result.image_url`` or
``video_url``, optional ``seed``/``prompt``/``refined_prompt``) | ``ERROR`` (``error{code,
message, details}``) | ``UNKNOWN`` (Bria's internal error, ≈ HTTP 500), and ``404
{"status": "NOT_FOUND"}`` for an unknown or expired id.

This module depends only on ``providers.base`` and its own package, so the worker can use it
without the adapter knowing anything about jobs, storage or the API.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any
from urllib.parse import quote

import httpx

from providers.base import (
    Failed,
    Finished,
    Operation,
    Output,
    Pending,
    Permanent,
    PollResult,
    Retryable,
    Submitted,
    UpstreamTask,
)
from providers.bria.client import BriaHttp, to_upstream_error
from providers.bria.operations import ONE_IMAGE_PER_REQUEST, OPERATIONS

STATUS_PATH = "/v2/status/{request_id}"
# Bria v1 endpoints have no status service; they are called with sync=true and may hold the
# connection while they render, so they get a longer read timeout than the v2 submit.
V1_SYNC_TIMEOUT = 180.0
RESULT_META_FIELDS = ("seed", "prompt", "refined_prompt")
MAX_RESULTS = 4  # Vision Studio's num_results bound (1–4)

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"PK\x03\x04", "application/zip"), (b"\x1aE\xdf\xa3", "video/webm"))
_GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


class BriaProvider:
    """``Provider`` for Bria API v2.

    ``base_url`` is the service origin without ``/v2`` – ``https://engine.prod.bria-api.com`` or
    the simulator's ``http://127.0.0.1:8591`` – because operation paths already start with it.
    """

    name = "bria"

    def __init__(
        self,
        base_url: str,
        api_token: str,
        timeout: float = 30.0,
        max_download_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.operations: list[Operation] = list(OPERATIONS)
        self.max_download_bytes = max_download_bytes
        self._http = BriaHttp(base_url, api_token, timeout)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------- submit
    def submit(self, op: Operation, params: dict[str, Any]) -> Submitted | Finished:
        """Start the work upstream; one Bria request per image for single-image endpoints.

        If a later request of a fan-out fails, the error propagates and the earlier requests
        are abandoned upstream (Bria has no cancel endpoint); the worker's retry submits anew.
        """
        if op.build is None or op.upstream_path is None:
            raise Permanent(f"operation {op.name} has no Bria v2 mapping", code="unsupported_operation")
        path = op.route(params) if op.route is not None else op.upstream_path
        url = self.base_url + path
        if path.startswith("/v1/"):
            finished = self._submit_v1(url, {**op.build(params), "sync": True})
            return self._with_archive_members(finished) if op.output == "archive" else finished
        accepted = [self._submit_one(url, body) for body in self._request_bodies(op, params, path)]
        if all(finished is not None for _, finished in accepted):
            outputs = [output for _, finished in accepted for output in finished.outputs]
            return Finished(outputs, meta=accepted[0][1].meta)
        # Bria keeps inline results pollable by request_id, so a mix is simply polled.
        if any(not task.id for task, _ in accepted):
            raise Permanent("Bria answered an inline result without a request_id", code="upstream_bad_response")
        return Submitted([task for task, _ in accepted])

    def _request_bodies(self, op: Operation, params: dict[str, Any], path: str = "") -> list[dict[str, Any]]:
        body = {**op.build(params), "sync": False}  # always async: the worker polls
        if op.name not in ONE_IMAGE_PER_REQUEST or not path.startswith("/v2/"):
            return [body]
        count = max(1, min(int(params.get("num_results") or 1), MAX_RESULTS))
        seed = body.get("seed")
        if seed is None:
            return [dict(body) for _ in range(count)]
        return [{**body, "seed": seed + i} for i in range(count)]

    def _submit_one(self, url: str, body: dict[str, Any]) -> tuple[UpstreamTask, Finished | None]:
        """POST one request; returns its task and, if Bria answered with the result inline, that."""
        data = self._post_json(url, body)
        request_id = data.get("request_id")
        task = UpstreamTask(str(request_id), data.get("status_url")) if request_id else None
        result = data.get("result")
        if isinstance(result, dict) and _output_url(result):
            return task or UpstreamTask(""), _finished(result)
        if task is None:
            raise Permanent("Bria answered without a request_id or a result", code="upstream_bad_response")
        return task, None

    def _submit_v1(self, url: str, body: dict[str, Any]) -> Finished:
        """One synchronous Bria v1 call; its answer holds the result URLs (see ``v1_outputs``)."""
        data = self._post_json(url, body, timeout=V1_SYNC_TIMEOUT)
        outputs, meta = v1_outputs(data)
        if not outputs:
            raise Permanent(f"Bria answered without a result URL: {str(data)[:300]}", code="upstream_no_output")
        return Finished(outputs, meta=meta)

    def _with_archive_members(self, finished: Finished) -> Finished:
        """A ZIP result (get-masks: "a ZIP containing k mask files") stays the first output, as
        the reference documents, and each PNG inside it becomes an output of its own, so clients
        also get every mask as an image URL."""
        outputs = list(finished.outputs)
        archive, content_type = self.download(outputs[0])
        if content_type != "application/zip":
            return finished
        outputs[0] = Output(data=archive, content_type="application/zip")
        try:
            with zipfile.ZipFile(io.BytesIO(archive)) as members:
                for name in sorted(members.namelist()):
                    info = members.getinfo(name)
                    if info.is_dir() or info.file_size > self.max_download_bytes:
                        continue
                    data = members.read(name)
                    if _content_type(None, data).startswith("image/"):
                        outputs.append(Output(data=data, content_type=_content_type(None, data), meta={"name": name}))
        except zipfile.BadZipFile:
            raise Permanent("Bria's mask archive is not a valid ZIP file", code="upstream_bad_response") from None
        return Finished(outputs, meta=finished.meta)

    def _post_json(self, url: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        response = self._http.send("POST", url, json=body, timeout=timeout)
        if response.status_code >= 400:
            raise to_upstream_error(response)
        data = _json_object(response)
        if data is None:
            raise Permanent(f"Bria answered {response.status_code} with no JSON object", code="upstream_bad_response",
                            http_status=response.status_code)
        if isinstance(data.get("error"), dict):
            failed = _failed(data["error"])
            raise Permanent(failed.message, code=failed.code, http_status=response.status_code)
        return data

    # ------------------------------------------------------------------- quick calls
    def call(self, op: Operation, params: dict[str, Any]) -> Any:
        """A ``Kind.QUICK`` operation: one inline call; returns the client's ``result``."""
        if op.build is None or op.upstream_path is None:
            raise Permanent(f"operation {op.name} has no Bria mapping", code="unsupported_operation")
        data = self._post_json(self.base_url + op.upstream_path, op.build(params), timeout=V1_SYNC_TIMEOUT)
        if op.name == "bria.enhance_prompt":
            enhanced = data.get("prompt variations") or data.get("prompt_variations") or data.get("result")
            if isinstance(enhanced, list):
                enhanced = enhanced[0] if enhanced else None
            if not isinstance(enhanced, str) or not enhanced:
                raise Permanent(f"Bria's prompt enhancer answered without a prompt: {str(data)[:300]}",
                                code="upstream_bad_response")
            return {"prompt": params.get("prompt"), "enhanced_prompt": enhanced}
        return data

    # ------------------------------------------------------------------- poll
    def poll(self, op: Operation, task: UpstreamTask) -> PollResult:
        response = self._http.send("GET", self._status_url(task))
        if response.status_code == 404:
            return Failed("upstream_not_found", f"Bria does not know request {task.id} (unknown or expired)")
        if response.status_code >= 400:
            raise to_upstream_error(response)
        data = _json_object(response)
        if data is None:
            raise Retryable("Bria's status answer is not a JSON object", code="upstream_bad_response",
                            http_status=response.status_code)
        status = _status_of(data)
        if status == "IN_PROGRESS":
            return Pending(_progress(data.get("progress")))
        if status == "COMPLETED":
            result = data.get("result") if isinstance(data.get("result"), dict) else {}
            if not _output_url(result):
                return Failed("upstream_no_output", f"Bria completed request {task.id} without an image or video URL",
                              details=result or None)
            return _finished(result)
        if status == "ERROR":
            return _failed(data.get("error") if isinstance(data.get("error"), dict) else {})
        if status == "UNKNOWN":
            raise Retryable(f"Bria reports status UNKNOWN for request {task.id} (internal error)",
                            code="upstream_unknown_status", http_status=response.status_code)
        raise Retryable(f"Bria answered an unexpected status {status!r}", code="upstream_bad_response",
                        http_status=response.status_code)

    def _status_url(self, task: UpstreamTask) -> str:
        """Bria's own ``status_url`` when it points at Bria; otherwise the documented path."""
        if task.status_url and self._http.is_bria_url(task.status_url):
            return task.status_url
        return self.base_url + STATUS_PATH.format(request_id=quote(task.id, safe=""))

    # ------------------------------------------------------------------- download
    def download(self, output: Output) -> tuple[bytes, str]:
        if output.data is not None:
            return output.data, _content_type(output.content_type, output.data)
        if not output.url:
            raise Permanent("output has neither data nor a URL", code="upstream_no_output")
        data, content_type = self._http.download(output.url, self.max_download_bytes)
        return data, _content_type(content_type or output.content_type, data)


# --------------------------------------------------------------------------- mapping helpers
def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _status_of(data: dict[str, Any]) -> str:
    """The body's ``status``; when absent, derived the way Bria's SDKs do (bria-client contract)."""
    if isinstance(data.get("status"), str):
        return data["status"].upper()
    if data.get("error"):
        return "ERROR"
    if data.get("result"):
        return "COMPLETED"
    if data.get("status_url"):
        return "IN_PROGRESS"
    return "UNKNOWN"


def _progress(value: Any) -> float | None:
    """Bria documents no progress field; accept a 0..1 fraction or a 0..100 percentage if sent."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    fraction = value / 100 if value > 1 else value
    return max(0.0, min(1.0, float(fraction)))


def _output_url(result: dict[str, Any]) -> str | None:
    url = result.get("image_url") or result.get("video_url")
    return url if isinstance(url, str) and url else None


def v1_outputs(data: dict[str, Any]) -> tuple[list[Output], dict[str, Any]]:
    """Result URLs from the answer shapes of Bria's v1 endpoints:

    * ``{"result_url": url}`` — product cutout / packshot / shadow [S1];
    * ``{"result": [{"urls": [url, …], "seed": n}, …]}`` — text-to-image / vector / reimagine [S5];
    * ``{"result": [[url, seed, session_id], …]}`` — lifestyle shots [S1];
    * ``{"objects_masks": url}`` — mask generator (a ZIP) [S5].
    """
    outputs: list[Output] = []
    seeds: list[Any] = []
    if isinstance(data.get("result_url"), str):
        outputs.append(Output(url=data["result_url"]))
    if isinstance(data.get("objects_masks"), str):
        outputs.append(Output(url=data["objects_masks"], content_type="application/zip"))
    result = data.get("result")
    if isinstance(result, dict) and _output_url(result):
        outputs.append(Output(url=_output_url(result)))
        seeds.append(result.get("seed"))
    for item in result if isinstance(result, list) else []:
        if isinstance(item, dict):
            for url in item.get("urls") or ([item["url"]] if item.get("url") else []):
                outputs.append(Output(url=url, meta={"seed": item.get("seed")}))
                seeds.append(item.get("seed"))
        elif isinstance(item, list) and item and isinstance(item[0], str):
            outputs.append(Output(url=item[0], meta={"seed": item[1] if len(item) > 1 else None}))
            seeds.append(item[1] if len(item) > 1 else None)
    meta: dict[str, Any] = {}
    if seeds and seeds[0] is not None:
        meta["seed"] = seeds[0]
        if len(seeds) > 1:
            meta["seeds"] = seeds
    return outputs, meta


def _finished(result: dict[str, Any]) -> Finished:
    meta = {key: result[key] for key in RESULT_META_FIELDS if result.get(key) is not None}
    return Finished([Output(url=_output_url(result), meta=dict(meta))], meta=meta)


def _failed(error: dict[str, Any]) -> Failed:
    code = error.get("code")
    if isinstance(code, str) and code.strip() and not code.strip().isdigit():
        code_text = code.strip()
    elif code is not None and str(code).strip():
        code_text = f"upstream_{str(code).strip()}"
    else:
        code_text = "upstream_error"
    message = str(error.get("message") or "Bria could not process the request")
    return Failed(code_text, message, error.get("details"))


def _content_type(declared: str | None, data: bytes) -> str:
    """The declared media type without parameters; sniffed from the bytes when it is generic."""
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    if media_type not in _GENERIC_TYPES:
        return media_type
    for magic, sniffed in _MAGIC:
        if data.startswith(magic):
            return sniffed
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"
