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

from vfmstudio.ml.errors import ModelError
from vfmstudio.plugin_api import RunContext

FAMILIES = {"clip": "clip", "siglip": "siglip"}
SIGLIP_TEXT_LENGTH = 64  # SigLIP was trained on texts padded to 64 tokens; shorter padding changes results


@dataclass
class ClipBundle:
    """A loaded model and what the tools need to know about it."""

    model: Any
    processor: Any
    family: str  # "clip" (softmax, CLS token + projection) or "siglip" (sigmoid, attention-pool head)
    ref: str
    device: str
    precision: str

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

    from vfmstudio.ml._loading import load_pretrained, load_processor
    from vfmstudio.ml.hub import resolve_local_path
    from vfmstudio.ml.refs import parse_model_ref

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
        raise ModelError(f"the tokenizer of '{ref}' needs a package that is not installed "
                         f"({str(exc).split(' but ')[0].strip()}): pip install sentencepiece protobuf") from exc
    model, info = load_pretrained(AutoModel, ref, device=device, precision=precision)
    return ClipBundle(model=model, processor=processor, family=family, ref=ref, device=info.device,
                      precision=info.precision)


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
def encode_texts(bundle: ClipBundle, texts: Sequence[str], batch_size: int = 256,
                 progress: Callable[[float], None] | None = None) -> np.ndarray:
    """L2-normalised text embeddings (N, D) float32, tokenized the way each family was trained.

    ``progress(fraction)`` is called before each batch (it may raise to cancel).
    """
    tokenizer = bundle.processor.tokenizer
    if bundle.family == "siglip":
        kwargs: dict[str, Any] = {"padding": "max_length", "max_length": SIGLIP_TEXT_LENGTH, "truncation": True}
    else:
        kwargs = {"padding": True, "truncation": True}
    out = []
    for i in range(0, len(texts), batch_size):
        if progress is not None:
            progress(i / len(texts))
        enc = tokenizer(list(texts[i:i + batch_size]), return_tensors="pt", **kwargs).to(bundle.device)
        emb = bundle.model.get_text_features(**enc).pooler_output
        out.append(_l2(emb.float()).cpu().numpy())
    return np.concatenate(out).astype(np.float32, copy=False)


def class_embeddings(bundle: ClipBundle, labels: tuple[str, ...], templates: tuple[str, ...],
                     progress: Callable[[float], None] | None = None) -> np.ndarray:
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


def cached_class_embeddings(ctx: RunContext, bundle: ClipBundle, labels: tuple[str, ...],
                            templates: tuple[str, ...], progress: tuple[float, float] = (0.0, 0.1)) -> np.ndarray:
    """Class embeddings (K, D), cached per (model, templates, label): adding a label to a list encodes
    only that label, and the labels that are missing are encoded together in one pass."""
    keys = [feature_key(bundle, "class", templates, label) for label in labels]
    found = _lookup(ctx, keys)
    missing = [i for i in range(len(labels)) if i not in found]
    if missing:
        lo, hi = progress
        n = len(missing) * len(templates)

        def report(fraction: float) -> None:
            ctx.progress(lo + (hi - lo) * fraction,
                         f"encoding {len(missing)} labels x {len(templates)} templates ({n} texts)")

        emb = class_embeddings(bundle, tuple(labels[i] for i in missing), templates, progress=report)
        for i, row in zip(missing, emb):
            found[i] = _store(ctx, keys[i], row)
    return np.stack([found[i] for i in range(len(labels))])


# ---------------------------------------------------------------- images


def pixel_values(bundle: ClipBundle, pixels: Sequence[np.ndarray]) -> torch.Tensor:
    """The model's own preprocessing (resize, centre crop, normalise), as the HF pipeline does it.

    On a GPU the same steps run in torch on the device (see :func:`device_preprocess`): the PIL
    processor costs ~4 ms per photo on one CPU core, more than a batched CLIP-B/32 forward per image.
    On the CPU the processor itself runs, so scores equal the HF pipeline's exactly.
    """
    if bundle.device != "cpu":
        spec = DevicePreprocess.of(bundle.processor.image_processor)
        if spec is not None:
            try:
                return torch.cat([spec(px, bundle.device) for px in pixels]).to(bundle.dtype)
            except ValueError:  # an image smaller than the crop: the processor pads it
                pass
    batch = bundle.processor.image_processor(images=list(pixels), return_tensors="pt")["pixel_values"]
    return batch.to(bundle.device, bundle.dtype)


