"""Dense features, extracted once per (descriptor, precision, resolution, image) and cached.

Every dino tool starts here: :func:`features_for` returns the :class:`PatchFeatures` of an image
from the feature cache, running the descriptor's forward pass only on a miss. Interactive changes
(threshold, clicked point, layer, image set) are then pure math on these arrays.

Descriptors are chosen by the model reference. A Hugging Face DINOv2 or DINOv3 checkpoint (hub id or
folder) is the normal case: its config gives the patch size and the number of register tokens, and
the model handles positions itself (DINOv2 interpolates its learned table, DINOv3 uses RoPE), so any
grid of whole patches goes in as it is; :data:`EXTRACTORS` maps special references such as ``builtin:raw-patches`` to
other descriptors that go through the same preprocessing, geometry and cache (the geometry tests
use a non-learned descriptor this way).

Preprocessing (see docs/adr/0010): the uint8 image goes to the device once, is resized with one
antialiased bicubic interpolation so its short side equals ``resolution``, centre-cropped to
multiples of the patch size and normalised with the ImageNet statistics. :class:`Geometry` keeps
the exact mapping from the patch grid back to original pixels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vfmstudio.plugin_api import (
    LoadedImage,
    ModelError,
    ParamError,
    RunContext,
    parse_model_ref,
    resolve_device,
    resolve_local_path,
    resolve_precision,
    torch_dtype,
)

DEFAULT_MODEL = "facebook/dinov2-small"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_TYPES = ("dinov2", "dinov2_with_registers", "dinov3_vit")
DINOV2_TYPES = DINO_TYPES  # former name
MAX_TOKENS = 16384  # attention cost grows with the square of this: refuse panoramas at huge resolutions


# ---------------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Geometry:
    """How an image of ``size`` (H, W) became the model input, and how to map back.

    The image is resized to ``resized`` (h', w') and the window ``crop`` (top, left, height, width)
    of the resized image is fed to the model, a ``grid`` (rows, cols) of ``patch``-pixel patches.
    ``extent`` (x0, y0, x1, y1) is that window in original pixel coordinates (exact, fractional).
    """

    size: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int, int, int]
    patch: int
    note: str = ""  # why the geometry differs from the resolution asked for ("" when it does not)

    @property
    def grid(self) -> tuple[int, int]:
        return self.crop[2] // self.patch, self.crop[3] // self.patch

    @property
    def extent(self) -> tuple[float, float, float, float]:
        (h, w), (rh, rw) = self.size, self.resized
        top, left, ch, cw = self.crop
        sy, sx = rh / h, rw / w
        return (left / sx, top / sy, (left + cw) / sx, (top + ch) / sy)

    def patch_centres(self) -> np.ndarray:
        """(rows*cols, 2) x, y of every patch centre in original pixels, row-major."""
        x0, y0, x1, y1 = self.extent
        rows, cols = self.grid
        xs = x0 + (np.arange(cols) + 0.5) * (x1 - x0) / cols
        ys = y0 + (np.arange(rows) + 0.5) * (y1 - y0) / rows
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)

    def patch_index(self, x: float, y: float) -> int:
        """Row-major index of the patch under original pixel (x, y); points off the grid clamp to its edge."""
        x0, y0, x1, y1 = self.extent
        rows, cols = self.grid
        col = min(cols - 1, max(0, math.floor((x - x0) / (x1 - x0) * cols)))
        row = min(rows - 1, max(0, math.floor((y - y0) / (y1 - y0) * rows)))
        return row * cols + col


def _sides(height: int, width: int, short: int, patch: int) -> tuple[int, int]:
    scale = short / min(height, width)
    return max(patch, round(height * scale)), max(patch, round(width * scale))


def _tokens(rh: int, rw: int, patch: int) -> int:
    return (rh // patch) * (rw // patch)


def plan_geometry(height: int, width: int, resolution: int, patch: int) -> Geometry:
    """Resize so the short side is ``resolution``, then centre-crop both sides to multiples of ``patch``.

    An extreme aspect ratio (a 4000x3 strip at 112) would need more than :data:`MAX_TOKENS`
    patches: the short side is then lowered to the largest size that fits, and ``note`` says so.
    """
    if resolution < patch:
        raise ParamError(f"parameter 'resolution': {resolution} is smaller than one patch ({patch} px)")
    short, note = resolution, ""
    rh, rw = _sides(height, width, short, patch)
    if _tokens(rh, rw, patch) > MAX_TOKENS:
        asked = _tokens(rh, rw, patch)
        lo, hi = patch, resolution  # tokens grow with the short side: the largest one that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (
                (mid, hi)
                if _tokens(*_sides(height, width, mid, patch), patch) <= MAX_TOKENS
                else (lo, mid - 1)
            )
        short = lo
        rh, rw = _sides(height, width, short, patch)
        if _tokens(rh, rw, patch) > MAX_TOKENS:  # longer than MAX_TOKENS patches even one patch high
            raise ParamError(
                f"this {width}x{height} image is {_tokens(rh, rw, patch)} patches long even one patch "
                f"high (the limit is {MAX_TOKENS}); crop it first"
            )
        note = (
            f"resolution {resolution} would need {asked} patches (the limit is {MAX_TOKENS}); "
            f"the short side was scaled to {short} px instead"
        )
    ch, cw = rh - rh % patch, rw - rw % patch
    return Geometry(
        size=(height, width),
        resized=(rh, rw),
        crop=((rh - ch) // 2, (rw - cw) // 2, ch, cw),
        patch=patch,
        note=note,
    )


def _resize_float(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    try:
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    except NotImplementedError:  # a backend without the antialiased kernel (older MPS): resize on the CPU
        x = F.interpolate(x.cpu(), size=size, mode="bicubic", antialias=True, align_corners=False).to(
            x.device
        )
    return x.clamp_(0.0, 255.0)  # bicubic overshoots; a uint8 resize would clip the same way


def preprocess(
    pixels: np.ndarray,
    geometry: Geometry,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, h, w) normalised model input: one resize, one crop, one normalisation."""
    # torch.tensor copies the uint8 pixels (cheap): LoadedImage pixels are read-only, from_numpy would warn.
    # The (1, 3, H, W) view of the HWC array is channels-last, the layout the uint8 resize kernel wants.
    x = torch.tensor(pixels, device=device).permute(2, 0, 1).unsqueeze(0)
    if geometry.resized != geometry.size:
        if x.device.type == "cpu":
            # torch's uint8 antialiased kernel: ~10x faster than in float on a CPU, and it rounds to
            # whole grey levels like the PIL resize of the reference pipelines.
            x = F.interpolate(x, size=geometry.resized, mode="bicubic", antialias=True, align_corners=False)
        else:
            x = _resize_float(x.float(), geometry.resized)
    top, left, ch, cw = geometry.crop
    x = x[:, :, top : top + ch, left : left + cw].float()
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1) * 255.0
    return ((x - mean) / std).to(dtype).contiguous()


