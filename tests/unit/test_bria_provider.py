"""The Bria adapter: error classification, request mapping, and end-to-end runs against the simulator.

The end-to-end tests start the real simulator (uvicorn, background thread, free port) and drive
``BriaProvider`` through submit → poll → download exactly as the worker does, injecting faults
through the simulator's ``/_sim/`` control API.
"""

from __future__ import annotations

import email.utils
import io
import socket
import time

import httpx
import pytest
from PIL import Image

from providers.base import (
    Failed,
    Finished,
    Output,
    Pending,
    Permanent,
    RateLimited,
    Retryable,
    Submitted,
    UpstreamTask,
)
from providers.bria.client import parse_retry_after, to_upstream_error
from providers.bria.builders.common import strip_data_url
from providers.bria.builders.generation import build_generate_image
from providers.bria.operations import OPERATIONS
from providers.bria.provider import BriaProvider
from providers.bria.schemas import BriaGenerateImageRequest
from providers.simulator.render import size_for
from tests.sim_server import Canned, CannedServer, running_simulator

GENERATE = next(op for op in OPERATIONS if op.name == "bria.generate_image")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# =========================================================================== classification
def _response(status: int, body=None, headers=None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://engine.prod.bria-api.com/v2/image/generate")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_429_with_retry_after_seconds():
    error = to_upstream_error(_response(429, {"error": {"code": 429, "message": "Too Many Requests"}}, {"Retry-After": "7"}))
    assert type(error) is RateLimited
    assert error.retry_after == 7.0
    assert error.http_status == 429
    assert "Too Many Requests" in error.message


def test_429_with_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = to_upstream_error(_response(429, {"message": "slow down"}, {"Retry-After": when}))
    assert type(error) is RateLimited
    assert 27 <= error.retry_after <= 31


@pytest.mark.parametrize("header", [None, "", "soon", "-5"])
def test_429_without_usable_retry_after(header):
    headers = {"Retry-After": header} if header is not None else None
    error = to_upstream_error(_response(429, {"message": "rate limited"}, headers))
    assert type(error) is RateLimited
    assert error.retry_after is None
    assert error.http_status == 429


def test_parse_retry_after_forms():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 + 60) == 0.0  # in the past
    assert parse_retry_after(None) is None
    assert parse_retry_after("later") is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retryable(status):
    error = to_upstream_error(_response(status, {"error": {"code": status, "message": "boom", "details": "x"}}))
    assert type(error) is Retryable
    assert error.http_status == status
    assert error.code == f"upstream_{status}"
    assert "boom" in error.message


def test_server_error_with_html_body_is_retryable():
    error = to_upstream_error(_response(502, text="<html>Bad Gateway</html>"))
    assert type(error) is Retryable
    assert error.http_status == 502


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.PoolTimeout("pool exhausted"),
    ],
)
def test_timeouts_are_retryable(exc):
    error = to_upstream_error(exc)
    assert type(error) is Retryable
    assert error.code == "upstream_timeout"


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_transport_errors_are_retryable(exc):
    error = to_upstream_error(exc)
    assert type(error) is Retryable
    assert error.code == "upstream_unavailable"


