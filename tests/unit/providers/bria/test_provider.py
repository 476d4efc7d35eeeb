"""The Bria adapter end to end against the simulator.

The tests start the real simulator (uvicorn, background thread, free port) and drive
``BriaProvider`` through submit → poll → download exactly as the worker does, injecting faults
through the simulator's ``/_sim/`` control API. Error classification and token scoping:
test_client.py; request mapping: test_mapping.py.
"""

from __future__ import annotations

import io
import socket
import time

import httpx
import pytest
from PIL import Image

from providers.base import (Failed, Finished, Output, Pending, Permanent, RateLimited, Retryable, Submitted,
                            UpstreamTask)
from providers.bria.operations import OPERATIONS
from providers.bria.provider import BriaProvider
from providers.simulator.render import size_for
from tests.sim_server import Canned, CannedServer, running_simulator
from tests.unit.providers.bria.test_mapping import vision_studio_params

GENERATE = next(op for op in OPERATIONS if op.name == "bria.generate_image")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
    outcome = provider.submit(GENERATE, vision_studio_params(**fields))
    assert isinstance(outcome, Submitted)
    return [poll_until_done(provider, task) for task in outcome.tasks]


def test_end_to_end_submit_poll_download(bria, sim_url):
    outcome = bria.submit(GENERATE, vision_studio_params(prompt="a red fox in the snow", aspect_ratio="16:9", seed=42))
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
    outcome = bria.submit(GENERATE, vision_studio_params(prompt="a quiet harbour", seed=3))
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
                provider.submit(GENERATE, vision_studio_params(prompt="a red fox"))
            assert info.value.http_status == 401 and info.value.code == "upstream_401"
            good = BriaProvider(url, api_token="right", timeout=5.0)
            assert isinstance(good.submit(GENERATE, vision_studio_params(prompt="a red fox")), Submitted)
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
            provider.submit(GENERATE, vision_studio_params(prompt="a red fox"))
        assert info.value.code == "upstream_unavailable"
    finally:
        provider.close()


# --------------------------------------------------------------------------- injected faults
@pytest.mark.parametrize("retry_after, expected", [(3, 3.0), (None, None)])
def test_fault_429_on_submit(bria, sim_url, retry_after, expected):
    inject(sim_url, {"on": "submit", "kind": "429", **({"retry_after": retry_after} if retry_after else {})})
    with pytest.raises(RateLimited) as info:
        bria.submit(GENERATE, vision_studio_params(prompt="a red fox"))
    assert info.value.retry_after == expected
    assert info.value.http_status == 429
    # the rule was used up: the next submit goes through
    assert isinstance(bria.submit(GENERATE, vision_studio_params(prompt="a red fox")), Submitted)


@pytest.mark.parametrize("kind", ["500", "503"])
def test_fault_5xx_on_submit_and_status(bria, sim_url, kind):
    inject(sim_url, {"on": "submit", "kind": kind}, {"on": "status", "kind": kind, "times": 2})
    with pytest.raises(Retryable) as info:
        bria.submit(GENERATE, vision_studio_params(prompt="a red fox"))
    assert info.value.http_status == int(kind)
    task = bria.submit(GENERATE, vision_studio_params(prompt="a red fox")).tasks[0]
    for _ in range(2):
        with pytest.raises(Retryable):
            bria.poll(GENERATE, task)
    assert isinstance(poll_until_done(bria, task), Finished)


def test_fault_429_on_status(bria, sim_url):
    task = bria.submit(GENERATE, vision_studio_params(prompt="a red fox")).tasks[0]
    inject(sim_url, {"on": "status", "kind": "429", "retry_after": 2})
    with pytest.raises(RateLimited) as info:
        bria.poll(GENERATE, task)
    assert info.value.retry_after == 2.0


def test_fault_timeout_is_retryable(sim_url):
    provider = BriaProvider(sim_url, api_token="t", timeout=0.3)
    try:
        inject(sim_url, {"on": "submit", "kind": "timeout", "delay": 1.0})
        with pytest.raises(Retryable) as info:
            provider.submit(GENERATE, vision_studio_params(prompt="a red fox"))
        assert info.value.code == "upstream_timeout"
    finally:
        provider.close()


def test_fault_error_on_submit_ends_task_in_error(bria, sim_url):
    inject(sim_url, {"on": "submit", "kind": "error", "code": 422, "message": "Prompt failed content moderation"})
    task = bria.submit(GENERATE, vision_studio_params(prompt="a red fox")).tasks[0]
    result = poll_until_done(bria, task)
    assert isinstance(result, Failed)
    assert result.code == "upstream_422"
    assert result.message == "Prompt failed content moderation"
    assert result.details == "simulated error"


def test_fault_error_on_status_with_symbolic_code(bria, sim_url):
    task = bria.submit(GENERATE, vision_studio_params(prompt="a red fox")).tasks[0]
    inject(sim_url, {"on": "status", "kind": "error", "code": "generation_failed", "message": "GPU fell over"})
    result = bria.poll(GENERATE, task)
    assert isinstance(result, Failed)
    assert (result.code, result.message) == ("generation_failed", "GPU fell over")


@pytest.mark.parametrize("on", ["submit", "status"])
def test_fault_unknown_status_is_retryable_once(bria, sim_url, on):
    if on == "submit":
        inject(sim_url, {"on": "submit", "kind": "unknown"})
        task = bria.submit(GENERATE, vision_studio_params(prompt="a red fox")).tasks[0]
    else:
        task = bria.submit(GENERATE, vision_studio_params(prompt="a red fox")).tasks[0]
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


def test_download_of_inline_data_and_content_sniffing(bria):
    assert bria.download(Output(data=PNG_MAGIC + b"x")) == (PNG_MAGIC + b"x", "image/png")
    assert bria.download(Output(data=b"\xff\xd8\xff\xe0", content_type="application/octet-stream")) == (b"\xff\xd8\xff\xe0", "image/jpeg")
    assert bria.download(Output(data=b"abc", content_type="image/webp; q=1")) == (b"abc", "image/webp")
    with pytest.raises(Permanent):
        bria.download(Output())


def test_close_is_idempotent_and_client_is_recreated(bria, sim_url):
    bria.close()
    bria.close()
    assert isinstance(bria.submit(GENERATE, vision_studio_params(prompt="after close")), Submitted)