# ---------------------------------------------------------------------------------------------- features


@dataclass(frozen=True, eq=False)
class PatchFeatures:
    """What one forward pass leaves in the feature cache (numpy, CPU, float32).

    ``tokens``: (rows*cols, C) last-layer patch tokens after the final LayerNorm (registers dropped);
    ``cls``: (C,) the normed CLS token; ``layer_norms``: (L+1, rows, cols) L2 norms of the patch
    tokens of every hidden state (embeddings first, before the final LayerNorm); ``special_norms``:
    (L+1, 1 + registers) the same for the CLS and register tokens, or None for a descriptor without them.
    """

    tokens: np.ndarray
    cls: np.ndarray
    layer_norms: np.ndarray
    layer_names: tuple[str, ...]
    geometry: Geometry
    key: Hashable = None
    special_norms: np.ndarray | None = None  # the feature-cache key, for values derived from these features

    def derived(self, ctx: RunContext, name: str, compute: Callable[[], Any]) -> Any:
        """A value computed from these features alone, cached next to them."""
        return ctx.cached((name, self.key), compute)

    @property
    def grid(self) -> tuple[int, int]:
        return self.geometry.grid

    @property
    def extent(self) -> tuple[float, float, float, float]:
        return self.geometry.extent


@dataclass(frozen=True)
class Encoded:
    """A descriptor's raw output for a batch of B images: torch tensors on any device."""

    tokens: torch.Tensor  # (B, N, C)
    cls: torch.Tensor  # (B, C)
    layer_norms: torch.Tensor  # (B, L, N)
    layer_names: tuple[str, ...]
    special_norms: torch.Tensor | None = None  # (B, L, 1 + registers): CLS then register tokens


