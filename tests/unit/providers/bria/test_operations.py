"""The Bria operation table: each build function's mapping onto Bria's upstream body, the
per-request routes, the legacy aliases' normalisation, the v1 answer shapes, and the
simulator's image operations (the media they produce)."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
import zipfile

import pytest
from PIL import Image, ImageDraw
from pydantic import ValidationError

from providers.base import Kind, Permanent
from providers.bria import operations as ops
from providers.bria.builders import editing, generation
from providers.bria import schemas as S
from providers.bria.provider import v1_outputs
from providers.bria.simulator import edit

BY_NAME = {op.name: op for op in ops.OPERATIONS}


def params(name: str, **fields) -> dict:
    """What the worker gets: the request validated by the operation's model, dumped."""
    return BY_NAME[name].request_model(**fields).model_dump(mode="json")


def png_b64(size=(40, 30), colour=(200, 10, 10)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


IMG = png_b64()
URL = "https://example.com/a.png"


# --------------------------------------------------------------------------- the table
def test_table_has_the_26_operations_and_10_aliases():
    canonical = [op for op in ops.OPERATIONS if op.alias_of is None]
    aliases = [op for op in ops.OPERATIONS if op.alias_of is not None]
    assert len(canonical) == 26 and len(aliases) == 10
    # the 24 /api/v1/bria/ endpoints with a body, and the two bria-lora generation jobs (the other
    # bria-lora endpoints are the management routes of providers/bria/tailored/)
    jobs = {k[1] for k in S.REQUEST_MODELS if k[1].startswith("/api/v1/bria/")} | {
        "/api/v1/bria-lora/image/generation/generate-image", "/api/v1/bria-lora/image/generation/generate-vector"}
    assert {op.path for op in canonical} == jobs
    for op in canonical:
        assert op.request_model is S.REQUEST_MODELS[(op.method, op.path)], op.name
        assert op.upstream_path and op.build is not None, op.name
        assert op.kind is (Kind.QUICK if op.name == "bria.enhance_prompt" else Kind.JOB)
    for alias in aliases:
        assert alias.deprecated and alias.alias_of in BY_NAME and alias.build is None
    assert BY_NAME["bria.enhance_prompt"].body == "form"
    assert BY_NAME["bria.video_remove_background.legacy"].body == "form"


UPSTREAM = {
    "bria.enhance_prompt": "/v1/prompt_enhancer",
    "bria.generate_image": "/v2/image/generate",
    "bria.generate_image_fast": "/v1/text-to-image/fast/2.3",
    "bria.generate_image_hd": "/v1/text-to-image/hd/2.2",
    "bria.generate_vector_base": "/v1/text-to-vector/base/3.2",
    "bria.generate_vector_fast": "/v1/text-to-vector/fast/2.3",
    "bria.generate_variation": "/v1/reimagine",
    "bria.get_masks": "/v1/objects/mask_generator",
    "bria.remove_background": "/v2/image/edit/remove_background",
    "bria.product_cutout": "/v1/product/cutout",
    "bria.crop_foreground": "/v2/image/edit/crop_foreground",
    "bria.erase": "/v2/image/edit/erase",
    "bria.erase_foreground": "/v2/image/edit/erase_foreground",
    "bria.inpaint": "/v2/image/edit/gen_fill",
    "bria.expand_image": "/v2/image/edit/expand",
    "bria.blur_background": "/v2/image/edit/blur_background",
    "bria.generate_solid_background": "/v1/product/packshot",
    "bria.generate_background": "/v2/image/edit/replace_background",
    "bria.generate_product_shadow": "/v1/product/shadow",
    "bria.generate_product_background_by_text": "/v1/product/lifestyle_shot_by_text",
    "bria.generate_product_background_by_image": "/v1/product/lifestyle_shot_by_image",
    "bria.enhance_image": "/v2/image/edit/enhance",
    "bria.upscale_image": "/v2/image/edit/increase_resolution",
    "bria.video_remove_background": "/v2/video/edit/remove_background",
    "bria.lora_generate_image": "/v1/text-to-image/tailored/{model_id}",
    "bria.lora_generate_vector": "/v1/text-to-vector/tailored/{model_id}",
}


@pytest.mark.parametrize("name, path", UPSTREAM.items())
def test_upstream_paths(name, path):
    assert BY_NAME[name].upstream_path == path


def test_routes_chosen_per_request():
    gen = BY_NAME["bria.generate_image"]
    assert gen.route({"prompt": "x"}) == "/v2/image/generate"
    assert gen.route({"guidance_method_1": "controlnet_canny", "bria_model_version": "2.3"}) == "/v1/text-to-image/base/2.3"
    vec = BY_NAME["bria.generate_vector_base"]
    assert vec.route({"bria_model_version": "2.3"}) == "/v1/text-to-vector/base/2.3"
    # 003's tailored call: model_id (resolved at intake to Bria's id) → the tailored endpoints
    assert gen.route({"model_id": "7", "_tailored_model_id": "1234"}) == "/v1/text-to-image/tailored/1234"
    assert vec.route({"model_id": "7", "_tailored_model_id": "1234"}) == "/v1/text-to-vector/tailored/1234"


def test_tailored_model_ids_are_never_sent_unresolved():
    # A job whose model id was not resolved to the tenant's model (e.g. a batch line) must not
    # send the client's id: on the shared Bria account it could name another tenant's model.
    for name in ("bria.generate_image", "bria.generate_vector_base", "bria.lora_generate_image",
                 "bria.lora_generate_vector"):
        with pytest.raises(Permanent) as info:
            BY_NAME[name].route({"prompt": "a fox", "model_id": "7"})
        assert info.value.code == "tailored_model_unresolved", name
    with pytest.raises(Permanent):
        generation.build_variation({"prompt": "x y z w", "image_url": URL, "tailored_model_id": "7"})


# --------------------------------------------------------------------------- generation bodies
def test_v1_text_to_image_maps_fields_one_to_one_and_media_to_files():
    p = params("bria.generate_image_fast", prompt="A puppy", num_results=2, seed=9, medium="art",
               guidance_method_1="controlnet_canny", guidance_method_1_scale=0.5,
               guidance_method_1_image_url=URL, image_prompt_urls=[URL], image_prompt_mode="style_only")
    p["num_results"] = 2
    body = BY_NAME["bria.generate_image_fast"].build(p)
    assert body["prompt"] == "A puppy" and body["num_results"] == 2 and body["seed"] == 9 and body["medium"] == "art"
    assert body["guidance_method_1"] == "controlnet_canny" and body["guidance_method_1_image_url"] == URL
    assert body["image_prompt_urls"] == [URL] and body["image_prompt_mode"] == "style_only"
    assert "sync" not in body and "bria_model_version" not in body
    # after the worker fetched the URLs: base64 files
    fetched = {**p, "guidance_method_1_image_url": IMG, "image_prompt_urls": [IMG]}
    body = generation.build_v1_text_to_image(fetched)
    assert body["guidance_method_1_image_file"] == IMG and "guidance_method_1_image_url" not in body
    assert body["image_prompt_file"] == IMG and "image_prompt_urls" not in body


def test_generate_image_with_guidance_builds_the_v1_body():
    p = params("bria.generate_image", prompt="Modern building", bria_model_version="2.3",
               guidance_method_1="controlnet_depth", guidance_method_1_image_file="data:image/png;base64," + IMG)
    body = BY_NAME["bria.generate_image"].build(p)
    assert body["guidance_method_1_image_file"] == IMG and body["text_guidance_scale"] == 5.0


def test_variation_maps_to_reimagine():
    body = generation.build_variation({**params("bria.generate_variation", prompt="watercolor", image_url=URL,
                                         ref_image_influence=0.8, seed=7, tailored_model_id="12"),
                                "_tailored_model_id": "t1"})  # the tenant's model 12 is Bria's t1
    assert body["structure_image_url"] == URL and body["structure_ref_influence"] == 0.8
    assert body["tailored_model_id"] == "t1" and body["seed"] == 7 and body["fast"] is True
    body = generation.build_variation({"prompt": "x y z w", "image_file": "data:image/png;base64," + IMG})
    assert body["structure_image_file"] == IMG and body["structure_ref_influence"] == 0.75


# --------------------------------------------------------------------------- editing bodies
def test_v1_pair_url_wins_and_base64_goes_as_file():
    assert editing.build_get_masks({"image_url": URL, "image_file": IMG}) == {"image_url": URL}
    assert editing.build_get_masks({"image_file": "data:image/png;base64," + IMG}) == {"file": IMG}
    assert editing.build_product_cutout({"image_file": IMG, "force_rmbg": True}) == {"file": IMG, "force_rmbg": True}


def test_v2_editing_bodies():
    p = params("bria.remove_background", image="data:image/png;base64," + IMG)
    assert editing.build_remove_background(p) == {"image": IMG, "preserve_alpha": True,
                                              "visual_input_content_moderation": False,
                                              "visual_output_content_moderation": False}
    assert editing.build_crop_foreground(params("bria.crop_foreground", image=URL, padding=5))["padding"] == 5
    body = editing.build_erase(params("bria.erase", image=IMG, mask=URL))
    assert body["mask"] == URL and body["mask_type"] == "manual"
    assert editing.build_blur_background(params("bria.blur_background", image=IMG, scale=2))["scale"] == 2
    body = editing.build_enhance(params("bria.enhance_image", image=IMG, resolution="4MP", steps_num=30))
    assert body["resolution"] == "4MP" and body["steps_num"] == 30
    assert editing.build_upscale(params("bria.upscale_image", image=IMG, desired_increase=4))["desired_increase"] == 4
    body = editing.build_generate_background(params("bria.generate_background", image=IMG, prompt="a beach",
                                                ref_images=["data:;base64," + IMG]))
    assert body["prompt"] == "a beach" and body["ref_images"] == [IMG] and body["refine_prompt"] is True
    body = editing.build_video_remove_background(params("bria.video_remove_background", video="https://e.com/v.mp4"))
    assert body == {"video": "https://e.com/v.mp4", "background_color": "Transparent",
                    "output_container_and_codec": "webm_vp9"}


def test_inpaint_border_only_draws_the_mask():
    body = editing.build_inpaint(params("bria.inpaint", image=png_b64((100, 50)), prompt="the forest",
                                    mask_type="border_only", border_percentage=0.2))
    assert body["mask_type"] == "manual"
    mask = Image.open(io.BytesIO(base64.b64decode(body["mask"])))
    assert mask.size == (100, 50) and mask.getpixel((0, 0)) == 255 and mask.getpixel((50, 25)) == 0
    assert mask.getpixel((19, 25)) == 255 and mask.getpixel((20, 25)) == 0
    body = editing.build_inpaint(params("bria.inpaint", image=IMG, mask=URL, prompt="a red car"))
    assert body["mask"] == URL and body["mask_type"] == "manual"
    with pytest.raises(Permanent):
        editing.build_inpaint({"image": URL, "prompt": "abcd", "mask_type": "border_only"})


@pytest.mark.parametrize("request_fields, expected", [
    ({"canvas_size": [400, 300]}, {"canvas_size": [400, 300], "original_image_size": [200, 100],
                                   "original_image_location": [100, 100]}),
    ({"canvas_size": [400, 300], "position": "upper_left"}, {"original_image_location": [0, 0]}),
    ({"canvas_size": [400, 300], "position": "bottom_right"}, {"original_image_location": [200, 200]}),
    ({"canvas_size": [400, 300], "position": "right_center"}, {"original_image_location": [200, 100]}),
    ({"canvas_size": [100, 100]}, {"original_image_size": [100, 50], "original_image_location": [0, 25]}),
    ({"padding_left": 0.5}, {"canvas_size": [400, 100], "original_image_location": [200, 0]}),
    ({"aspect_ratio": "1:1", "padding_top": 0.5}, {"canvas_size": [200, 200], "original_image_location": [0, 100]}),
    ({"canvas_size": [1000, 400], "padding_left": 0.1, "padding_right": 0.1, "padding_top": 0.25,
      "padding_bottom": 0.25}, {"original_image_size": [200, 100], "original_image_location": [400, 150]}),
])
def test_expand_geometry(request_fields, expected):
    geometry = editing.expand_geometry((200, 100), request_fields)
    assert {k: geometry[k] for k in expected} == expected


def test_expand_aspect_ratio_alone_is_passed_to_bria():
    body = editing.build_expand(params("bria.expand_image", image=URL, aspect_ratio="16:9"))
    assert body["aspect_ratio"] == "16:9" and "canvas_size" not in body and "prompt" not in body
    body = editing.build_expand(params("bria.expand_image", image=png_b64((200, 100)), canvas_size=[400, 300],
                                   prompt="a mountain lake"))
    assert body["canvas_size"] == [400, 300] and body["prompt"] == "a mountain lake" and "aspect_ratio" not in body


def test_product_bodies():
    body = editing.build_solid_background(params("bria.generate_solid_background", image_url=URL))
    assert body == {"image_url": URL, "background_color": "#FFFFFF", "force_rmbg": False}
    body = editing.build_product_shadow(params("bria.generate_product_shadow", image_file=IMG, shadow_type="float",
                                           background_color="transparent"))
    assert body["type"] == "float" and body["shadow_blur"] == 20 and body["shadow_height"] == 70
    assert "background_color" not in body and body["shadow_offset"] == [0, 15] and body["file"] == IMG
    body = editing.build_product_shadow(params("bria.generate_product_shadow", image_url=URL, background_color="#F5F5F5"))
    assert body["shadow_blur"] == 15 and body["background_color"] == "#F5F5F5" and "shadow_height" not in body
    body = editing.build_background_by_text(params("bria.generate_product_background_by_text", scene_description="kitchen",
                                               image_url=URL, canvas_for_packshot_size=[1000, 1000], fast=False,
                                               exclude_elements="people"))
    assert body["scene_description"] == "kitchen" and body["shot_size"] == [1000, 1000]
    assert body["exclude_elements"] == "people" and body["placement_type"] == "original"
    body = editing.build_background_by_image(params("bria.generate_product_background_by_image", image_file=IMG,
                                                ref_image_urls=[URL], ref_image_influence=1.2))
    assert body["ref_image_urls"] == [URL] and body["ref_image_influence"] == 1.2 and body["file"] == IMG
    assert editing.build_background_by_image({"image_url": URL, "ref_image_urls": [IMG]})["ref_image_file"] == IMG


# --------------------------------------------------------------------------- aliases
def alias(path_tail: str):
    return next(op for op in ops.ALIASES if op.path.endswith(path_tail))


def normalise(path_tail: str, **fields) -> dict:
    op = alias(path_tail)
    return op.normalize(op.request_model(**fields).model_dump(mode="json"))


def test_alias_normalises_legacy_names():
    p = normalise("editing/expand-image", image_file=IMG, aspect_ratio="16:9", padding_left=0.1)
    assert p["image"] == IMG and "image_file" not in p and p["aspect_ratio"] == "16:9"
    p = normalise("editing/blur-background", image_url=URL, blur_scale=3, force_rmbg=False)
    assert p["image"] == URL and p["scale"] == 3
    p = normalise("editing/generate-background", image_url=URL, bg_prompt="a tropical beach", num_results=2)
    assert p["prompt"] == "a tropical beach" and "num_results" not in p
    p = normalise("editing/generate-background", image_url=URL, ref_image_url=URL, enhance_ref_image=False)
    assert p["ref_images"] == [URL] and p["enhance_ref_images"] is False
    p = normalise("editing/upscale-image", image_url=URL, content_moderation=True, desired_increase=4)
    assert p["visual_input_content_moderation"] is True and p["visual_output_content_moderation"] is True
    p = normalise("video-remove-background", video_url="https://e.com/v.mp4")
    assert p["video"] == "https://e.com/v.mp4"
    p = normalise("editing/inpaint", image_url=URL, mask_url=URL, prompt="red sports car", num_results=2)
    assert p["mask"] == URL and p["image"] == URL


def test_alias_applies_the_canonical_limits():
    with pytest.raises(ValidationError) as info:
        normalise("editing/expand-image", image_url=URL, canvas_size=[1024, 1024], position="center")
    assert info.value.errors()[0]["loc"] == ("position",)
    with pytest.raises(ValidationError) as info:
        normalise("editing/inpaint", mask_type="border_only", prompt="continue the forest", border_percentage=0.15)
    assert info.value.errors()[0]["loc"] == ("image",)


def test_canonical_models_accept_003_names_too():
    m = S.BriaCropForegroundRequest.model_validate({"image_url": URL, "padding": 50, "force_rmbg": True})
    assert m.image == URL and m.force_background_detection is True
    # the canonical name wins over a legacy one
    m = S.BriaRemoveBackgroundRequest.model_validate({"image": IMG, "image_url": URL})
    assert m.image == IMG


# --------------------------------------------------------------------------- prose rules
@pytest.mark.parametrize("model, fields, loc, kind", [
    ("BriaGetMasksRequest", {}, "image_url", "image_required"),
    ("BriaGenerateVariationRequest", {"prompt": "abcd", "image_url": URL, "fast": False, "num_results": 2},
     "num_results", "num_results_without_fast"),
    ("BriaInpaintingRequest", {"image": IMG, "prompt": "abcd"}, "mask", "mask_required"),
    ("BriaExpandImageRequest", {"image": IMG}, "canvas_size", "expand_target_missing"),
    ("BriaExpandImageRequest", {"image": IMG, "canvas_size": [1, 2, 3]}, "canvas_size", "pair_required"),
    ("BriaExpandImageRequest", {"image": IMG, "position": "upper_left", "padding_top": 0.1}, "position",
     "position_with_padding"),
    ("BriaExpandImageRequest", {"image": IMG, "padding_top": 0.6, "padding_bottom": 0.4}, "padding_top",
     "padding_too_large"),
    ("BriaGenerateBackgroundRequest", {"image": IMG}, "prompt", "prompt_or_ref_images_required"),
    ("BriaGenerateBackgroundRequest", {"image": IMG, "prompt": "abcd", "fast": True, "negative_prompt": "x"},
     "negative_prompt", "negative_prompt_requires_slow_mode"),
    ("BriaGenerateSolidBackgroundRequest", {"image_url": URL, "background_color": "red"}, "background_color",
     "colour_invalid"),
    ("BriaGenerateProductShadowRequest", {"image_url": URL, "shadow_offset": [1]}, "shadow_offset", "pair_required"),
    ("BriaGenerateProductBackgroundByTextRequest", {"scene_description": "abcd", "image_url": URL,
                                                    "exclude_elements": "people"},
     "exclude_elements", "exclude_elements_requires_slow_mode"),
    ("BriaGenerateProductBackgroundByTextRequest", {"scene_description": "abcd", "image_url": URL,
                                                    "placement_type": "custom_coordinates"},
     "foreground_image_size", "custom_coordinates_incomplete"),
    ("BriaGenerateProductBackgroundByImageRequest", {"image_url": URL}, "ref_image_urls", "reference_required"),
    ("BriaVideoRemoveBackgroundRequest", {"video": "https://e.com/v.mp4", "output_container_and_codec": "gif"},
     "output_container_and_codec", "codec_without_alpha"),
    ("BriaGenerateVectorBaseRequest", {"prompt": "abcd", "model_id": ["m"]}, "model_id", "model_id_type"),
    ("BriaLoraCreateProjectRequest", {"project_name": "p", "ip_medium": "illustration", "ip_type": "defined_character"},
     "ip_name", "ip_name_required"),
    ("BriaLoraUploadImageRequest", {"dataset_id": 1, "file_path": "/etc/passwd"}, "file_path", "file_path_not_supported"),
    ("BriaLoraUpdateImageCaptionRequest", {"dataset_id": 1, "image_id": 2}, "caption", "caption_required"),
    ("BriaLoraUpdateImageCaptionRequest", {"dataset_id": 1, "image_id": 2, "caption": "x", "regenerate_caption": True},
     "caption", "caption_conflict"),
    ("BriaLoraGenerateImagesRequest", {"model_id": "1", "prompt": "abcd", "steps_num": 8}, "steps_num",
     "steps_num_without_fast"),
    ("BriaLoraGenerateVectorRequest", {"model_id": "1", "prompt": "abcd", "guidance_method_1": "controlnet_canny"},
     "guidance_method_1", "guidance_image_missing"),
])
def test_prose_rules(model, fields, loc, kind):
    with pytest.raises(ValidationError) as info:
        getattr(S, model).model_validate(fields)
    errors = info.value.errors()
    assert any(e["loc"] == (loc,) and e["type"] == kind for e in errors), errors


def test_rules_pass_for_valid_requests():
    S.BriaGenerateProductShadowRequest.model_validate({"image_url": URL, "background_color": "transparent"})
    S.BriaInpaintingRequest.model_validate({"image": IMG, "prompt": "abcd", "mask_type": "border_only"})
    S.BriaVideoRemoveBackgroundRequest.model_validate({"video": "https://e.com/v.mp4", "background_color": "Black",
                                                       "output_container_and_codec": "mp4_h264"})


# --------------------------------------------------------------------------- v1 answers
def test_v1_answer_shapes():
    outputs, meta = v1_outputs({"result_url": "https://r/1.png"})
    assert [o.url for o in outputs] == ["https://r/1.png"] and meta == {}
    outputs, meta = v1_outputs({"result": [{"urls": ["https://r/1.png"], "seed": 4}, {"urls": ["https://r/2.png"], "seed": 5}]})
    assert [o.url for o in outputs] == ["https://r/1.png", "https://r/2.png"] and meta == {"seed": 4, "seeds": [4, 5]}
    outputs, _ = v1_outputs({"result": [["https://r/1.png", 7, "sid"]]})
    assert outputs[0].url == "https://r/1.png" and outputs[0].meta == {"seed": 7}
    outputs, _ = v1_outputs({"objects_masks": "https://r/m.zip"})
    assert outputs[0].content_type == "application/zip"
    assert v1_outputs({"nothing": 1}) == ([], {})


# --------------------------------------------------------------------------- simulator media
def scene(alpha: bool = False) -> Image.Image:
    img = Image.new("RGBA" if alpha else "RGB", (160, 120), (0, 0, 0, 0) if alpha else (235, 235, 230))
    ImageDraw.Draw(img).ellipse((50, 30, 110, 90), fill=(170, 20, 30, 255))
    return img


def test_segmentation_cutout_and_crop():
    cut = edit.remove_background(scene())
    assert cut.mode == "RGBA" and cut.getpixel((2, 2))[3] == 0 and cut.getpixel((80, 60))[3] == 255
    cropped = edit.crop_foreground(scene(), padding=4)
    assert 60 <= cropped.width <= 72 and 60 <= cropped.height <= 72
    assert edit.foreground_mask(scene(alpha=True)).getpixel((2, 2)) == 0


def test_simulator_geometry():
    assert edit.upscale(scene(), 4).size == (640, 480)
    assert edit.expand(scene(), (400, 300), (160, 120), (10, 20)).size == (400, 300)
    assert edit.packshot(scene()).size == (2000, 2000)
    assert edit.shadow(scene(alpha=True)).size == (160, 120)
    assert edit.enhance(scene(), "4MP").size[0] * edit.enhance(scene(), "4MP").size[1] > 4.1e6


def test_vector_trace_is_an_svg_of_polygons():
    data = edit.trace_svg(scene())
    root = ET.fromstring(data)
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert root.get("width") == "160" and 2 <= len(paths) <= 8
    assert {p.get("fill") for p in paths} and all(p.get("d").startswith("M") for p in paths)


def test_object_masks_zip():
    img = Image.new("RGB", (200, 100), (240, 240, 240))
    ImageDraw.Draw(img).rectangle((10, 10, 60, 60), fill=(0, 0, 0))
    ImageDraw.Draw(img).ellipse((120, 20, 190, 90), fill=(0, 0, 200))
    with zipfile.ZipFile(io.BytesIO(edit.masks_zip(edit.object_masks(img)))) as archive:
        masks = [Image.open(io.BytesIO(archive.read(n))) for n in archive.namelist()]
    assert len(masks) == 2 and all(m.size == (200, 100) and m.mode == "L" for m in masks)
    assert masks[0].getpixel((155, 55)) == 255 and masks[1].getpixel((35, 35)) == 255  # largest first
