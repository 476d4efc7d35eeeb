"""The official ``google-genai`` SDK, pointed at the Google simulator, gets what Vertex AI would
give it: proof that the simulator speaks the real wire protocol (paths, auth, field names,
URL-safe base64, the response shape and the error body)."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.providers.google.helpers import SIM_TOKEN, add_faults, png

genai = pytest.importorskip("google.genai")
types = pytest.importorskip("google.genai.types")
credentials = pytest.importorskip("google.oauth2.credentials")
errors = pytest.importorskip("google.genai.errors")


@pytest.fixture(autouse=True)
def _no_google_environment(monkeypatch):
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_API_VERSION", "GOOGLE_GENAI_USE_VERTEXAI",
                 "GOOGLE_VERTEX_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION",
                 "GOOGLE_API_USE_CLIENT_CERTIFICATE"):
        monkeypatch.delenv(name, raising=False)


def sdk_client(base_url: str, token: str = SIM_TOKEN, **http_options):
    # A static OAuth token: the SDK refreshes credentials only when they are expired or hold no
    # token (``_api_client.get_token_from_credentials``), so no credentials discovery happens.
    return genai.Client(
        vertexai=True, project="sdk-project", location="us-central1",
        credentials=credentials.Credentials(token=token),
        http_options=types.HttpOptions(base_url=f"{base_url}/", **http_options))


@pytest.mark.parametrize("api_version", ["v1", None])
def test_sdk_caption_of_a_real_image(sim, api_version):
    options = {"api_version": api_version} if api_version else {}
    client = sdk_client(sim, **options)
    image = png((300, 500), (210, 30, 30))
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents=["Describe this image.", types.Part.from_bytes(data=image, mime_type="image/png")],
        config=types.GenerateContentConfig(temperature=0, system_instruction="You caption images."))
    assert "portrait" in response.text and "300x500" in response.text and "mostly red" in response.text
    assert response.model_version == "gemini-2.5-flash"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.prompt_token_count >= 258
    path = httpx.get(f"{sim}/_sim/stats").json()["last_path"]
    version = api_version or "v1beta1"  # the SDK's default API version for Vertex AI
    assert path == f"/{version}/projects/sdk-project/locations/us-central1/publishers/google/models/" \
                   "gemini-2.5-flash:generateContent"


def test_sdk_json_answer_with_an_enum_schema(sim):
    client = sdk_client(sim, api_version="v1")
    schema = types.Schema(type=types.Type.OBJECT, properties={
        "possible_tags": types.Schema(type=types.Type.ARRAY, max_items=2,
                                      items=types.Schema(type=types.Type.STRING, enum=["green", "landscape", "cat"]))})
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents=[types.Part.from_bytes(data=png((400, 200), (40, 180, 60)), mime_type="image/png"), "Tag it."],
        config=types.GenerateContentConfig(temperature=0, response_mime_type="application/json",
                                           response_schema=schema))
    assert response.parsed == {"possible_tags": ["green", "landscape"]}


def test_sdk_sees_googles_error_shape(sim):
    add_faults(sim, {"on": "submit", "kind": "429", "message": "Quota exceeded"})
    client = sdk_client(sim, api_version="v1")  # kept referenced: the SDK closes its pool on collection
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    assert info.value.message == "Quota exceeded"
    stranger = sdk_client(sim, token="wrong", api_version="v1")
    with pytest.raises(errors.ClientError) as info:
        stranger.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert info.value.code == 401 and info.value.status == "UNAUTHENTICATED"
