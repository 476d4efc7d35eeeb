"""OpenAIProvider against the simulator over real HTTP: each operation, chat, every fault kind,
and many calls in flight at once through one adapter."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from providers.base import Finished, Permanent, RateLimited, Retryable
from providers.openai.adapter import OpenAIProvider
from providers.openai.settings import OpenAISettings

from .helpers import half_mask, image_bytes, open_image, run


def run_op(sim, op, params, images=(), mask=None, **settings):
    async def go():
        async with sim.provider(**settings) as provider:
            return await provider.run(op, params, images, mask)

    return run(go())


def test_generate_image_returns_decoded_pngs_and_meta(sim):
    result = run_op(sim, "generate-image", {"prompt": "a lighthouse", "number_of_images": 2, "aspect_ratio": "3:2",
                                            "quality": "high", "background": "auto"})
    assert isinstance(result, Finished) and len(result.outputs) == 2
    for output in result.outputs:
        assert output.content_type == "image/png" and output.url is None
        assert open_image(output.data).size == (1536, 1024)
        assert output.meta == {"revised_prompt": "a lighthouse"}
    assert result.meta["model"] == "gpt-image-1" and result.meta["size"] == "1536x1024"
    assert result.meta["quality"] == "high" and result.meta["background"] == "opaque"
    assert result.meta["usage"]["output_tokens"] > 0


def test_generate_transparent_is_png_with_alpha(sim):
    result = run_op(sim, "generate-image", {"prompt": "an apple", "aspect_ratio": "2:3", "background": "transparent"})
    img = open_image(result.outputs[0].data)
    assert img.format == "PNG" and img.mode == "RGBA" and img.size == (1024, 1536)
    assert img.getpixel((0, 0))[3] == 0 and img.getpixel((512, 768))[3] == 255
    assert result.meta["background"] == "transparent"


def test_edit_image_uses_the_aspect_ratio_size(sim):
    result = run_op(sim, "edit-image", {"prompt": "add warm sunset tones", "aspect_ratio": "2:3"},
                    [image_bytes((90, 60), fmt="JPEG")])
    assert open_image(result.outputs[0].data).size == (1024, 1536)
    assert result.meta["size"] == "1024x1536"


def test_edit_image_multipart_matches_the_sdk_layout(sim):
    """The same part names the official SDK sends (see test_sdk.py): ``image[]`` per image when
    there are several, ``image`` for one, ``mask`` for the mask."""
    run_op(sim, "edit-image", {"prompt": "p", "number_of_images": 2, "aspect_ratio": "1:1"},
           [image_bytes(), image_bytes(fmt="JPEG")])
    assert sorted(sim.stats()["last_edit_parts"]) == ["image[]", "image[]", "model", "n", "prompt", "size"]
    run_op(sim, "inpaint", {"prompt": "p"}, [image_bytes()], half_mask((64, 48)))
    assert sorted(sim.stats()["last_edit_parts"]) == ["image", "mask", "model", "prompt"]


def test_inpaint_with_a_greyscale_mask_repaints_the_white_half(sim):
    source = image_bytes((120, 80), (10, 200, 10))
    result = run_op(sim, "inpaint", {"prompt": "flowers"}, [source], half_mask((120, 80), "L"))
    img = open_image(result.outputs[0].data).convert("RGB")
    assert img.size == (120, 80)
    assert img.getpixel((100, 40)) == (10, 200, 10)
    assert img.getpixel((10, 40)) != (10, 200, 10)


def test_inpaint_border_only_repaints_the_frame(sim):
    source = image_bytes((200, 100), (10, 200, 10))
    result = run_op(sim, "inpaint", {"prompt": "a forest around it", "inpaint_border_only": True,
                                     "border_percentage": 0.2}, [source])
    img = open_image(result.outputs[0].data).convert("RGB")
    assert img.getpixel((100, 50)) == (10, 200, 10)
    assert all(img.getpixel(p) != (10, 200, 10) for p in [(2, 2), (197, 50), (100, 97), (39, 50)])


def test_inpaint_errors_before_any_call(sim):
    with pytest.raises(Permanent) as caught:
        run_op(sim, "inpaint", {"prompt": "p"}, [image_bytes()])
    assert caught.value.code == "mask_required"
    with pytest.raises(ValueError):
        run_op(sim, "upscale", {"prompt": "p"})
    assert sim.stats()["edits"] == 0


def test_chat_returns_text_model_and_usage(sim):
    async def go():
        async with sim.provider() as provider:
            first = await provider.chat([{"role": "user", "content": "A cozy coffee shop interior"}], 0)
            again = await provider.chat([{"role": "user", "content": "A cozy coffee shop interior"}], 0)
            return first, again

    first, again = run(go())
    assert first["text"].startswith("A cozy coffee shop interior") and first["text"] == again["text"]
    assert first["model"] == "gpt-4o-mini"
    usage = first["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_chat_json_schema_tags_come_from_the_possible_tags(sim):
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
              "required": ["tags"], "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "image_tags", "schema": schema, "strict": True}}
    picture = image_bytes((60, 120), (20, 40, 200))
    url = "data:image/png;base64," + base64.b64encode(picture).decode()
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "Give 2 tags for this image.\nPossible tags: red, blue, portrait, cat, tree"},
        {"type": "image_url", "image_url": {"url": url}}]}]

    async def go():
        async with sim.provider() as provider:
            return await provider.chat(messages, 0, fmt)

    tags = json.loads(run(go())["text"])["tags"]
    assert sorted(tags) == ["blue", "portrait"]


@pytest.mark.parametrize("rule, error_class, code", [
    ({"kind": "500"}, Retryable, "upstream_500"),
    ({"kind": "503"}, Retryable, "upstream_503"),
    ({"kind": "error"}, Permanent, "content_moderated"),
    ({"kind": "error", "code": "invalid_value", "message": "bad size"}, Permanent, "invalid_value"),
    ({"kind": "error", "code": 404}, Permanent, "upstream_404"),
    ({"kind": "429", "code": "insufficient_quota"}, Permanent, "insufficient_quota"),
    ({"kind": "unknown"}, Retryable, "upstream_bad_response"),
])
def test_fault_kinds_are_classified(sim, rule, error_class, code):
    sim.faults(rule)
    with pytest.raises(error_class) as caught:
        run_op(sim, "generate-image", {"prompt": "a fox"})
    assert caught.value.code == code


def test_moderation_on_edits_keeps_the_upstream_message(sim):
    sim.faults({"kind": "error", "code": "moderation_blocked", "message": "Rejected by the safety system",
                "match": "/images/edits"})
    with pytest.raises(Permanent) as caught:
        run_op(sim, "edit-image", {"prompt": "p"}, [image_bytes()])
    assert caught.value.code == "content_moderated" and caught.value.message == "Rejected by the safety system"
    assert caught.value.http_status == 400


@pytest.mark.parametrize("rule, seconds", [
    ({"kind": "429", "retry_after": 3}, 3.0),
    ({"kind": "429", "retry_after": 0.25}, 0.25),
    ({"kind": "429", "reset_requests": "6m0s"}, 360.0),
    ({"kind": "429", "reset_requests": "12ms"}, 0.012),
])
def test_rate_limits_carry_retry_after(sim, rule, seconds):
    sim.faults(rule)
    with pytest.raises(RateLimited) as caught:
        run_op(sim, "generate-image", {"prompt": "a fox"})
    assert caught.value.retry_after == pytest.approx(seconds)
    assert caught.value.http_status == 429


def test_a_slow_answer_times_out_as_retryable(sim):
    sim.faults({"kind": "timeout", "delay": 3})
    with pytest.raises(Retryable) as caught:
        run_op(sim, "generate-image", {"prompt": "a fox"}, timeout_seconds=0.3)
    assert caught.value.code == "upstream_timeout"


def test_unreachable_upstream_is_retryable():
    async def go():
        async with OpenAIProvider(OpenAISettings(base_url="http://127.0.0.1:9/v1")) as provider:
            await provider.chat([{"role": "user", "content": "hi"}], 0)

    with pytest.raises(Retryable) as caught:
        run(go())
    assert caught.value.code == "upstream_unavailable"


def test_one_adapter_serves_successive_event_loops(sim):
    provider = sim.provider()

    async def once():
        try:
            return await provider.chat([{"role": "user", "content": "hello"}], 0)
        finally:
            await provider.aclose()

    assert run(once())["text"] == run(once())["text"]


def test_empty_base_url_is_refused():
    with pytest.raises(ValueError):
        OpenAIProvider(OpenAISettings(base_url=""))


def test_many_calls_overlap_through_one_adapter(sim):
    """200 calls with 1 s of upstream latency each: the simulator sees many of them in flight at
    once (a call left over from an earlier test may still be counted: ``baseline``)."""
    sim.control("POST", "config", {"latency_seconds": 1.0})
    baseline = sim.stats()["in_flight"]

    async def go():
        async with sim.provider(max_in_flight=100) as provider:
            calls = [provider.run("generate-image", {"prompt": "the same lighthouse"}) for _ in range(100)]
            calls += [provider.chat([{"role": "user", "content": f"prompt {i}"}], 0) for i in range(100)]
            return await asyncio.gather(*calls)

    results = run(go())
    assert len(results) == 200 and all(isinstance(r, Finished) for r in results[:100])
    stats = sim.stats()
    assert stats["generations"] == 100 and stats["chat"] == 100
    assert 50 <= stats["max_in_flight"] <= 100 + baseline


def test_the_adapter_bounds_its_calls_in_flight(sim):
    sim.control("POST", "config", {"latency_seconds": 0.2})
    baseline = sim.stats()["in_flight"]

    async def go():
        async with sim.provider(max_in_flight=5) as provider:
            await asyncio.gather(*[provider.chat([{"role": "user", "content": f"p{i}"}], 0) for i in range(20)])

    run(go())
    assert 5 <= sim.stats()["max_in_flight"] <= 5 + baseline