class Extractor:
    """A dense descriptor: ``encode`` maps a normalised (B, 3, h, w) input to :class:`Encoded`."""

    patch: int = 14
    cache_key: Hashable = ()
    device: str = "cpu"
    precision: str = "fp32"

    @property
    def dtype(self) -> torch.dtype:
        return torch_dtype(self.precision)

    def encode(self, pixel_values: torch.Tensor) -> Encoded:  # pragma: no cover - interface
        raise NotImplementedError


class DinoExtractor(Extractor):
    """A transformers ``Dinov2Model`` / ``Dinov2WithRegistersModel`` / ``DINOv3ViTModel``, loaded lazily
    through the model cache."""

    def __init__(self, ctx: RunContext, ref: str):
        self._ctx = ctx
        self._ref = parse_model_ref(ref)
        self.device = resolve_device(ctx.device)
        self.precision = resolve_precision(ctx.precision, self.device)
        self._model: Any = None
        self.patch = self._patch_size()
        # Features depend on the weights and the precision, not on which device computed them.
        self.cache_key = ("hf", *self._ref.key, self.precision)

    def _patch_size(self) -> int:
        """Read from config.json without loading the weights, so a feature-cache hit loads no model."""
        config = self._ctx.model(("dinov2.config", *self._ref.key), self._read_config)
        patch = config.get("patch_size", 14)
        if isinstance(patch, list | tuple):  # (height, width): the geometry needs square patches
            if len(patch) != 2 or patch[0] != patch[1]:
                raise ModelError(
                    f"model '{self._ref.display}' has patches of {patch} pixels; only square "
                    "patches are supported"
                )
            patch = patch[0]
        if isinstance(patch, bool) or not isinstance(patch, int) or not 1 <= patch <= 256:
            raise ModelError(
                f"model '{self._ref.display}' has an invalid patch_size {patch!r} in config.json"
            )
        return patch

    def _read_config(self) -> dict:
        path = resolve_local_path(self._ref) / "config.json"
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read '{path}': {exc}") from exc
        model_type = config.get("model_type")
        if model_type not in DINO_TYPES:
            raise ModelError(
                f"model '{self._ref.display}' is a '{model_type}' model, not DINOv2 or DINOv3 "
                f"(expected model_type {', '.join(DINO_TYPES)})"
            )
        return config

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._ctx.model(("dinov2", *self._ref.key), self._load)
        return self._model

    def _load(self) -> Any:
        import transformers

        from vfmstudio.plugin_api import load_pretrained

        model, _info = load_pretrained(
            transformers.AutoModel, self._ref, device=self.device, precision=self.precision
        )
        return model

    def encode(self, pixel_values: torch.Tensor) -> Encoded:
        model = self.model
        skip = 1 + int(
            getattr(model.config, "num_register_tokens", 0) or 0
        )  # [CLS, registers..., patches...]
        out = model(pixel_values=pixel_values, output_hidden_states=True)
        last = out.last_hidden_state
        every = torch.stack([torch.linalg.vector_norm(h.float(), dim=-1) for h in out.hidden_states], dim=1)
        names = ("embeddings", *(f"block {i}" for i in range(1, every.shape[1])))
        return Encoded(
            tokens=last[:, skip:],
            cls=last[:, 0],
            layer_norms=every[:, :, skip:],
            layer_names=names,
            special_norms=every[:, :, :skip],
        )


class RawPatchExtractor(Extractor):
    """Non-learned baseline: each patch's pixels (normalised input), centred and L2-normalised."""

    cache_key = ("builtin", "raw-patches")

    def __init__(self, ctx: RunContext, ref: str):
        self.device = "cpu"

    def encode(self, pixel_values: torch.Tensor) -> Encoded:
        p = self.patch
        x = pixel_values.float()
        b, c, h, w = x.shape
        tokens = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        tokens = F.normalize(tokens - tokens.mean(dim=2, keepdim=True), dim=2)
        norms = torch.linalg.vector_norm(tokens, dim=2).unsqueeze(1)
        return Encoded(tokens=tokens, cls=tokens.mean(1), layer_norms=norms, layer_names=("pixels",))


ExtractorFactory = Callable[[RunContext, str], Extractor]
#: Model references that name a built-in descriptor instead of a checkpoint. Tests add their own.
EXTRACTORS: dict[str, ExtractorFactory] = {"builtin:raw-patches": RawPatchExtractor}


def extractor_for(ctx: RunContext) -> Extractor:
    ref = ctx.model_ref or DEFAULT_MODEL
    factory = EXTRACTORS.get(ref)
    extractor = factory(ctx, ref) if factory is not None else DinoExtractor(ctx, ref)
    ctx.used_device, ctx.used_precision = extractor.device, extractor.precision
    return extractor


