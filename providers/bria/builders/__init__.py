"""Bria's request builders: a Vision Studio request's validated params → the body of Bria's
upstream call (and, where the upstream path depends on the request, the path). ``common`` holds
what they share (Bria's media limits, media values as Bria wants them), ``generation`` the
text-to-image, vector, variation and tailored-generation calls, ``editing`` the image and video
editing calls. The operation table (providers/bria/operations.py) names them.

Upstream mapping. Sources, read for these builders (look-ups listed so they can be re-checked):
  [S1] Bria-AI/bria-skill skills/bria-ai/references/api-endpoints.md — v2 image editing paths
       (/v2/image/edit/remove_background, gen_fill, erase, erase_foreground, replace_background,
       blur_background, expand, enhance, increase_resolution, crop_foreground), the v1 product
       paths (/v1/product/cutout, packshot, shadow, lifestyle_shot_by_text, _by_image: image_url
       or `file` base64; cutout/packshot/shadow answer {"result_url"}; lifestyle answers
       {"result": [[url, seed, session_id], ...]}).
  [S2] Bria-AI/bria-skill skills/video-remove-background/references/api-endpoints.md —
       POST /v2/video/edit/remove_background {video (public URL), background_color,
       output_container_and_codec}; 202 + status; result.video_url; Transparent needs an alpha preset.
  [S3] docs.bria.ai "Working with images and video" — v2 image fields take a public URL or raw
       base64 (no data: prefix); mask-based endpoints take a mask of the input's size.
  [S4] docs.bria.ai product-shot-editing/product-endpoints — /product/cutout, /product/packshot
       (2000×2000 output), /product/shadow on https://engine.prod.bria-api.com/v1; image_url wins
       over the base64 `file`; 12 MB.
  [S5] third-party clients found in public code (not Bria's own pages), hence [unconfirmed]:
       /v1/text-to-image/{base|fast|hd}/{model_version}, /v1/text-to-vector/{base|fast}/{model_version}
       (answer {"result": [{"urls": [...], "seed": n}]}), /v1/reimagine (structure_image_url |
       structure_image_file, structure_ref_influence, fast, steps_num, tailored_model_id, …),
       /v1/objects/mask_generator ({"objects_masks": <zip url>}), /v1/prompt_enhancer
       ({"prompt variations": "..."}).
v1 endpoints have no status service: an async (sync=false) v1 call hands out URLs before the
assets exist, so the adapter calls v1 with sync=true and treats the answer as the result.
"""
