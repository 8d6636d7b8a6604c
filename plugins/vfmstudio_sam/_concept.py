"""SAM 3 concept prompts (``sam.text``): every instance of a named concept as masks, boxes and scores.

transformers' SAM 3 pipeline needs torchvision in two places only: its image processor module (it
imports ``batched_nms`` for automatic masks, and preprocesses with torchvision) and the geometry
encoder's ``roi_align`` (box prompts). Text prompts need neither, so this module calls ``Sam3Model``
directly, with the reference's steps written here (docs/adr/0183):

- preprocessing: ``Sam3ImageProcessor``'s: a bilinear antialiased resize of the uint8 image to the
  square input, then one fused rescale-and-normalise; the same steps as SAM 2's processor, so the
  same function (``_embedding.sam2_pixel_values``);
- text: the CLIP tokenizer called as ``Sam3Processor`` calls it, padded to 32 tokens;
- post-processing: ``post_process_instance_segmentation``'s math: score = sigmoid(logit) x
  sigmoid(presence), kept above ``threshold``; boxes (x0, y0, x1, y1 in [0, 1]) scaled to the image;
  mask probabilities (sigmoid) bilinearly resized to the image and cut at ``mask_threshold``.

The vision features are computed once per (checkpoint, precision, image) and kept in the feature
cache, so a second concept on the same image runs only the text encoder and the detector heads.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vfmstudio.plugin_api import LoadedImage, ParamError, RunContext, torch_dtype
from vfmstudio_sam import _model
from vfmstudio_sam._decode import upsampling_step
from vfmstudio_sam._embedding import sam2_pixel_values

TEXT_LENGTH = 32  # Sam3Processor pads (and the text encoder has positions for) 32 tokens


@dataclass
class ConceptModel:
    """A loaded SAM 3 detector and its CLIP tokenizer."""

    checkpoint: _model.Checkpoint
    model: Any  # transformers.Sam3Model
    tokenizer: Any  # transformers.CLIPTokenizer
    device: str
    precision: str


@dataclass(frozen=True)
class Instances:
    """Post-processed detections, best score first: ``scores`` (N,), ``boxes`` (N, 4) x0, y0, x1, y1 in
    image pixels, ``masks`` (N, H, W) bool."""

    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray


def _load(ckpt: _model.Checkpoint, device: str, precision: str) -> ConceptModel:
    import transformers

    from vfmstudio.plugin_api import load_pretrained, load_processor

    model, info = load_pretrained(transformers.Sam3Model, ckpt.ref, device=device, precision=precision)
    tokenizer = load_processor(transformers.CLIPTokenizer, ckpt.ref)
    return ConceptModel(ckpt, model, tokenizer, info.device, info.precision)


def require_concept_model(ckpt: _model.Checkpoint) -> None:
    if ckpt.family != "sam3":
        raise ParamError(
            f"{ckpt.title} takes no text prompt; concept prompts need a SAM 3 checkpoint "
            "(facebook/sam3); use points or boxes with sam.segment"
        )


def get(ctx: RunContext) -> ConceptModel:
    """The run's SAM 3 model from the model cache (loaded once per ref, device and precision)."""
    ckpt = _model.checkpoint(ctx)
    require_concept_model(ckpt)
    ctx.progress(None, f"loading {ckpt.ref.display}")
    bundle = ctx.model(("sam3", *ckpt.ref.key), lambda: _load(ckpt, ctx.device, ctx.precision))
    ctx.used_device, ctx.used_precision = bundle.device, bundle.precision
    return bundle


def pixel_values(sam3: ConceptModel, image: LoadedImage) -> torch.Tensor:
    """(1, 3, S, S) float32: the model input of ``Sam3ImageProcessor`` for one image."""
    ckpt = sam3.checkpoint
    return sam2_pixel_values(image.pixels, ckpt.input_size, ckpt.mean, ckpt.std, sam3.device)


def _features_key(sam3: ConceptModel, image: LoadedImage) -> Hashable:
    return ("sam3.features", *sam3.checkpoint.ref.key, sam3.precision, image.id)


