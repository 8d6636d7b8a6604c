"""Dense (per-patch) CLIP/SigLIP embeddings for open-vocabulary segmentation, training-free.

Only the last vision block changes, fed with the previous block's output ``x`` (REFERENCE.md,
CLIP and SigLIP):

- ``patch``: the block as trained; patch tokens then go through post-LayerNorm and the projection.
- ``maskclip``: identity attention, ``out_proj(v)``, keeping the residual and the MLP (MaskCLIP).
- ``sclip``: attention ``softmax(q q^T) + softmax(k k^T)`` with the residual and the MLP (SCLIP).

CLIP projects tokens with ``post_layernorm`` + ``visual_projection`` (transformers applies them only to
the CLS token). SigLIP has no projection: its attention-pooling head maps into the text space, so a
token goes through the head's value path (identity attention again) and the head's MLP.

Large images are resized (short side = ``resolution``) and covered by model-sized windows; the
per-patch embeddings of overlapping windows are averaged, which averages their logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vfmstudio.plugin_api import ParamError, RunContext
from vfmstudio_clip._model import ClipBundle, feature_key

MODES = ("patch", "maskclip", "sclip")
WINDOW_BATCH = 8
MAX_CACHED_INPUTS = 256 << 20  # last-block inputs kept for mode switches up to this size (~400 B/16 windows)


@dataclass(frozen=True)
class WindowPlan:
    """How an image is resized and cut: sizes in pixels of the resized image, all multiples of ``patch``."""

    height: int
    width: int
    window_h: int
    window_w: int
    tops: tuple[int, ...]
    lefts: tuple[int, ...]
    patch: int

    @property
    def grid(self) -> tuple[int, int]:
        return self.height // self.patch, self.width // self.patch

    @property
    def windows(self) -> list[tuple[int, int]]:
        return [(t, left) for t in self.tops for left in self.lefts]


def _starts(size: int, window: int, stride: int) -> tuple[int, ...]:
    starts = list(range(0, max(size - window, 0) + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)  # the last window ends at the border
    return tuple(starts)


def plan_windows(
    height: int,
    width: int,
    *,
    image_size: int,
    patch: int,
    resolution: int | None = None,
    stride: int | None = None,
) -> WindowPlan:
    """Resize so the short side is ``resolution`` (model input size by default), snapped to whole patches."""
    window = (image_size // patch) * patch  # e.g. 378 for so400m (384 px, patch 14)
    resolution = window if resolution is None else int(resolution)
    scale = resolution / min(height, width)
    h = max(patch, int(round(height * scale / patch)) * patch)
    w = max(patch, int(round(width * scale / patch)) * patch)
    if stride is None:
        stride = max(patch, (window // 2) // patch * patch)
    elif stride % patch:
        raise ParamError(f"parameter 'stride': {stride} is not a multiple of the model's patch size {patch}")
    elif stride > window:
        raise ParamError(
            f"parameter 'stride': {stride} is larger than the {window} px window, which would "
            f"leave parts of the image unseen"
        )
    wh, ww = min(window, h), min(window, w)
    return WindowPlan(
        height=h,
        width=w,
        window_h=wh,
        window_w=ww,
        tops=_starts(h, wh, stride),
        lefts=_starts(w, ww, stride),
        patch=patch,
    )


def _normalized_resized(bundle: ClipBundle, pixels: np.ndarray, plan: WindowPlan) -> torch.Tensor:
    """(3, H', W') normalised like the model's processor, without its centre crop."""
    ip = bundle.processor.image_processor
    img = Image.fromarray(np.asarray(pixels)).resize((plan.width, plan.height), Image.Resampling.BICUBIC)
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(ip.image_mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(ip.image_std, dtype=torch.float32)[:, None, None]
    return (arr - mean) / std


# ---------------------------------------------------------------- the model pieces


def _vision(bundle: ClipBundle):
    return bundle.model.vision_model


def last_block_input(bundle: ClipBundle, pixel_values: torch.Tensor) -> torch.Tensor:
    """Tokens entering the last vision block (B, T, D): CLS first for CLIP, patches only for SigLIP."""
    vm = _vision(bundle)
    size = pixel_values.shape[-2:]
    native = (bundle.image_size, bundle.image_size)
    x = vm.embeddings(pixel_values, interpolate_pos_encoding=tuple(size) != native)
    if bundle.family == "clip":
        x = vm.pre_layrnorm(x)
    for layer in vm.encoder.layers[:-1]:
        x = layer(x, None)
    return x


def _heads(attn, t: torch.Tensor) -> torch.Tensor:
    b, n, _ = t.shape
    return t.view(b, n, attn.num_heads, attn.head_dim).transpose(1, 2)


def last_block(layer, x: torch.Tensor, mode: str) -> torch.Tensor:
    """The last encoder block on ``x`` with its attention replaced as ``mode`` says."""
    if mode == "patch":
        return layer(x, None)
    attn = layer.self_attn
    h = layer.layer_norm1(x)
    if mode == "maskclip":
        mixed = attn.out_proj(attn.v_proj(h))
    elif mode == "sclip":
        q, k, v = _heads(attn, attn.q_proj(h)), _heads(attn, attn.k_proj(h)), _heads(attn, attn.v_proj(h))
        weights = torch.softmax(q @ q.transpose(-1, -2) * attn.scale, dim=-1) + torch.softmax(
            k @ k.transpose(-1, -2) * attn.scale, dim=-1
        )
        out = (weights @ v).transpose(1, 2).reshape(x.shape)
        mixed = attn.out_proj(out)
    else:
        raise ParamError(f"parameter 'mode': {mode!r} is not one of {', '.join(MODES)}")
    y = x + mixed
    return y + layer.mlp(layer.layer_norm2(y))


def project_patches(bundle: ClipBundle, y: torch.Tensor) -> torch.Tensor:
    """Patch tokens of the last block's output in the text embedding space, L2-normalised (B, N, P)."""
    vm = _vision(bundle)
    if bundle.family == "clip":
        z = bundle.model.visual_projection(vm.post_layernorm(y[:, 1:]))
    else:
        head = vm.head
        t = vm.post_layernorm(y)
        mha = head.attention
        d = mha.embed_dim
        v = torch.nn.functional.linear(t, mha.in_proj_weight[2 * d :], mha.in_proj_bias[2 * d :])
        r = mha.out_proj(v)  # identity attention in the pooling head: each token pools only itself
        z = r + head.mlp(head.layernorm(r))
    return z / z.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------- per image, cached


def _window_input_batches(ctx: RunContext, bundle: ClipBundle, pixels: np.ndarray, plan: WindowPlan):
    """Last-block inputs (b, T, D) float32, a batch of windows at a time: the expensive part of a run."""
    full = _normalized_resized(bundle, pixels, plan)
    crops = [full[:, t : t + plan.window_h, left : left + plan.window_w] for t, left in plan.windows]
    with torch.inference_mode():
        for start in range(0, len(crops), WINDOW_BATCH):
            ctx.progress(0.1 + 0.7 * start / len(crops), f"encoding window {start + 1} of {len(crops)}")
            batch = torch.stack(crops[start : start + WINDOW_BATCH]).to(bundle.device, bundle.dtype)
            yield last_block_input(bundle, batch).float().cpu().numpy()


def window_inputs_nbytes(bundle: ClipBundle, plan: WindowPlan) -> int:
    tokens = (plan.window_h // plan.patch) * (plan.window_w // plan.patch) + (bundle.family == "clip")
    return len(plan.windows) * tokens * int(bundle.model.config.vision_config.hidden_size) * 4


def dense_embeddings(ctx: RunContext, bundle: ClipBundle, image, mode: str, plan: WindowPlan) -> np.ndarray:
    """Per-patch embeddings (gh, gw, P) over the whole resized image, cached per image, mode and plan.

    The last-block inputs are cached apart from the mode, so switching modes reruns one block; for
    very many windows (above ``MAX_CACHED_INPUTS`` bytes) they are streamed instead of kept.
    """
    plan_key = (plan.height, plan.width, plan.window_h, plan.window_w, plan.tops, plan.lefts)
    inputs_key = feature_key(bundle, "dense-x", image.id, plan_key)

    def inputs():
        if window_inputs_nbytes(bundle, plan) > MAX_CACHED_INPUTS:
            yield from _window_input_batches(ctx, bundle, image.pixels, plan)
            return
        yield ctx.cached(
            inputs_key, lambda: np.concatenate(list(_window_input_batches(ctx, bundle, image.pixels, plan)))
        )

    def compute() -> np.ndarray:
        gh, gw = plan.grid
        wgh, wgw = plan.window_h // plan.patch, plan.window_w // plan.patch
        acc: np.ndarray | None = None
        count = np.zeros((gh, gw, 1), np.float32)
        layer = _vision(bundle).encoder.layers[-1]
        windows = iter(plan.windows)
        for x_all in inputs():
            for start in range(0, len(x_all), WINDOW_BATCH):  # bounds the attention maps of sclip
                ctx.check_cancelled()
                with torch.inference_mode():
                    xt = torch.from_numpy(x_all[start : start + WINDOW_BATCH]).to(bundle.device, bundle.dtype)
                    z = project_patches(bundle, last_block(layer, xt, mode)).float().cpu().numpy()
                if acc is None:
                    acc = np.zeros((gh, gw, z.shape[-1]), np.float32)
                for zi, (top, left) in zip(z, windows):
                    ti, li = top // plan.patch, left // plan.patch
                    acc[ti : ti + wgh, li : li + wgw] += zi.reshape(wgh, wgw, -1)
                    count[ti : ti + wgh, li : li + wgw] += 1.0
        assert acc is not None
        out = acc / count
        out.flags.writeable = False
        return out

    return ctx.cached(feature_key(bundle, "dense", image.id, mode, plan_key), compute)


def patch_logits(dense: np.ndarray, class_emb: np.ndarray) -> np.ndarray:
    """Cosine similarity of each patch with each class: (gh, gw, K)."""
    return dense @ class_emb.T


def softmax_classes(logits: np.ndarray, logit_scale: float, axis: int = -1) -> np.ndarray:
    z = logit_scale * logits
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def patch_probabilities(dense: np.ndarray, class_emb: np.ndarray, logit_scale: float) -> np.ndarray:
    """Softmax over classes per patch: (gh, gw, K)."""
    return softmax_classes(patch_logits(dense, class_emb), logit_scale)


def upsample_argmax(
    logits: np.ndarray, height: int, width: int, logit_scale: float, max_elements: int = 1 << 25
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the best class and its probability, as SCLIP's post-processing does it: the patch logits
    (gh, gw, K) are upsampled bilinearly to the image, then scaled, soft-maxed over the classes and
    arg-maxed (upsampling probabilities instead changes labels near class borders).

    Very large images are upsampled to a bounded size first and the label map is then scaled up with
    nearest neighbours, so memory stays below ``max_elements`` floats.
    """
    k = logits.shape[-1]
    shrink = max(1.0, math.sqrt(k * height * width / max_elements))
    h, w = max(1, int(height / shrink)), max(1, int(width / shrink))
    t = torch.from_numpy(np.ascontiguousarray(logits.transpose(2, 0, 1), dtype=np.float32))[None]
    up = torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0]
    best, index = torch.softmax(up * float(logit_scale), dim=0).max(dim=0)
    best, index = best.numpy(), index.numpy()
    if (h, w) != (height, width):
        rows = (np.arange(height) * h // height)[:, None]
        cols = (np.arange(width) * w // width)[None, :]
        best, index = best[rows, cols], index[rows, cols]
    return index, best