@pytest.mark.parametrize(
    "status, body, code, message_parts",
    [
        # Bria's own shape (status ERROR bodies and the SDK contract)
        (400, {"error": {"code": 400, "message": "Invalid aspect ratio", "details": "use 1:1"}}, "upstream_400", ["Invalid aspect ratio", "use 1:1"]),
        (422, {"error": {"code": "content_moderation", "message": "Prompt flagged"}}, "content_moderation", ["Prompt flagged"]),
        (401, {"message": "Unauthorized"}, "upstream_401", ["Unauthorized"]),
        (403, {"error": "forbidden", "message": "Plan does not include this endpoint"}, "upstream_403", ["Plan does not include"]),
        (404, {"detail": "Not Found"}, "upstream_404", ["Not Found"]),
        (422, {"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]}, "upstream_422", ["prompt: Field required"]),
        (400, {"code": "bad_seed", "message": "seed out of range"}, "bad_seed", ["seed out of range"]),
    ],
)
def test_other_4xx_are_permanent_with_upstream_message(status, body, code, message_parts):
    error = to_upstream_error(_response(status, body))
    assert type(error) is Permanent
    assert error.code == code
    assert error.http_status == status
    for part in message_parts:
        assert part in error.message


def test_4xx_with_plain_text_or_empty_body():
    text_error = to_upstream_error(_response(403, text="Access denied by WAF"))
    assert type(text_error) is Permanent and "Access denied by WAF" in text_error.message
    empty_error = to_upstream_error(_response(400, text=""))
    assert type(empty_error) is Permanent
    assert empty_error.message == "Bad Request"
    assert empty_error.http_status == 400


def test_http_status_error_is_unwrapped():
    response = _response(503, {"message": "maintenance"})
    error = to_upstream_error(httpx.HTTPStatusError("x", request=response.request, response=response))
    assert type(error) is Retryable and error.http_status == 503


# =========================================================================== request mapping
def _vision_studio_params(**fields) -> dict:
    """Exactly what the API hands the worker: the validated request, dumped with its defaults."""
    return BriaGenerateImageRequest(**fields).model_dump(mode="json")


def test_operation_entry():
    op = GENERATE
    assert (op.name, op.provider, op.method) == ("bria.generate_image", "bria", "POST")
    assert op.path == "/api/v1/bria/image/generation/generate-image"
    assert op.request_model is BriaGenerateImageRequest
    assert op.kind.value == "job"
    assert op.summary == "Bria Generate Image"
    assert op.tags == ("Image Generation",)
    assert op.upstream_path == "/v2/image/generate"
    assert op.output == "image"
    # FIBO without ControlNet guidance; guidance requests go to Bria's v1 base model.
    assert op.route({"prompt": "a cat"}) == "/v2/image/generate"
    assert op.build({"prompt": "a cat sits"}) == build_generate_image({"prompt": "a cat sits"})


def test_defaults_map_to_a_minimal_bria_body():
    body = build_generate_image(_vision_studio_params(prompt="a red fox in the snow"))
    assert body == {
        "prompt": "a red fox in the snow",
        "aspect_ratio": "1:1",
        "guidance_scale": 5,
        "steps_num": 35,  # Vision Studio's default 30 is below FIBO's range
        "prompt_content_moderation": False,
        "ip_signal": False,
        "visual_input_content_moderation": False,
        "visual_output_content_moderation": False,
    }


def test_full_mapping():
    body = build_generate_image(
        _vision_studio_params(
            prompt="a red fox in the snow",
            aspect_ratio="16:9",
            num_results=3,
            sync=True,
            seed=99,
            negative_prompt="blurry",
            steps_num=50,
            text_guidance_scale=3.6,
            medium="photography",
            prompt_enhancement=True,
            enhance_image=True,
            prompt_content_moderation=True,
            content_moderation=True,
            ip_signal=True,
            bria_model_version="2.3",
        )
    )
    assert body == {
        "prompt": "a red fox in the snow",
        "aspect_ratio": "16:9",
        "seed": 99,
        "negative_prompt": "blurry",
        "steps_num": 50,
        "guidance_scale": 4,
        "style_id": "photoreal",
        "resolution": "4MP",
        "prompt_content_moderation": True,
        "visual_input_content_moderation": True,
        "visual_output_content_moderation": True,
        "ip_signal": True,
    }
    for dropped in ("sync", "num_results", "bria_model_version", "prompt_enhancement", "text_guidance_scale", "medium"):
        assert dropped not in body


def test_art_medium_keeps_default_style_and_guidance_is_clamped():
    body = build_generate_image({"prompt": "an abstract poster", "medium": "art", "text_guidance_scale": 10, "steps_num": 20})
    assert "style_id" not in body
    assert body["guidance_scale"] == 5
    assert body["steps_num"] == 35


def test_image_prompt_file_is_sent_as_raw_base64():
    body = build_generate_image({"prompt": "in this style", "image_prompt_file": "data:image/png;base64,iVBORw0KGgo=", "image_prompt_scale": 0.5})
    assert body["images"] == ["iVBORw0KGgo="]
    assert "image_prompt_file" not in body and "image_prompt_scale" not in body


def test_image_prompt_url_wins_over_file():
    body = build_generate_image(
        {"prompt": "in this style", "image_prompt_urls": ["https://example.com/ref.png"], "image_prompt_file": "iVBORw0KGgo="}
    )
    assert body["images"] == ["https://example.com/ref.png"]


def test_more_than_one_image_prompt_url_is_refused():
    with pytest.raises(Permanent) as info:
        build_generate_image({"prompt": "x y z w", "image_prompt_urls": ["https://a/1.png", "https://a/2.png"]})
    assert info.value.code == "unsupported_parameter"


def test_controlnet_guidance_is_refused_not_dropped():
    with pytest.raises(Permanent) as info:
        build_generate_image({"prompt": "a house", "guidance_method_1": "controlnet_canny", "guidance_method_1_image_url": "https://a/e.png"})
    assert info.value.code == "unsupported_parameter"
    assert "guidance_method_1" in info.value.message


def test_strip_data_url():
    assert strip_data_url("data:image/jpeg;base64,/9j/4AAQ") == "/9j/4AAQ"
    assert strip_data_url("/9j/4AAQ") == "/9j/4AAQ"


# =========================================================================== against the simulator
@pytest.fixture(scope="module")
def sim_url():
    with running_simulator(latency_seconds=0.3) as url:
        yield url


@pytest.fixture(autouse=True)
def _reset_simulator(request):
    if "sim_url" in request.fixturenames:
        httpx.post(request.getfixturevalue("sim_url") + "/_sim/reset").raise_for_status()
    yield


@pytest.fixture
def bria(sim_url):
    provider = BriaProvider(sim_url, api_token="test-token", timeout=5.0)
    yield provider
    provider.close()


def inject(sim_url: str, *rules: dict) -> None:
    httpx.post(sim_url + "/_sim/faults", json=list(rules)).raise_for_status()


def stats(sim_url: str) -> dict:
    return httpx.get(sim_url + "/_sim/stats").json()


def poll_until_done(provider: BriaProvider, task: UpstreamTask, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = provider.poll(GENERATE, task)
        if not isinstance(result, Pending):
            return result
        time.sleep(0.05)
    raise AssertionError("task did not finish")


def generate(provider: BriaProvider, **fields) -> list:
    outcome = provider.submit(GENERATE, _vision_studio_params(**fields))
    assert isinstance(outcome, Submitted)
    return [poll_until_done(provider, task) for task in outcome.tasks]


def test_end_to_end_submit_poll_download(bria, sim_url):
    outcome = bria.submit(GENERATE, _vision_studio_params(prompt="a red fox in the snow", aspect_ratio="16:9", seed=42))
    assert isinstance(outcome, Submitted)
    assert len(outcome.tasks) == 1
    task = outcome.tasks[0]
    assert task.id and task.status_url == f"{sim_url}/v2/status/{task.id}"

    first = bria.poll(GENERATE, task)
    assert isinstance(first, Pending)
    assert first.progress is not None and 0 <= first.progress < 1

    finished = poll_until_done(bria, task)
    assert isinstance(finished, Finished)
    assert finished.meta["seed"] == 42
    assert finished.meta["prompt"] == "a red fox in the snow"
    assert "refined_prompt" in finished.meta
    [output] = finished.outputs
    assert output.url.startswith(sim_url + "/files/")
    assert output.meta["seed"] == 42

    data, content_type = bria.download(output)
    assert content_type == "image/png"
    assert data.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == size_for("16:9")
    assert stats(sim_url) == {"submit": 1, "status": stats(sim_url)["status"], "download": 1}


def test_same_seed_and_prompt_give_the_same_bytes(bria):
    [a], [b], [c] = (generate(bria, prompt="a lighthouse at dusk", seed=s) for s in (7, 7, 8))
    bytes_a, bytes_b, bytes_c = (bria.download(r.outputs[0])[0] for r in (a, b, c))
    assert a.outputs[0].url != b.outputs[0].url  # two separate upstream requests
    assert bytes_a == bytes_b
    assert bytes_a != bytes_c


def test_num_results_fans_out_with_consecutive_seeds(bria, sim_url):
    results = generate(bria, prompt="three cats on a sofa", num_results=3, seed=10)
    assert [r.meta["seed"] for r in results] == [10, 11, 12]
    assert stats(sim_url)["submit"] == 3
    payloads = {bria.download(r.outputs[0])[0] for r in results}
    assert len(payloads) == 3


def test_unseeded_fan_out_reports_the_seeds_bria_picked(bria):
    results = generate(bria, prompt="two dogs in a park", num_results=2)
    seeds = [r.meta["seed"] for r in results]
    assert all(isinstance(s, int) for s in seeds)


def test_enhance_image_renders_four_megapixels(bria):
    [result] = generate(bria, prompt="a mountain lake", aspect_ratio="1:1", enhance_image=True, seed=1)
    data, _ = bria.download(result.outputs[0])
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == size_for("1:1", "4MP")


def test_status_404_is_failed_not_found(bria):
    result = bria.poll(GENERATE, UpstreamTask("does-not-exist"))
    assert isinstance(result, Failed)
    assert result.code == "upstream_not_found"


def test_foreign_status_url_is_ignored(bria, sim_url):
    outcome = bria.submit(GENERATE, _vision_studio_params(prompt="a quiet harbour", seed=3))
    task = UpstreamTask(outcome.tasks[0].id, "http://attacker.invalid/v2/status/whatever")
    assert isinstance(poll_until_done(bria, task), Finished)


def test_invalid_request_is_permanent_with_brias_message(bria):
    with pytest.raises(Permanent) as info:
        bria.submit(GENERATE, {"prompt": "a red fox", "aspect_ratio": "7:3"})
    assert info.value.http_status == 422
    assert info.value.code == "upstream_422"
    assert "aspect_ratio" in info.value.message


def test_wrong_token_is_permanent_401():
    with running_simulator(latency_seconds=0.1, api_token="right") as url:
        provider = BriaProvider(url, api_token="wrong", timeout=5.0)
        try:
            with pytest.raises(Permanent) as info:
                provider.submit(GENERATE, _vision_studio_params(prompt="a red fox"))
            assert info.value.http_status == 401 and info.value.code == "upstream_401"
            good = BriaProvider(url, api_token="right", timeout=5.0)
            assert isinstance(good.submit(GENERATE, _vision_studio_params(prompt="a red fox")), Submitted)
            good.close()
        finally:
            provider.close()


def test_connection_refused_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    provider = BriaProvider(f"http://127.0.0.1:{port}", api_token="t", timeout=2.0)
    try:
        with pytest.raises(Retryable) as info:
            provider.submit(GENERATE, _vision_studio_params(prompt="a red fox"))
        assert info.value.code == "upstream_unavailable"
    finally:
        provider.close()


# --------------------------------------------------------------------------- injected faults
@pytest.mark.parametrize("retry_after, expected", [(3, 3.0), (None, None)])
def test_fault_429_on_submit(bria, sim_url, retry_after, expected):
    inject(sim_url, {"on": "submit", "kind": "429", **({"retry_after": retry_after} if retry_after else {})})
    with pytest.raises(RateLimited) as info:
        bria.submit(GENERATE, _vision_studio_params(prompt="a red fox"))
    assert info.value.retry_after == expected
    assert info.value.http_status == 429
    # the rule was used up: the next submit goes through
    assert isinstance(bria.submit(GENERATE, _vision_studio_params(prompt="a red fox")), Submitted)


@pytest.mark.parametrize("kind", ["500", "503"])
def test_fault_5xx_on_submit_and_status(bria, sim_url, kind):
    inject(sim_url, {"on": "submit", "kind": kind}, {"on": "status", "kind": kind, "times": 2})
    with pytest.raises(Retryable) as info:
        bria.submit(GENERATE, _vision_studio_params(prompt="a red fox"))
    assert info.value.http_status == int(kind)
    task = bria.submit(GENERATE, _vision_studio_params(prompt="a red fox")).tasks[0]
    for _ in range(2):
        with pytest.raises(Retryable):
            bria.poll(GENERATE, task)
    assert isinstance(poll_until_done(bria, task), Finished)


def test_fault_429_on_status(bria, sim_url):
    task = bria.submit(GENERATE, _vision_studio_params(prompt="a red fox")).tasks[0]
    inject(sim_url, {"on": "status", "kind": "429", "retry_after": 2})
    with pytest.raises(RateLimited) as info:
        bria.poll(GENERATE, task)
    assert info.value.retry_after == 2.0


def test_fault_timeout_is_retryable(sim_url):
    provider = BriaProvider(sim_url, api_token="t", timeout=0.3)
    try:
        inject(sim_url, {"on": "submit", "kind": "timeout", "delay": 1.0})
        with pytest.raises(Retryable) as info:
            provider.submit(GENERATE, _vision_studio_params(prompt="a red fox"))
        assert info.value.code == "upstream_timeout"
    finally:
        provider.close()


def test_fault_error_on_submit_ends_task_in_error(bria, sim_url):
    inject(sim_url, {"on": "submit", "kind": "error", "code": 422, "message": "Prompt failed content moderation"})
    task = bria.submit(GENERATE, _vision_studio_params(prompt="a red fox")).tasks[0]
    result = poll_until_done(bria, task)
    assert isinstance(result, Failed)
    assert result.code == "upstream_422"
    assert result.message == "Prompt failed content moderation"
    assert result.details == "simulated error"


def test_fault_error_on_status_with_symbolic_code(bria, sim_url):
    task = bria.submit(GENERATE, _vision_studio_params(prompt="a red fox")).tasks[0]
    inject(sim_url, {"on": "status", "kind": "error", "code": "generation_failed", "message": "GPU fell over"})
    result = bria.poll(GENERATE, task)
    assert isinstance(result, Failed)
    assert (result.code, result.message) == ("generation_failed", "GPU fell over")


@pytest.mark.parametrize("on", ["submit", "status"])
def test_fault_unknown_status_is_retryable_once(bria, sim_url, on):
    if on == "submit":
        inject(sim_url, {"on": "submit", "kind": "unknown"})
        task = bria.submit(GENERATE, _vision_studio_params(prompt="a red fox")).tasks[0]
    else:
        task = bria.submit(GENERATE, _vision_studio_params(prompt="a red fox")).tasks[0]
        inject(sim_url, {"on": "status", "kind": "unknown"})
    with pytest.raises(Retryable) as info:
        bria.poll(GENERATE, task)
    assert info.value.code == "upstream_unknown_status"
    assert isinstance(poll_until_done(bria, task), Finished)


@pytest.mark.parametrize("kind, error_type", [("500", Retryable), ("503", Retryable), ("429", RateLimited), ("error", Permanent)])
def test_faults_on_download(bria, sim_url, kind, error_type):
    [finished] = generate(bria, prompt="a red fox", seed=5)
    inject(sim_url, {"on": "download", "kind": kind})
    with pytest.raises(error_type) as info:
        bria.download(finished.outputs[0])
    assert type(info.value) is error_type
    assert info.value.http_status is not None
    data, _ = bria.download(finished.outputs[0])  # the fault was used up
    assert data.startswith(PNG_MAGIC)


def test_download_timeout_is_retryable(sim_url):
    provider = BriaProvider(sim_url, api_token="t", timeout=0.3)
    try:
        [finished] = generate(provider, prompt="a red fox", seed=5)
        inject(sim_url, {"on": "download", "kind": "timeout", "delay": 1.0})
        with pytest.raises(Retryable) as info:
            provider.download(finished.outputs[0])
        assert info.value.code == "upstream_timeout"
    finally:
        provider.close()


def test_download_over_the_byte_cap_is_permanent(sim_url):
    provider = BriaProvider(sim_url, api_token="t", timeout=5.0, max_download_bytes=10_000)
    try:
        [finished] = generate(provider, prompt="a red fox", seed=5)
        with pytest.raises(Permanent) as info:
            provider.download(finished.outputs[0])
        assert info.value.code == "output_too_large"
    finally:
        provider.close()


def test_download_cap_holds_without_content_length():
    """A body of unknown length is counted while streaming and refused once it passes the cap."""
    body = PNG_MAGIC + bytes(20_000)
    with CannedServer({"/big.png": Canned(200, body, {"Content-Type": "image/png"}, send_length=False)}) as server:
        small = BriaProvider(server.url, api_token="t", timeout=5.0, max_download_bytes=10_000)
        large = BriaProvider(server.url, api_token="t", timeout=5.0, max_download_bytes=len(body))
        try:
            with pytest.raises(Permanent) as info:
                small.download(Output(url=server.url + "/big.png"))
            assert info.value.code == "output_too_large"
            assert large.download(Output(url=server.url + "/big.png")) == (body, "image/png")
        finally:
            small.close()
            large.close()


def test_declared_size_over_the_cap_is_refused_before_reading():
    """Content-Length alone decides: the (truncated) body is never read, so no protocol error."""
    routes = {"/huge.png": Canned(200, PNG_MAGIC, {"Content-Type": "image/png", "Content-Length": str(10**9)}, send_length=False)}
    with CannedServer(routes) as server:
        provider = BriaProvider(server.url, api_token="t", timeout=5.0, max_download_bytes=1_000_000)
        try:
            with pytest.raises(Permanent) as info:
                provider.download(Output(url=server.url + "/huge.png"))
        finally:
            provider.close()
    assert info.value.code == "output_too_large"


# --------------------------------------------------------------------------- simulator protocol
def test_simulator_requires_api_token(sim_url):
    response = httpx.post(sim_url + "/v2/image/generate", json={"prompt": "a red fox"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401
    assert httpx.get(sim_url + "/v2/status/abc").status_code == 401


def test_simulator_sync_answers_inline(sim_url):
    response = httpx.post(
        sim_url + "/v2/image/generate", json={"prompt": "a red fox", "seed": 4, "sync": True}, headers={"api_token": "t"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["result"]["seed"] == 4 and body["result"]["image_url"].startswith(sim_url + "/files/")
    assert httpx.get(body["result"]["image_url"]).content.startswith(PNG_MAGIC)


def test_simulator_control_api(sim_url):
    assert httpx.post(sim_url + "/_sim/faults", json=[{"on": "download", "kind": "unknown"}]).status_code == 422
    inject(sim_url, {"on": "status", "kind": "500", "times": 3})
    assert httpx.get(sim_url + "/_sim/faults").json()["pending"][0]["times"] == 3
    assert httpx.delete(sim_url + "/_sim/faults").json() == {"pending": []}
    httpx.post(sim_url + "/_sim/config", json={"latency_seconds": 0}).raise_for_status()
    headers = {"api_token": "t"}
    submitted = httpx.post(sim_url + "/v2/image/generate", json={"prompt": "instant"}, headers=headers).json()
    assert submitted["status_url"] == f"{sim_url}/v2/status/{submitted['request_id']}"
    assert httpx.get(submitted["status_url"], headers=headers).json()["status"] == "COMPLETED"
    assert stats(sim_url) == {"submit": 1, "status": 1, "download": 0}
    httpx.post(sim_url + "/_sim/reset").raise_for_status()
    assert stats(sim_url) == {"submit": 0, "status": 0, "download": 0}
    again = httpx.post(sim_url + "/v2/image/generate", json={"prompt": "slow again"}, headers=headers).json()
    assert httpx.get(again["status_url"], headers=headers).json()["status"] == "IN_PROGRESS"  # latency restored


# =========================================================================== token scoping, inline results
def test_token_goes_to_bria_only_even_across_redirects():
    with CannedServer({"/cdn/out.png": Canned(200, PNG_MAGIC + b"rest", {"Content-Type": "image/png"})}) as cdn:
        routes = {"/files/out.png": Canned(302, b"", {"Location": cdn.url + "/cdn/out.png"})}
        with CannedServer(routes) as bria_host:
            provider = BriaProvider(bria_host.url, api_token="secret-token", timeout=5.0)
            try:
                data, content_type = provider.download(Output(url=bria_host.url + "/files/out.png"))
                assert data == PNG_MAGIC + b"rest" and content_type == "image/png"
                foreign, _ = provider.download(Output(url=cdn.url + "/cdn/out.png"))
                assert foreign == data
            finally:
                provider.close()
        assert bria_host.seen[0][2].get("api_token") == "secret-token"
        assert len(cdn.seen) == 2
        assert all("api_token" not in headers for _, _, headers in cdn.seen)


def test_inline_result_on_submit_is_finished():
    routes = {
        "/v2/image/generate": Canned(
            200, {"request_id": "r1", "result": {"image_url": "https://cdn.example/r1.png", "seed": 5, "prompt": "p"}}
        )
    }
    with CannedServer(routes) as server:
        provider = BriaProvider(server.url, api_token="t", timeout=5.0)
        try:
            outcome = provider.submit(GENERATE, {"prompt": "a red fox", "seed": 5})
        finally:
            provider.close()
    assert isinstance(outcome, Finished)
    assert [o.url for o in outcome.outputs] == ["https://cdn.example/r1.png"]
    assert outcome.meta == {"seed": 5, "prompt": "p"}
    method, path, headers = server.seen[0]
    assert (method, path, headers["api_token"]) == ("POST", "/v2/image/generate", "t")


def test_submit_without_request_id_is_permanent():
    with CannedServer({"/v2/image/generate": Canned(202, {"hello": "world"})}) as server:
        provider = BriaProvider(server.url, api_token="t", timeout=5.0)
        try:
            with pytest.raises(Permanent) as info:
                provider.submit(GENERATE, {"prompt": "a red fox"})
        finally:
            provider.close()
    assert info.value.code == "upstream_bad_response"


def test_download_of_inline_data_and_content_sniffing(bria):
    assert bria.download(Output(data=PNG_MAGIC + b"x")) == (PNG_MAGIC + b"x", "image/png")
    assert bria.download(Output(data=b"\xff\xd8\xff\xe0", content_type="application/octet-stream")) == (b"\xff\xd8\xff\xe0", "image/jpeg")
    assert bria.download(Output(data=b"abc", content_type="image/webp; q=1")) == (b"abc", "image/webp")
    with pytest.raises(Permanent):
        bria.download(Output())


def test_close_is_idempotent_and_client_is_recreated(bria, sim_url):
    bria.close()
    bria.close()
    assert isinstance(bria.submit(GENERATE, _vision_studio_params(prompt="after close")), Submitted)
