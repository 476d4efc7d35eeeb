"""Bria's image and video editing calls: API v2 editing (``/v2/image/edit/…``), v1 product
shots (``/v1/product/…``) and video background removal. Sources [S1]–[S5]: builders/__init__.py."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw

from providers.bria.builders.common import (drop_none, first, image_size, is_url, pick, png_b64, raw, strip_data_url,
                                            v1_image)


_V2_MODERATION = ("visual_input_content_moderation", "visual_output_content_moderation")


def _v2(params: dict[str, Any], *names: str) -> dict[str, Any]:
    p = drop_none(params)
    body = pick(p, *names)
    for media in ("image", "mask"):
        if media in body:
            body[media] = raw(body[media])
    return body


def build_get_masks(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/objects/mask_generator`` [S5, unconfirmed] → ``objects_masks``: a ZIP of masks."""
    return v1_image(first(params, "image_url", "image_file"))


def build_remove_background(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "preserve_alpha", *_V2_MODERATION)


def build_product_cutout(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/product/cutout`` [S1][S4]."""
    return {**v1_image(first(params, "image_url", "image_file")), "force_rmbg": bool(params.get("force_rmbg"))}


def build_crop_foreground(params: dict[str, Any]) -> dict[str, Any]:
    # [unconfirmed] padding / force_background_detection names on Bria's side (S1 shows only image).
    return _v2(params, "image", "padding", "force_background_detection", "preserve_alpha", *_V2_MODERATION)


def build_erase(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "mask", "mask_type", "preserve_alpha", *_V2_MODERATION)


def build_erase_foreground(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "preserve_alpha", *_V2_MODERATION)


DEFAULT_BORDER_PERCENTAGE = 0.1  # our choice: 004 leaves border_percentage without a default


def border_mask(width: int, height: int, fraction: float):
    """White frame (area to fill) of ``fraction`` of each side around a black (kept) centre."""
    mask = Image.new("L", (width, height), 255)
    dx, dy = round(width * fraction), round(height * fraction)
    if width - 2 * dx > 0 and height - 2 * dy > 0:
        ImageDraw.Draw(mask).rectangle((dx, dy, width - dx - 1, height - dy - 1), fill=0)
    return mask


def build_inpaint(params: dict[str, Any]) -> dict[str, Any]:
    """``/v2/image/edit/gen_fill`` [S1]. Bria's gen_fill knows masks "manual"/"automatic";
    Vision Studio's "border_only" (kept "for backward compatibility") is served by drawing the
    border mask here from ``border_percentage`` and sending it as a manual mask."""
    body = _v2(params, "image", "mask", "prompt", "mask_type", "negative_prompt", "seed", "preserve_alpha",
               "prompt_content_moderation", *_V2_MODERATION)
    if params.get("mask_type") == "border_only":
        width, height = image_size(params.get("image"), "image")
        fraction = params.get("border_percentage")
        fraction = DEFAULT_BORDER_PERCENTAGE if fraction is None else fraction
        body["mask"] = png_b64(border_mask(width, height, fraction))
        body["mask_type"] = "manual"
    return body


def _parse_ratio(text: str) -> float:
    w, h = text.split(":")
    return int(w) / int(h)


def expand_geometry(size: tuple[int, int], params: dict[str, Any]) -> dict[str, Any]:
    """Vision Studio's expand request → Bria's ``canvas_size`` / ``original_image_size`` /
    ``original_image_location`` (all in pixels).

    * canvas: ``canvas_size`` if given (it overrides ``aspect_ratio``); else the smallest canvas
      of ``aspect_ratio`` that holds the image at its size plus the paddings; else the image plus
      the paddings.
    * paddings (0–1) are fractions of the canvas left free on each side; the image is scaled to
      fit the remaining box (never up) and centred in it.
    * ``position`` (ManualPlacement) pins the image, at its size or scaled down to fit, to an
      edge/corner; center_vertical and center_horizontal both centre it. Default: centred.
    """
    w, h = size
    pads = {k: float(params.get(f"padding_{k}") or 0.0) for k in ("left", "right", "top", "bottom")}
    free_x, free_y = 1 - pads["left"] - pads["right"], 1 - pads["top"] - pads["bottom"]
    if params.get("canvas_size"):
        cw, ch = (int(v) for v in params["canvas_size"])
    else:
        cw, ch = w / free_x, h / free_y
        if params.get("aspect_ratio"):
            ratio = _parse_ratio(params["aspect_ratio"])
            if cw / ch < ratio:
                cw = ch * ratio
            else:
                ch = cw / ratio
        cw, ch = max(w, round(cw)), max(h, round(ch))
    box_w, box_h = cw * free_x, ch * free_y
    scale = min(1.0, box_w / w, box_h / h)
    iw, ih = max(1, int(w * scale)), max(1, int(h * scale))
    left, top = cw * pads["left"], ch * pads["top"]
    position = str(params.get("position") or "")
    if "left" in position:
        x = 0
    elif "right" in position:
        x = cw - iw
    else:
        x = left + (box_w - iw) / 2
    if position.startswith("upper"):
        y = 0
    elif position.startswith("bottom"):
        y = ch - ih
    else:
        y = top + (box_h - ih) / 2
    return {"canvas_size": [int(cw), int(ch)], "original_image_size": [iw, ih],
            "original_image_location": [int(round(x)), int(round(y))]}


def build_expand(params: dict[str, Any]) -> dict[str, Any]:
    """``/v2/image/edit/expand`` [S1]: ``aspect_ratio`` alone is passed as is (Bria centres the
    image); any placement (canvas, position, paddings) is computed into pixel geometry.
    [unconfirmed] names original_image_size / original_image_location."""
    body = _v2(params, "image", "prompt", "seed", "negative_prompt", "preserve_alpha", "prompt_content_moderation",
               *_V2_MODERATION)
    if not body.get("prompt"):
        body.pop("prompt", None)  # 004's default "" means "no prompt"
    placed = params.get("canvas_size") or params.get("position") or any(
        params.get(f"padding_{k}") is not None for k in ("left", "right", "top", "bottom"))
    if not placed:
        body["aspect_ratio"] = params.get("aspect_ratio")
        return body
    body.update(expand_geometry(image_size(params.get("image"), "image"), params))
    return body


def build_blur_background(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "scale", "preserve_alpha", *_V2_MODERATION)


def build_solid_background(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/product/packshot`` [S1][S4]: 2000×2000, ``background_color`` hex or "transparent"."""
    return {**v1_image(first(params, "image_url", "image_file")),
            "background_color": params.get("background_color") or "#FFFFFF",
            "force_rmbg": bool(params.get("force_rmbg"))}


def build_generate_background(params: dict[str, Any]) -> dict[str, Any]:
    """``/v2/image/edit/replace_background`` [S1]; [unconfirmed] names of the options beyond
    image/prompt (ref_images, enhance_ref_images, refine_prompt, original_quality, fast, …)."""
    body = _v2(params, "image", "prompt", "enhance_ref_images", "refine_prompt", "prompt_content_moderation",
               "negative_prompt", "original_quality", "force_background_detection", "fast", "seed", *_V2_MODERATION)
    if params.get("ref_images"):
        body["ref_images"] = [raw(v) for v in params["ref_images"]]
    return body


SHADOW_BLUR_DEFAULT = {"regular": 15, "float": 20}  # 004 docstring defaults (not in the schema)
SHADOW_HEIGHT_DEFAULT = 70


def build_product_shadow(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/product/shadow`` [S1][S4]. ``background_color`` "transparent" (003) = omitted (004)."""
    p = drop_none(params)
    kind = p.get("shadow_type", "regular")
    body: dict[str, Any] = {**v1_image(first(p, "image_url", "image_file")), "type": kind,
                            "shadow_color": p.get("shadow_color", "#000000"),
                            "shadow_intensity": p.get("shadow_intensity", 60),
                            "shadow_offset": p.get("shadow_offset", [0, 15]),
                            "shadow_blur": p.get("shadow_blur", SHADOW_BLUR_DEFAULT.get(kind, 15)),
                            "force_rmbg": bool(p.get("force_rmbg"))}
    if kind == "float":
        body["shadow_height"] = p.get("shadow_height", SHADOW_HEIGHT_DEFAULT)
        if "shadow_width" in p:
            body["shadow_width"] = p["shadow_width"]
    background = p.get("background_color")
    if background and background.lower() != "transparent":
        body["background_color"] = background
    return body


_LIFESTYLE = ("num_results", "fast", "original_quality", "force_rmbg", "placement_type", "manual_placement_selection",
              "padding_values", "foreground_image_size", "foreground_image_location", "aspect_ratio")


def _lifestyle(p: dict[str, Any]) -> dict[str, Any]:
    body = pick(p, *_LIFESTYLE)
    if p.get("canvas_for_packshot_size"):
        body["shot_size"] = p["canvas_for_packshot_size"]  # 004's docstring name is shot_size
    body.update(v1_image(first(p, "image_url", "image_file")))
    return body


def build_background_by_text(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/product/lifestyle_shot_by_text`` [S1]."""
    p = drop_none(params)
    return {**_lifestyle(p), **pick(p, "scene_description", "optimize_description", "exclude_elements")}


def build_background_by_image(params: dict[str, Any]) -> dict[str, Any]:
    """``/v1/product/lifestyle_shot_by_image`` [S1]: references as URLs, else one base64 file."""
    p = drop_none(params)
    body = {**_lifestyle(p), **pick(p, "enhance_ref_image", "ref_image_influence")}
    refs = p.get("ref_image_urls") or []
    if refs and all(is_url(r) for r in refs):
        body["ref_image_urls"] = list(refs)
    elif refs:
        body["ref_image_file"] = strip_data_url(refs[0])  # fetched: the first reference as base64
    elif p.get("ref_image_file"):
        body["ref_image_file"] = strip_data_url(p["ref_image_file"])
    return body


def build_enhance(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "seed", "steps_num", "resolution", "preserve_alpha", *_V2_MODERATION)


def build_upscale(params: dict[str, Any]) -> dict[str, Any]:
    return _v2(params, "image", "desired_increase", "preserve_alpha", *_V2_MODERATION)


def build_video_remove_background(params: dict[str, Any]) -> dict[str, Any]:
    """``/v2/video/edit/remove_background`` [S2]: the video goes as its public URL."""
    return pick(drop_none(params), "video", "background_color", "output_container_and_codec")