@dataclass(frozen=True)
class DevicePreprocess:
    """The CLIP/SigLIP image processor's steps in torch: bicubic antialiased resize (short side, or to a
    fixed size), centre crop, rescale, normalise. Equal to the PIL processor up to the rounding of the
    resize (PIL works in fixed point): at most two grey levels, a fifth of a level on average."""

    shortest_edge: int | None
    size: tuple[int, int] | None  # (height, width) when the processor resizes to a fixed size
    crop: tuple[int, int] | None
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, ip: Any) -> DevicePreprocess | None:
        """The steps of ``ip`` when they are the ones above; None for anything else (the processor runs)."""
        size = getattr(ip, "size", None)
        if (not getattr(ip, "do_resize", False) or int(getattr(ip, "resample", -1)) != 3 or size is None
                or not getattr(ip, "do_rescale", False) or not getattr(ip, "do_normalize", False)
                or getattr(ip, "do_pad", None) or getattr(size, "longest_edge", None)):
            return None
        crop_size = getattr(ip, "crop_size", None) if getattr(ip, "do_center_crop", False) else None
        shortest = getattr(size, "shortest_edge", None)
        fixed = (size.height, size.width) if getattr(size, "height", None) and getattr(size, "width", None) else None
        if not shortest and not fixed:
            return None
        crop = (crop_size.height, crop_size.width) if crop_size is not None else None
        if crop_size is not None and not (crop[0] and crop[1]):
            return None
        mean, std = tuple(ip.image_mean), tuple(ip.image_std)
        if len(mean) != 3 or len(std) != 3:
            return None
        return cls(shortest_edge=shortest, size=None if shortest else fixed, crop=crop, scale=float(ip.rescale_factor),
                   mean=mean, std=std)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        # transformers' get_resize_output_image_size: the long side is truncated, not rounded.
        s = int(self.shortest_edge or 0)
        return (int(s * height / width), s) if width <= height else (s, int(s * width / height))

    def __call__(self, pixels: np.ndarray, device: str | torch.device = "cpu",
                 uint8_resize: bool | None = None) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, h, w) float32 normalised, on ``device``.

        ``uint8_resize`` (default: on a CPU) uses torch's uint8 kernel, which rounds like PIL; GPUs
        resize in float and round."""
        x = torch.tensor(pixels, device=device).permute(2, 0, 1).unsqueeze(0)
        h, w = self.output_size(pixels.shape[0], pixels.shape[1])
        if uint8_resize if uint8_resize is not None else x.device.type == "cpu":
            x = torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
            x = x.float()
        else:
            x = torch.nn.functional.interpolate(x.float(), size=(h, w), mode="bicubic", antialias=True,
                                                align_corners=False).clamp_(0, 255).round_()
        if self.crop is not None:
            ch, cw = self.crop
            if h < ch or w < cw:  # the processor pads with zeros here; leave such images to it
                raise ValueError(f"image resized to {w}x{h} is smaller than the {cw}x{ch} crop")
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[:, :, top:top + ch, left:left + cw]
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return ((x * self.scale - mean) / std).contiguous()


@torch.inference_mode()
def encode_images(bundle: ClipBundle, pixels: Sequence[np.ndarray]) -> np.ndarray:
    """L2-normalised global image embeddings (N, D) float32 for one batch."""
    emb = bundle.model.get_image_features(pixel_values=pixel_values(bundle, pixels)).pooler_output
    return _l2(emb.float()).cpu().numpy().astype(np.float32, copy=False)


def cached_image_embeddings(ctx: RunContext, bundle: ClipBundle, ids: Sequence[str],
                            load: Callable[[int], np.ndarray], batch_size: int,
                            progress: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Embeddings (N, D) for images ``ids``; ``load(i)`` gives pixels of image i only when it is missing.

    Cached embeddings are reused; the rest go through the model ``batch_size`` at a time, with
    progress (scaled into ``progress``) and a cancel check between batches.
    """
    keys = [feature_key(bundle, "image", image_id) for image_id in ids]
    found = _lookup(ctx, keys)
    missing = [i for i in range(len(ids)) if i not in found]
    lo, hi = progress
    for start in range(0, len(missing), batch_size):
        chunk = missing[start:start + batch_size]
        ctx.progress(lo + (hi - lo) * start / max(1, len(missing)),
                     f"encoding images {start + 1}-{start + len(chunk)} of {len(missing)}")
        ctx.check_cancelled()  # a cancel requested from the progress callback stops before this batch
        emb = encode_images(bundle, [load(i) for i in chunk])
        for i, e in zip(chunk, emb):
            found[i] = _store(ctx, keys[i], e)
    return np.stack([found[i] for i in range(len(ids))]) if ids else np.zeros((0, 0), np.float32)