def vision_features(ctx: RunContext, sam3: ConceptModel, image: LoadedImage) -> Any:
    """The image's FPN features (``Sam3VisionEncoderOutput``) from the feature cache; one ViT pass on a miss."""

    def compute() -> Any:
        ctx.progress(None, f"encoding {image.name}")
        x = pixel_values(sam3, image).to(sam3.device, torch_dtype(sam3.precision))
        with torch.inference_mode():
            out = sam3.model.get_vision_features(pixel_values=x)
        # Only what the detector reads: the ViT's last hidden state would double the cached bytes.
        return type(out)(  # Sam3VisionEncoderOutput
            fpn_hidden_states=tuple(out.fpn_hidden_states),
            fpn_position_encoding=tuple(out.fpn_position_encoding),
        )

    return ctx.cached(_features_key(sam3, image), compute)


def prepare(ctx: RunContext, images: list[LoadedImage]) -> None:
    """Batch runs and the window's prefetch: the vision features of the images not cached yet."""
    sam3 = get(ctx)
    for i, image in enumerate(images):
        ctx.progress(i / max(1, len(images)), f"features {i + 1}/{len(images)}")
        vision_features(ctx, sam3, image)
    ctx.progress(1.0, "features ready")


def text_inputs(sam3: ConceptModel, text: str) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` (1, 32) as ``Sam3Processor`` makes them; a longer text is
    refused (the text encoder has 32 positions)."""
    n = len(sam3.tokenizer(text)["input_ids"])
    if n > TEXT_LENGTH:
        raise ParamError(
            f"parameter 'text': {n} tokens; SAM 3 reads at most {TEXT_LENGTH} (name the concept in a few words)"
        )
    enc = sam3.tokenizer(text, padding="max_length", max_length=TEXT_LENGTH, return_tensors="pt")
    return {
        "input_ids": enc["input_ids"].to(sam3.device),
        "attention_mask": enc["attention_mask"].to(sam3.device),
    }


def detect(sam3: ConceptModel, features: Any, text: str) -> Any:
    """The detector on cached vision features and one text: ``Sam3ImageSegmentationOutput``."""
    with torch.inference_mode():
        return sam3.model(vision_embeds=features, **text_inputs(sam3, text))


def postprocess(
    pred_logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    pred_masks: torch.Tensor,
    presence_logits: torch.Tensor | None,
    size: tuple[int, int],
    threshold: float,
    mask_threshold: float,
) -> Instances:
    """One image's outputs ((Q,), (Q, 4), (Q, h, w), (1,)) -> the instances scoring above ``threshold``,
    as ``Sam3ImageProcessor.post_process_instance_segmentation`` computes them, best score first."""
    scores = pred_logits.float().sigmoid()
    if presence_logits is not None:
        scores = scores * presence_logits.float().sigmoid()
    keep = scores > threshold
    scores, boxes, logits = scores[keep], pred_boxes[keep].float(), pred_masks[keep]
    h, w = size
    boxes = boxes * torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    scores, boxes, logits = scores[order], boxes[order], logits[order]
    masks = np.zeros((len(logits), h, w), dtype=bool)
    step = upsampling_step(str(logits.device), h * w)
    for start in range(0, len(logits), step):
        # Sigmoid first, then resize: the reference resizes probabilities, not logits.
        probs = logits[start : start + step].float().sigmoid()[None]
        probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)[0]
        masks[start : start + step] = (probs > mask_threshold).cpu().numpy()
    return Instances(
        scores=scores.cpu().numpy().astype(np.float32),
        boxes=boxes.cpu().numpy().astype(np.float32),
        masks=masks,
    )


def segment_concept(
    ctx: RunContext, image: LoadedImage, text: str, threshold: float, mask_threshold: float
) -> Instances:
    """Every instance of ``text`` in ``image`` (vision features from the cache)."""
    sam3 = get(ctx)
    features = vision_features(ctx, sam3, image)
    ctx.progress(None, f"finding '{text}'")
    out = detect(sam3, features, text)
    presence = out.presence_logits[0] if out.presence_logits is not None else None
    return postprocess(
        out.pred_logits[0],
        out.pred_boxes[0],
        out.pred_masks[0],
        presence,
        (image.height, image.width),
        threshold,
        mask_threshold,
    )
