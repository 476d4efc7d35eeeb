"""The official ``openai`` SDK, over real HTTP, against the simulator: the simulator speaks
OpenAI's protocol as the SDK sends and parses it."""

from __future__ import annotations

import base64

import pytest

from providers.openai.builders import border_mask

from .helpers import image_bytes, open_image

openai = pytest.importorskip("openai")


@pytest.fixture
def client(sim):
    with openai.OpenAI(api_key="sk-test", base_url=sim.api, max_retries=0, timeout=30) as sdk:
        yield sdk


def decoded(response, index=0):
    return open_image(base64.b64decode(response.data[index].b64_json))


def test_generate_returns_pngs_of_the_requested_size(client):
    response = client.images.generate(model="gpt-image-1", prompt="a lighthouse at dusk", size="1536x1024", n=2)
    assert len(response.data) == 2 and response.size == "1536x1024" and response.output_format == "png"
    first, second = decoded(response, 0), decoded(response, 1)
    assert first.format == "PNG" and first.size == (1536, 1024)
    assert first.tobytes() != second.tobytes()
    assert response.data[0].revised_prompt == "a lighthouse at dusk"
    assert response.usage.output_tokens > 0 and response.usage.total_tokens >= response.usage.output_tokens


def test_generate_transparent_background_has_alpha(client):
    response = client.images.generate(model="gpt-image-1", prompt="a red apple", size="1024x1536",
                                      background="transparent", output_format="png")
    img = decoded(response)
    assert img.mode == "RGBA" and img.size == (1024, 1536) and response.background == "transparent"
    assert img.getpixel((0, 0))[3] == 0 and img.getpixel((512, 768))[3] == 255


def test_edit_with_one_image(client):
    source = image_bytes((300, 200))
    response = client.images.edit(model="gpt-image-1", image=("in.png", source, "image/png"), prompt="add snow")
    img = decoded(response)
    assert img.size == (300, 200) and response.size == "300x200"
    assert img.convert("RGB").tobytes() != open_image(source).convert("RGB").tobytes()


def test_edit_with_several_images_as_a_list(client, sim):
    images = [("a.png", image_bytes((200, 200)), "image/png"),
              ("b.jpg", image_bytes((100, 50), (0, 0, 255), fmt="JPEG"), "image/jpeg")]
    response = client.images.edit(model="gpt-image-1", image=images, prompt="combine them", size="1024x1024", n=2)
    assert len(response.data) == 2 and decoded(response).size == (1024, 1024)
    stats = sim.stats()
    assert stats["edits"] == 1
    assert sorted(stats["last_edit_parts"]) == ["image[]", "image[]", "model", "n", "prompt", "size"]


def test_edit_with_one_image_sends_an_image_part(client, sim):
    client.images.edit(model="gpt-image-1", image=("in.png", image_bytes(), "image/png"), prompt="p")
    assert sorted(sim.stats()["last_edit_parts"]) == ["image", "model", "prompt"]


def test_edit_with_a_mask_changes_only_the_transparent_area(client):
    source = image_bytes((200, 100), (10, 200, 10))
    mask = border_mask(200, 100, 0.2)
    response = client.images.edit(model="gpt-image-1", image=("in.png", source, "image/png"),
                                  mask=("mask.png", mask, "image/png"), prompt="a stone wall around it")
    img = decoded(response).convert("RGB")
    assert img.size == (200, 100)
    assert img.getpixel((100, 50)) == (10, 200, 10)  # inside the opaque centre: kept
    assert img.getpixel((5, 5)) != (10, 200, 10)  # in the transparent band: repainted


def test_chat_with_text_and_an_image_part(client):
    picture = image_bytes((320, 180), (20, 40, 200))
    url = "data:image/png;base64," + base64.b64encode(picture).decode()
    messages = [{"role": "user", "content": [{"type": "text", "text": "Caption this image."},
                                             {"type": "image_url", "image_url": {"url": url}}]}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0)
    again = client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0)
    text = first.choices[0].message.content
    assert "landscape" in text and "320x180" in text and "blue" in text
    assert again.choices[0].message.content == text
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens


def test_rate_limit_raises_rate_limit_error(client, sim):
    sim.faults({"kind": "429", "retry_after": 2})
    with pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(model="gpt-image-1", prompt="a fox")
    assert caught.value.status_code == 429 and caught.value.response.headers["retry-after"] == "2"


def test_moderation_raises_bad_request_with_code(client, sim):
    sim.faults({"kind": "error", "code": "moderation_blocked"})
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="gpt-image-1", prompt="something forbidden")
    assert caught.value.code == "moderation_blocked"
    assert "safety system" in caught.value.message


def test_server_error_raises_internal_server_error(client, sim):
    sim.faults({"kind": "503"})
    with pytest.raises(openai.InternalServerError) as caught:
        client.images.generate(model="gpt-image-1", prompt="a fox")
    assert caught.value.status_code == 503
