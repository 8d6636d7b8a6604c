"""Loading CLIP/SigLIP and encoding text and images, with the caches that make reruns cheap.

- The model (with its processor) sits in the model cache, one per (ref, device, precision).
- Class embeddings sit in the feature cache per (model, templates, label): a folder classified with
  the same classes runs the text tower once, and a label added to the list encodes only that label.
- Image embeddings sit in the feature cache per (model, image content hash); missing ones are
  encoded together in batches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vfmstudio.plugin_api import ModelError, RunContext, pixel_values_on_device

# model_type -> scoring family. SigLIP 2 scores like SigLIP (sigmoid, attention-pool head); its NaFlex
# checkpoints are model_type "siglip2", its fixed-resolution ones keep the SigLIP layout ("siglip").
FAMILIES = {"clip": "clip", "siglip": "siglip", "siglip2": "siglip"}
SIGLIP_TEXT_LENGTH = (
    64  # SigLIP and SigLIP 2 were trained on texts padded to 64 tokens; shorter changes results
)


@dataclass
class ClipBundle:
    """A loaded model and what the tools need to know about it."""

    model: Any
    processor: Any
    family: str  # "clip" (softmax, CLS token + projection) or "siglip" (sigmoid, attention-pool head)
    ref: str
    device: str
    precision: str
    # SigLIP 2 (Gemma tokenizer) was trained on lower-cased text; its fixed-resolution checkpoints load
    # a GemmaTokenizer that keeps case, so prompts are lower-cased here.
    lowercase: bool = False
    # NaFlex: the processor patchifies at the image's own aspect ratio (pixel_attention_mask, spatial_shapes).
    naflex: bool = False

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    @property
    def patch_size(self) -> int:
        return int(self.model.config.vision_config.patch_size)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().float().exp().item())

    @property
    def logit_bias(self) -> float:
        bias = getattr(self.model, "logit_bias", None)
        return 0.0 if bias is None else float(bias.detach().float().item())


def load_bundle(ref: str, device: str, precision: str) -> ClipBundle:
    from transformers import AutoModel, AutoProcessor

    from vfmstudio.plugin_api import load_pretrained, load_processor, parse_model_ref, resolve_local_path

    local = resolve_local_path(parse_model_ref(ref))
    try:
        model_type = json.loads((local / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"cannot read {local / 'config.json'} of '{ref}': {exc}") from exc
    family = FAMILIES.get(model_type)
    if family is None:
        raise ModelError(f"'{ref}' is a {model_type!r} model; the CLIP plugin runs CLIP and SigLIP models")
    try:
        processor = load_processor(AutoProcessor, ref)
    except ImportError as exc:
        # The hub SigLIP checkpoints ship only a sentencepiece model (spiece.model) for their tokenizer.
        raise ModelError(
            f"the tokenizer of '{ref}' needs a package that is not installed "
            f"({str(exc).split(' but ')[0].strip()}): pip install sentencepiece protobuf"
        ) from exc
    model, info = load_pretrained(AutoModel, ref, device=device, precision=precision)
    gemma = "gemma" in type(processor.tokenizer).__name__.lower()
    return ClipBundle(
        model=model,
        processor=processor,
        family=family,
        ref=ref,
        device=info.device,
        precision=info.precision,
        lowercase=model_type == "siglip2" or gemma,
        naflex=model_type == "siglip2",
    )


def get_bundle(ctx: RunContext) -> ClipBundle:
    """The model for this run from the model cache; records the device and precision in use."""
    if not ctx.model_ref:
        raise ModelError(f"{ctx.tool_id}: no model given")
    ref = ctx.model_ref
    bundle = ctx.model(("clip", ref), lambda: load_bundle(ref, ctx.device, ctx.precision))
    ctx.used_device, ctx.used_precision = bundle.device, bundle.precision
    return bundle


def feature_key(bundle: ClipBundle, *parts: Hashable) -> tuple:
    return ("clip", bundle.ref, bundle.device, bundle.precision, *parts)


# ---------------------------------------------------------------- text


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


@torch.inference_mode()
def encode_texts(
    bundle: ClipBundle,
    texts: Sequence[str],
    batch_size: int = 256,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """L2-normalised text embeddings (N, D) float32, tokenized the way each family was trained.

    ``progress(fraction)`` is called before each batch (it may raise to cancel).
    """
    tokenizer = bundle.processor.tokenizer
    if bundle.lowercase:
        texts = [t.lower() for t in texts]
    if bundle.family == "siglip":
        kwargs: dict[str, Any] = {
            "padding": "max_length",
            "max_length": SIGLIP_TEXT_LENGTH,
            "truncation": True,
        }
    else:
        kwargs = {"padding": True, "truncation": True}
    out = []
    for i in range(0, len(texts), batch_size):
        if progress is not None:
            progress(i / len(texts))
        enc = tokenizer(list(texts[i : i + batch_size]), return_tensors="pt", **kwargs).to(bundle.device)
        emb = bundle.model.get_text_features(**enc).pooler_output
        out.append(_l2(emb.float()).cpu().numpy())
    return np.concatenate(out).astype(np.float32, copy=False)


def class_embeddings(
    bundle: ClipBundle,
    labels: tuple[str, ...],
    templates: tuple[str, ...],
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """One embedding per label: the normalised mean of its normalised template embeddings."""
    from vfmstudio_clip.templates import prompts_for

    emb = encode_texts(bundle, prompts_for(labels, templates), progress=progress)
    emb = emb.reshape(len(labels), len(templates), -1).mean(axis=1)
    return (emb / np.linalg.norm(emb, axis=-1, keepdims=True)).astype(np.float32)


def _lookup(ctx: RunContext, keys: Sequence[Hashable]) -> dict[int, np.ndarray]:
    """The cached values among ``keys`` by position (none when the cache cannot be peeked into)."""
    get = getattr(ctx.features, "get", None)
    found: dict[int, np.ndarray] = {}
    if get is not None:
        for i, key in enumerate(keys):
            value = get(key)
            if value is not None:
                found[i] = value
    return found


def _store(ctx: RunContext, key: Hashable, value: np.ndarray) -> np.ndarray:
    value = np.ascontiguousarray(value)
    value.flags.writeable = False
    return ctx.cached(key, lambda: value)


def cached_class_embeddings(
    ctx: RunContext,
    bundle: ClipBundle,
    labels: tuple[str, ...],
    templates: tuple[str, ...],
    progress: tuple[float, float] = (0.0, 0.1),
) -> np.ndarray:
    """Class embeddings (K, D), cached per (model, templates, label): adding a label to a list encodes
    only that label, and the labels that are missing are encoded together in one pass."""
    keys = [feature_key(bundle, "class", templates, label) for label in labels]
    found = _lookup(ctx, keys)
    missing = [i for i in range(len(labels)) if i not in found]
    if missing:
        lo, hi = progress
        n = len(missing) * len(templates)

        def report(fraction: float) -> None:
            ctx.progress(
                lo + (hi - lo) * fraction,
                f"encoding {len(missing)} labels x {len(templates)} templates ({n} texts)",
            )

        emb = class_embeddings(bundle, tuple(labels[i] for i in missing), templates, progress=report)
        for i, row in zip(missing, emb):
            found[i] = _store(ctx, keys[i], row)
    return np.stack([found[i] for i in range(len(labels))])


# ---------------------------------------------------------------- images


def image_inputs(bundle: ClipBundle, pixels: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
    """The image tower's keyword inputs: ``pixel_values``, plus the patch mask and grid shapes for NaFlex.

    NaFlex runs its own processor (PIL, aspect-preserving resize to at most ``max_num_patches``) on
    every device: its patches are padded to one length, so images of any shape share a batch.
    """
    if not bundle.naflex:
        return {"pixel_values": pixel_values(bundle, pixels)}
    batch = bundle.processor.image_processor(images=list(pixels), return_tensors="pt")
    return {
        "pixel_values": batch["pixel_values"].to(bundle.device, bundle.dtype),
        "pixel_attention_mask": batch["pixel_attention_mask"].to(bundle.device),
        "spatial_shapes": batch["spatial_shapes"].to(bundle.device),
    }


def pixel_values(bundle: ClipBundle, pixels: Sequence[np.ndarray]) -> torch.Tensor:
    """The model's own preprocessing (resize, centre crop, normalise), as the HF pipeline does it.

    On a GPU the same steps run in torch on the device (ADR 0092): the PIL processor costs ~4 ms per
    photo on one CPU core, more than a batched CLIP-B/32 forward per image. On the CPU the processor
    itself runs, so scores equal the HF pipeline's exactly.
    """
    on_device = pixel_values_on_device(bundle.processor.image_processor, pixels, bundle.device, bundle.dtype)
    if on_device is not None:
        return on_device
    batch = bundle.processor.image_processor(images=list(pixels), return_tensors="pt")["pixel_values"]
    return batch.to(bundle.device, bundle.dtype)


@torch.inference_mode()
def encode_images(bundle: ClipBundle, pixels: Sequence[np.ndarray]) -> np.ndarray:
    """L2-normalised global image embeddings (N, D) float32 for one batch."""
    emb = bundle.model.get_image_features(**image_inputs(bundle, pixels)).pooler_output
    return _l2(emb.float()).cpu().numpy().astype(np.float32, copy=False)


def cached_image_embeddings(
    ctx: RunContext,
    bundle: ClipBundle,
    ids: Sequence[str],
    load: Callable[[int], np.ndarray],
    batch_size: int,
    progress: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """Embeddings (N, D) for images ``ids``; ``load(i)`` gives pixels of image i only when it is missing.

    Cached embeddings are reused; the rest go through the model ``batch_size`` at a time, with
    progress (scaled into ``progress``) and a cancel check between batches.
    """
    keys = [feature_key(bundle, "image", image_id) for image_id in ids]
    found = _lookup(ctx, keys)
    missing = [i for i in range(len(ids)) if i not in found]
    lo, hi = progress
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        ctx.progress(
            lo + (hi - lo) * start / max(1, len(missing)),
            f"encoding images {start + 1}-{start + len(chunk)} of {len(missing)}",
        )
        ctx.check_cancelled()  # a cancel requested from the progress callback stops before this batch
        emb = encode_images(bundle, [load(i) for i in chunk])
        for i, e in zip(chunk, emb):
            found[i] = _store(ctx, keys[i], e)
    return np.stack([found[i] for i in range(len(ids))]) if ids else np.zeros((0, 0), np.float32)
