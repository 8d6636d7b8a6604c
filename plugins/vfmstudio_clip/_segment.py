"""clip.segment: per-class heat maps and argmax masks (with a background class) from dense CLIP tokens."""

from __future__ import annotations

import numpy as np

from vfmstudio.plugin_api import Heatmap, LoadedImage, Masks, ModelError, ParamError, Result, RunContext
from vfmstudio_clip._dense import (
    dense_embeddings,
    patch_logits,
    plan_windows,
    softmax_classes,
    upsample_argmax,
)
from vfmstudio_clip._model import cached_class_embeddings, get_bundle
from vfmstudio_clip.labels import read_labels
from vfmstudio_clip.templates import resolve_templates

BACKGROUND = "background"
# SCLIP evaluates ViT-B/16 (224 px input) with the short side resized to 336 px: 1.5 times the input size.
SCLIP_RESOLUTION_FACTOR = 1.5


def auto_resolution(mode: str, image_size: int, patch: int) -> int | None:
    """The short side for ``resolution=auto``: SCLIP's 1.5 x the input size for sclip (336 px for the
    224-px models), the model's input size (None) for the other modes, as their papers evaluate them."""
    if mode != "sclip":
        return None
    return max(1, round(image_size * SCLIP_RESOLUTION_FACTOR / patch)) * patch


def segment(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    image = images[0]
    labels = read_labels(params["labels"])
    if BACKGROUND in labels:
        raise ParamError(
            f"parameter 'labels': '{BACKGROUND}' is added by the tool; set the 'background' "
            f"threshold instead of naming it as a class"
        )
    templates = resolve_templates(params["templates"])
    ctx.progress(0.0, "loading model")
    bundle = get_bundle(ctx)
    if bundle.naflex:
        # Dense maps slide fixed square windows over the image; NaFlex inputs have no fixed size.
        raise ModelError(
            f"'{bundle.ref}' is a NaFlex SigLIP 2 checkpoint; clip.segment needs a fixed-resolution "
            "one, e.g. google/siglip2-base-patch16-224 (classify and search take both)"
        )
    resolution = (
        auto_resolution(params["mode"], bundle.image_size, bundle.patch_size)
        if params["resolution"] == "auto"
        else params["resolution"]
    )
    stride = None if params["stride"] == "auto" else params["stride"]
    plan = plan_windows(
        image.height,
        image.width,
        image_size=bundle.image_size,
        patch=bundle.patch_size,
        resolution=resolution,
        stride=stride,
    )
    ctx.progress(0.05, "encoding labels")
    class_emb = cached_class_embeddings(ctx, bundle, labels, templates)
    dense = dense_embeddings(ctx, bundle, image, params["mode"], plan)
    ctx.progress(0.9, "scoring patches")
    logits = patch_logits(dense, class_emb)
    probs = softmax_classes(logits, params["logit_scale"])
    extent = (0.0, 0.0, float(image.width), float(image.height))
    results: list[Result] = [
        Heatmap(values=probs[..., k], label=label, value_range=(0.0, 1.0), extent=extent, image_id=image.id)
        for k, label in enumerate(labels)
    ]
    results.append(_argmax_masks(logits, labels, params["background"], params["logit_scale"], image))
    ctx.progress(1.0, "done")
    return results


def _argmax_masks(
    logits: np.ndarray, labels: tuple[str, ...], background: float, logit_scale: float, image: LoadedImage
) -> Masks:
    """One mask per class that wins somewhere, plus ``background`` where no class reaches the threshold
    (SCLIP's ``prob_thd``): logits upsampled to the image, then softmax and argmax per pixel."""
    index, best = upsample_argmax(logits, image.height, image.width, logit_scale)
    index = np.where(best < background, -1, index)
    masks, names, scores = [], [], []
    for k, label in [(-1, BACKGROUND), *enumerate(labels)]:
        mask = index == k
        if not mask.any():
            continue
        masks.append(mask)
        names.append(label)
        scores.append(float(best[mask].mean()))
    stacked = np.stack(masks) if masks else np.zeros((0, image.height, image.width), bool)
    return Masks(masks=stacked, labels=tuple(names), scores=np.asarray(scores, np.float32), image_id=image.id)
