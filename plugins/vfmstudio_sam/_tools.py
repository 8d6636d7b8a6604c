"""The sam tool functions: ``fn(ctx, images, params) -> list[Result]`` on a cached image embedding.

Prompts are checked first (``prompts``), then the model is fetched from the model cache and the
embedding from the feature cache; a click on an image already encoded runs only the prompt encoder
and mask decoder.
"""

from __future__ import annotations

import numpy as np
import torch

from vfmstudio.plugin_api import LoadedImage, Masks, ParamError, Result, RunContext
from vfmstudio_sam import _concept as concept_model
from vfmstudio_sam import _decode, _model, automatic
from vfmstudio_sam._embedding import embedding_for
from vfmstudio_sam.prompts import DEFAULT_LABEL, Prompt, refine_boxes, segment_prompts


def _masks(
    image: LoadedImage,
    masks: np.ndarray,
    labels: tuple[str, ...],
    scores: np.ndarray,
    boxes: np.ndarray | None = None,
) -> Masks:
    return Masks(
        masks=masks, labels=labels, scores=scores.astype(np.float32), boxes_xyxy=boxes, image_id=image.id
    )


def segment(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    """Points (positive and negative) and boxes -> masks with predicted-IoU scores."""
    (image,) = images
    prompts = segment_prompts(image, params)
    sam = _model.get(ctx)
    emb = embedding_for(ctx, sam, image)
    single = len(prompts) == 1 and prompts[0].single_point
    low = _decode.decode_all(sam, emb, prompts, multimask=single)
    if single:  # one click is ambiguous: SAM proposes three masks and the best predicted IoU wins
        low = _decode.best_of(low)
    masks = _decode.to_image(sam, emb, low.logits[:, 0])
    label = params.get("label") or DEFAULT_LABEL
    return [_masks(image, masks, (label,) * len(masks), low.scores[:, 0].float().cpu().numpy())]


def refine(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    """Boxes (given, or from a prior detection or mask result) -> one mask each, keeping their labels."""
    (image,) = images
    boxes, labels = refine_boxes(image, params)
    sam = _model.get(ctx)
    emb = embedding_for(ctx, sam, image)
    prompts = [
        Prompt(points=np.zeros((0, 2), np.float32), point_labels=np.zeros(0, np.int64), box=b) for b in boxes
    ]
    ctx.progress(None, f"decoding {len(prompts)} masks")
    low = _decode.decode_all(sam, emb, prompts, multimask=False)
    masks = _decode.to_image(sam, emb, low.logits[:, 0])
    return [_masks(image, masks, labels, low.scores[:, 0].float().cpu().numpy())]


def everything(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    """Automatic masks from a point grid, filtered by predicted IoU and stability, then NMS."""
    (image,) = images
    sam = _model.get(ctx)
    emb = embedding_for(ctx, sam, image)
    grid = automatic.point_grid(params["points_per_side"], image.width, image.height)
    prompts = [Prompt(points=p[None], point_labels=np.ones(1, np.int64)) for p in grid]
    logits, scores = [], []
    step = _decode.MAX_DECODER_BATCH
    for start in range(0, len(prompts), step):
        ctx.progress(
            start / len(prompts), f"points {start + 1}-{min(len(prompts), start + step)}/{len(prompts)}"
        )
        low = _decode.decode_all(sam, emb, prompts[start : start + step], multimask=True)
        logits.append(low.logits.flatten(0, 1).float().cpu().numpy())  # (n * 3, h, w)
        scores.append(low.scores.flatten().float().cpu().numpy())
    low_logits, low_scores = np.concatenate(logits), np.concatenate(scores)
    stability = automatic.stability_score(low_logits)
    keep = (low_scores > params["pred_iou_thresh"]) & (stability > params["stability_thresh"])
    low_logits, low_scores = low_logits[keep], low_scores[keep]
    low_masks = low_logits > 0
    nonempty = low_masks.reshape(len(low_masks), -1).any(axis=1)
    low_logits, low_scores, low_masks = low_logits[nonempty], low_scores[nonempty], low_masks[nonempty]
    if params["nms"] == "box":
        order = automatic.nms(low_scores, params["nms_thresh"], boxes=automatic.boxes_of(low_masks))
    else:
        order = automatic.nms(low_scores, params["nms_thresh"], masks=low_masks)
    order = order[: params["max_masks"]]
    masks = _decode.to_image(sam, emb, torch.from_numpy(low_logits[order]))
    area = masks.reshape(len(masks), -1).sum(axis=1)
    big = (area >= params["min_area"]) & (area > 0)
    n = int(big.sum())
    return [
        _masks(image, masks[big], tuple(f"{DEFAULT_LABEL} {i + 1}" for i in range(n)), low_scores[order][big])
    ]


def text(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    """SAM 3 concept prompts: every instance of the named concept, with its box and score."""
    (image,) = images
    concept = (params.get("text") or "").strip()
    if not concept:
        raise ParamError("parameter 'text': give the name of a concept, e.g. 'yellow school bus'")
    concept_model.require_concept_model(_model.checkpoint(ctx))
    found = concept_model.segment_concept(ctx, image, concept, params["threshold"], params["mask_threshold"])
    label = params.get("label") or concept
    # The detector's boxes may reach past the border; a result's boxes lie on the image.
    boxes = found.boxes.clip(0, np.array([image.width, image.height] * 2, np.float32))
    return [_masks(image, found.masks, (label,) * len(found.masks), found.scores, boxes)]
