"""Prompts -> masks on a cached embedding: the prompt encoder and mask decoder only.

Coordinates are mapped to the model input and masks back to the image exactly as the reference
processors do (``SamProcessor`` / ``Sam2Processor`` and their ``post_process_masks``), so the masks
and scores equal the reference pipeline's (tests/plugins/test_sam_reference.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vfmstudio_sam._embedding import ImageEmbedding
from vfmstudio_sam._model import SamModel
from vfmstudio_sam.prompts import Prompt

MAX_DECODER_BATCH = 64  # objects per decoder call: bounds activations (64 x 256 x 256 logits)
FULL_SIZE_FLOATS = 64 * 1024 * 1024  # float32 values per upsampling step on a GPU (256 MB)
# On a CPU, every tensor above glibc's mmap threshold (32 MB at most) is a fresh mapping, paid in page
# faults on every call: 32 boxes in one SAM ViT-B decoder call faulted in 3.8 GB of new pages and
# cost more CPU time than 32 calls of one box. Decoder chunks and upsampling steps stay under this
# size instead (docs/adr/0184).
CPU_TENSOR_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class LowRes:
    """Decoder output: ``logits`` (N, K, h, w) at the decoder's resolution, ``scores`` (N, K) predicted IoU."""

    logits: torch.Tensor
    scores: torch.Tensor


def _scale_coords(sam: SamModel, emb: ImageEmbedding, coords: np.ndarray) -> torch.Tensor:
    """Image pixels -> model-input pixels, (..., 2) x, y, as the reference processors compute them."""
    (old_h, old_w), (new_h, new_w) = emb.original, emb.resized
    if sam.checkpoint.family == "sam":
        # SamProcessor: float64 numpy, scaled by the resized/original ratio of each side.
        out = coords.astype(np.float64)
        out[..., 0] = out[..., 0] * (new_w / old_w)
        out[..., 1] = out[..., 1] * (new_h / old_h)
        return torch.from_numpy(out)
    # Sam2Processor: a float32 tensor times the same ratios.
    t = torch.from_numpy(np.ascontiguousarray(coords)).float()
    t[..., 0] = t[..., 0] * (new_w / old_w)
    t[..., 1] = t[..., 1] * (new_h / old_h)
    return t


def decode(sam: SamModel, emb: ImageEmbedding, prompts: list[Prompt], multimask: bool) -> LowRes:
    """One decoder call for prompts of the same shape (the same number of points, all with or all
    without a box)."""
    n_points = {len(p.points) for p in prompts}
    has_box = {p.box is not None for p in prompts}
    if len(n_points) != 1 or len(has_box) != 1:
        raise ValueError("one decoder call takes prompts of one shape")
    device = sam.device
    kwargs: dict = {}
    if n_points.pop():
        points = np.stack([p.points for p in prompts])[None]  # (1, N, P, 2)
        labels = np.stack([p.point_labels for p in prompts])[None]  # (1, N, P)
        kwargs["input_points"] = _scale_coords(sam, emb, points).to(device)
        kwargs["input_labels"] = torch.from_numpy(labels).to(device)
    if has_box.pop():
        boxes = np.stack([p.box for p in prompts]).reshape(1, -1, 2, 2)
        kwargs["input_boxes"] = _scale_coords(sam, emb, boxes).reshape(1, -1, 4).to(device)
    embeddings = emb.tensors[0] if sam.checkpoint.family == "sam" else list(emb.tensors)
    with torch.inference_mode():
        out = sam.model(image_embeddings=embeddings, multimask_output=multimask, **kwargs)
    return LowRes(logits=out.pred_masks[0], scores=out.iou_scores[0])


def decoder_batch(sam: SamModel, emb: ImageEmbedding) -> int:
    """Prompts per decoder call: ``MAX_DECODER_BATCH`` on a GPU; on a CPU as many as keep the largest
    per-prompt activation (the upscaled mask features: C/8 channels at 4x the embedding's side, i.e.
    2 x C x h x w values) under ``CPU_TENSOR_BYTES`` together (2 for SAM ViT-B at 1024 px)."""
    if not str(sam.device).startswith("cpu"):
        return MAX_DECODER_BATCH
    embedding = emb.tensors[-1]  # SAM: the only tensor; SAM 2: (s0, s1, embedding)
    _, c, h, w = embedding.shape
    per_prompt = 2 * c * h * w * max(4, embedding.element_size())  # the decoder's masks are float32 at least
    return max(1, min(MAX_DECODER_BATCH, CPU_TENSOR_BYTES // per_prompt))


def upsampling_step(device: str, pixels: int) -> int:
    """Masks per upsampling step for masks of ``pixels`` float32 values each (see ``CPU_TENSOR_BYTES``)."""
    budget = CPU_TENSOR_BYTES // 4 if str(device).startswith("cpu") else FULL_SIZE_FLOATS
    return max(1, budget // max(1, pixels))


def decode_all(sam: SamModel, emb: ImageEmbedding, prompts: list[Prompt], multimask: bool) -> LowRes:
    """:func:`decode` in chunks of :func:`decoder_batch` prompts."""
    step = decoder_batch(sam, emb)
    parts = [decode(sam, emb, prompts[i : i + step], multimask) for i in range(0, len(prompts), step)]
    return LowRes(logits=torch.cat([p.logits for p in parts]), scores=torch.cat([p.scores for p in parts]))


def best_of(low: LowRes) -> LowRes:
    """Each object's mask with the highest predicted IoU, as the reference predictor picks (first on ties)."""
    best = low.scores.argmax(dim=1)
    rows = torch.arange(low.scores.shape[0], device=best.device)
    return LowRes(logits=low.logits[rows, best][:, None], scores=low.scores[rows, best][:, None])


def padded_side(sam: SamModel) -> int:
    """The square SAM 1 pads its input to (the processor's ``pad_size``); SAM 2 does not pad."""
    pad = getattr(sam.image_processor, "pad_size", None)
    side = getattr(pad, "height", None) or (pad.get("height") if isinstance(pad, dict) else None)
    return int(side or sam.checkpoint.input_size)


def to_image(sam: SamModel, emb: ImageEmbedding, logits: torch.Tensor) -> np.ndarray:
    """(N, h, w) low-resolution logits -> (N, H, W) bool masks at the image size (threshold 0 on the
    upsampled logits), as ``post_process_masks`` computes them, a few masks at a time to bound memory."""
    h, w = emb.original
    out = np.zeros((logits.shape[0], h, w), dtype=bool)
    side = padded_side(sam)
    step = upsampling_step(sam.device, max(h * w, side * side))
    for start in range(0, logits.shape[0], step):
        x = logits[start : start + step, None].float()
        if sam.checkpoint.family == "sam":
            # Upsample to the padded input, drop the padding, then upsample to the image.
            x = F.interpolate(x, (side, side), mode="bilinear", align_corners=False)
            x = x[..., : emb.resized[0], : emb.resized[1]]
        x = F.interpolate(x, (h, w), mode="bilinear", align_corners=False)
        out[start : start + step] = (x[:, 0] > 0).cpu().numpy()
    return out
