"""clip.classify: zero-shot scores for user classes, softmax (CLIP) or per-class sigmoid (SigLIP)."""

from __future__ import annotations

import numpy as np

from vfmstudio.plugin_api import Classification, LoadedImage, ParamError, RunContext
from vfmstudio_clip._model import ClipBundle, cached_class_embeddings, cached_image_embeddings, get_bundle
from vfmstudio_clip.labels import read_labels
from vfmstudio_clip.templates import resolve_templates


def scores_from_embeddings(
    bundle: ClipBundle, image_emb: np.ndarray, class_emb: np.ndarray, multi_label: bool
) -> np.ndarray:
    """(N images, K classes) scores: logits = scale * cos (+ bias for SigLIP), then sigmoid or softmax."""
    logits = bundle.logit_scale * (image_emb.astype(np.float64) @ class_emb.astype(np.float64).T)
    logits += bundle.logit_bias
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def resolve_multi_label(bundle: ClipBundle, value: object) -> bool:
    if value == "auto":
        return bundle.family == "siglip"
    if value and bundle.family == "clip":
        raise ParamError(
            "parameter 'multi_label': CLIP scores classes with a softmax and has no calibrated "
            "per-class score; use a SigLIP model for independent labels"
        )
    return bool(value)


def prepare(ctx: RunContext, images: list[LoadedImage], params: dict) -> None:
    """Batch engines call this before per-image runs: encode the labels once and the images in batches."""
    bundle = get_bundle(ctx)
    cached_class_embeddings(
        ctx, bundle, read_labels(params["labels"]), resolve_templates(params["templates"])
    )
    cached_image_embeddings(
        ctx, bundle, [im.id for im in images], lambda i: images[i].pixels, params["batch_size"]
    )


def classify(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Classification]:
    labels = read_labels(params["labels"])
    templates = resolve_templates(params["templates"])
    ctx.progress(0.0, "loading model")
    bundle = get_bundle(ctx)
    multi_label = resolve_multi_label(bundle, params["multi_label"])
    ctx.progress(0.05, "encoding labels")
    class_emb = cached_class_embeddings(ctx, bundle, labels, templates)
    image_emb = cached_image_embeddings(
        ctx,
        bundle,
        [im.id for im in images],
        lambda i: images[i].pixels,
        params["batch_size"],
        progress=(0.1, 1.0),
    )
    scores = scores_from_embeddings(bundle, image_emb, class_emb, multi_label)
    ctx.progress(1.0, "done")
    return [
        Classification(labels=labels, scores=s.astype(np.float32), multi_label=multi_label, image_id=im.id)
        for im, s in zip(images, scores)
    ]