def feature_key(extractor: Extractor, resolution: int, image: LoadedImage) -> Hashable:
    return ("dinov2.features", extractor.cache_key, resolution, image.id)


def features_for(ctx: RunContext, extractor: Extractor, image: LoadedImage, resolution: int) -> PatchFeatures:
    """The image's features from the feature cache; one forward pass on a miss."""
    geometry = plan_geometry(image.height, image.width, resolution, extractor.patch)
    if geometry.note:
        ctx.note(f"{image.name}: {geometry.note}")  # in the prediction too, not only the progress line
    key = feature_key(extractor, resolution, image)
    return ctx.cached(key, lambda: extract(extractor, [(image.pixels, geometry, key)])[0])


def extract(extractor: Extractor, items: list[tuple[np.ndarray, Geometry, Hashable]]) -> list[PatchFeatures]:
    """One forward pass over images ``(pixels, geometry, cache key)`` whose inputs have the same size."""
    with torch.inference_mode():
        x = torch.cat(
            [preprocess(pixels, geometry, extractor.device, extractor.dtype) for pixels, geometry, _ in items]
        )
        enc = extractor.encode(x)
        rows, cols = items[0][1].grid
        if enc.tokens.shape[:2] != (len(items), rows * cols):
            raise ModelError(
                f"the model returned {tuple(enc.tokens.shape[:2])} (images, patch tokens) for "
                f"{len(items)} images of {rows}x{cols} patches"
            )
        tokens, cls, norms = _numpy(enc.tokens), _numpy(enc.cls), _numpy(enc.layer_norms)
        special = _numpy(enc.special_norms) if enc.special_norms is not None else None
        return [
            PatchFeatures(
                tokens=tokens[i],
                cls=cls[i],
                layer_norms=norms[i].reshape(-1, rows, cols),
                layer_names=enc.layer_names,
                geometry=geometry,
                key=key,
                special_norms=special[i] if special is not None else None,
            )
            for i, (_, geometry, key) in enumerate(items)
        ]


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


def features_of_all(ctx: RunContext, images: list[LoadedImage], resolution: int) -> list[PatchFeatures]:
    """Features for every image, with progress and cancel between images."""
    extractor = extractor_for(ctx)
    out = []
    for i, image in enumerate(images):
        ctx.progress(i / len(images), f"features {i + 1}/{len(images)}")
        out.append(features_for(ctx, extractor, image, resolution))
    ctx.progress(1.0, "features ready")
    return out


MAX_BATCH_TOKENS = 16384  # images per forward pass in prepare(): 16 at 448 x 448, bounded activations
# A GPU needs bigger batches to stay busy (ViT-S at batch 16 leaves an H100 idle between kernels);
# 32 images at 448 with every hidden state of ViT-L in bf16 is ~1.7 GB of activations.
MAX_BATCH_TOKENS_GPU = 32768


def prepare(ctx: RunContext, images: list[LoadedImage], params: dict) -> None:
    """Batch engines call this before the per-image runs: images whose model inputs have the same
    size go through the model together, so the per-image runs that follow only read the cache."""
    extractor = extractor_for(ctx)
    resolution = params["resolution"]
    cache = ctx.features
    groups: dict[tuple[int, int], list[tuple[np.ndarray, Geometry, Hashable]]] = {}
    for image in images:
        key = feature_key(extractor, resolution, image)
        if hasattr(cache, "__contains__") and key in cache:
            continue
        geometry = plan_geometry(image.height, image.width, resolution, extractor.patch)
        groups.setdefault(geometry.grid, []).append((image.pixels, geometry, key))
    total, done = sum(len(g) for g in groups.values()), 0
    budget = MAX_BATCH_TOKENS_GPU if extractor.device.startswith("cuda") else MAX_BATCH_TOKENS
    for (rows, cols), group in groups.items():
        step = max(1, budget // (rows * cols))
        for start in range(0, len(group), step):
            ctx.progress(
                done / max(1, total), f"features {done + 1}-{done + len(group[start : start + step])}/{total}"
            )
            for feats in extract(extractor, group[start : start + step]):
                ctx.cached(feats.key, lambda f=feats: f)
            done += len(group[start : start + step])
    ctx.progress(1.0, "features ready")


Dinov2Extractor = DinoExtractor  # former name
