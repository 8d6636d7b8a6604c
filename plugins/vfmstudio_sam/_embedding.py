"""Image embeddings, computed once per (checkpoint, precision, image) and kept in the feature cache.

This is the only place the image encoder runs: every click afterwards is prompt encoder + mask decoder
on the cached embedding (docs/adr/0140).

Preprocessing is the reference's:

- SAM 1: the checkpoint's own ``SamImageProcessor`` (its PIL backend needs no torchvision): resize so
  the longest side is ``input_size`` (bilinear), normalise, pad bottom/right to a square.
- SAM 2.1: ``Sam2ImageProcessorFast`` needs torchvision, so its steps are done here in torch exactly as
  it does them: a bilinear antialiased resize of the uint8 image to ``input_size`` squared (torchvision
  calls ``F.interpolate`` on the uint8 tensor on a CPU, and rounds a float resize elsewhere), then one
  fused rescale-and-normalise with mean and std scaled by 255.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vfmstudio.plugin_api import LoadedImage, RunContext, torch_dtype
from vfmstudio_sam._model import SamModel

BATCH_CPU, BATCH_GPU = 1, 8  # images per encoder pass in prepare(): a CPU gains nothing from batching


@dataclass(frozen=True, eq=False)
class ImageEmbedding:
    """The encoder's output for one image, on the model's device.

    ``tensors``: SAM: ``(embedding,)``; SAM 2: ``(s0, s1, embedding)`` (the high-resolution features the
    decoder upsamples with). ``original``: (H, W) of the image; ``resized``: (h, w) of the image inside
    the model input (SAM 1 pads it to a square; masks are cropped back to it).
    """

    tensors: tuple[torch.Tensor, ...]
    original: tuple[int, int]
    resized: tuple[int, int]


def embedding_key(sam: SamModel, image: LoadedImage) -> Hashable:
    return ("sam.embedding", *sam.checkpoint.ref.key, sam.precision, image.id)


def sam2_pixel_values(
    pixels: np.ndarray, size: int, mean, std, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, size, size) float32, as ``Sam2ImageProcessorFast`` computes it."""
    x = torch.tensor(pixels, device=device).permute(2, 0, 1).unsqueeze(0)
    if x.device.type == "cpu":
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    else:  # torchvision resizes in float there, then rounds back to uint8
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    m = torch.tensor(mean, device=x.device) * (1.0 / (1 / 255))
    s = torch.tensor(std, device=x.device) * (1.0 / (1 / 255))
    return (x.float() - m.view(1, 3, 1, 1)) / s.view(1, 3, 1, 1)


def pixel_values(sam: SamModel, image: LoadedImage) -> tuple[torch.Tensor, tuple[int, int]]:
    """The model input of one image and the size of the image inside it."""
    ckpt = sam.checkpoint
    if ckpt.family == "sam":
        enc = sam.image_processor(images=image.pixels, return_tensors="pt")
        resized = tuple(int(v) for v in enc["reshaped_input_sizes"][0])
        return enc["pixel_values"], resized  # type: ignore[return-value]
    x = sam2_pixel_values(image.pixels, ckpt.input_size, ckpt.mean, ckpt.std, sam.device)
    return x, (ckpt.input_size, ckpt.input_size)


def encode(sam: SamModel, batch: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """The image encoder on a (B, 3, S, S) batch -> per image, the tensors the decoder takes."""
    x = batch.to(sam.device, torch_dtype(sam.precision))
    with torch.inference_mode():
        out = sam.model.get_image_embeddings(x)
    levels = (out,) if isinstance(out, torch.Tensor) else tuple(out)
    if x.shape[0] == 1:
        return [levels]
    # Copies, so that each cached embedding holds (and is accounted for) its own memory only.
    return [tuple(t[i : i + 1].clone() for t in levels) for i in range(x.shape[0])]


def embedding_for(ctx: RunContext, sam: SamModel, image: LoadedImage) -> ImageEmbedding:
    """The image's embedding from the feature cache; one encoder pass on a miss."""

    def compute() -> ImageEmbedding:
        ctx.progress(None, f"encoding {image.name}")
        x, resized = pixel_values(sam, image)
        (tensors,) = encode(sam, x)
        return ImageEmbedding(tensors=tensors, original=(image.height, image.width), resized=resized)

    return ctx.cached(embedding_key(sam, image), compute)


def prepare(ctx: RunContext, images: list[LoadedImage], params: dict) -> None:
    """Batch engines and the window's prefetch call this: encode the images not cached yet, in batches."""
    from vfmstudio_sam import _model

    ckpt = _model.checkpoint(ctx)
    if ckpt.family == "sam3":
        from vfmstudio_sam import _concept

        _concept.prepare(ctx, images)
        return
    sam = _model.get(ctx)
    cache = ctx.features
    todo = [im for im in images if not (hasattr(cache, "__contains__") and embedding_key(sam, im) in cache)]
    step = BATCH_GPU if sam.device.startswith("cuda") else BATCH_CPU
    for start in range(0, len(todo), step):
        group = todo[start : start + step]
        ctx.progress(start / len(todo), f"embeddings {start + 1}-{start + len(group)}/{len(todo)}")
        inputs = [pixel_values(sam, im) for im in group]
        for im, (_, resized), tensors in zip(group, inputs, encode(sam, torch.cat([x for x, _ in inputs]))):
            emb = ImageEmbedding(tensors=tensors, original=(im.height, im.width), resized=resized)
            ctx.cached(embedding_key(sam, im), lambda e=emb: e)
    ctx.progress(1.0, "embeddings ready")
