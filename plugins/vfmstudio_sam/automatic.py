"""Automatic masks ("segment everything"): the point grid, stability score and non-maximum suppression.

Pure numpy, following the SAM paper's automatic mask generator (Kirillov et al. 2023, §7.1 and the
``SamAutomaticMaskGenerator`` defaults): a regular grid of single-point prompts, each giving three
masks; keep masks whose predicted IoU and stability (the IoU between the mask thresholded at
``+offset`` and at ``-offset`` on the logits) are high; then greedy NMS by box IoU (or mask IoU).
"""

from __future__ import annotations

import numpy as np


def point_grid(n_per_side: int, width: int, height: int) -> np.ndarray:
    """(n*n, 2) x, y: the centres of an n x n grid of cells over the image, row by row."""
    offset = 1.0 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    grid = np.stack([xs, ys], axis=-1).reshape(-1, 2)
    return (grid * np.array([width, height])).astype(np.float32)


def stability_score(logits: np.ndarray, threshold: float = 0.0, offset: float = 1.0) -> np.ndarray:
    """(N, h, w) logits -> (N,) |logits > t + o| / |logits > t - o|: how little the mask moves when the
    cut moves (1 when both agree; an empty loose mask scores 0)."""
    flat = logits.reshape(logits.shape[0], -1)
    inner = (flat > threshold + offset).sum(axis=1)
    outer = (flat > threshold - offset).sum(axis=1)
    return np.where(outer > 0, inner / np.maximum(outer, 1), 0.0).astype(np.float32)


def boxes_of(masks: np.ndarray) -> np.ndarray:
    """(N, h, w) bool -> (N, 4) x0, y0, x1, y1 (exclusive ends) of each mask; zeros for an empty mask."""
    out = np.zeros((masks.shape[0], 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if len(xs):
            out[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return out


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def mask_iou(mask: np.ndarray, masks: np.ndarray) -> np.ndarray:
    flat, one = masks.reshape(masks.shape[0], -1), mask.reshape(-1)
    inter = (flat & one).sum(axis=1)
    union = (flat | one).sum(axis=1)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def nms(
    scores: np.ndarray,
    iou_threshold: float,
    *,
    boxes: np.ndarray | None = None,
    masks: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, best score first. Overlap is box IoU when ``boxes``
    is given, else mask IoU; a candidate is dropped when its IoU with a kept one exceeds the threshold."""
    if (boxes is None) == (masks is None):
        raise ValueError("nms takes boxes or masks")
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    for i in order:
        if keep:
            kept = np.asarray(keep)
            iou = box_iou(boxes[i], boxes[kept]) if boxes is not None else mask_iou(masks[i], masks[kept])
            if (iou > iou_threshold).any():
                continue
        keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)
