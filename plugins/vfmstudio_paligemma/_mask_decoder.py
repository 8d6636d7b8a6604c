"""PaliGemma's segmentation-token decoder: 16 ``<segNNN>`` codes -> a 64x64 mask logit map.

A torch implementation of the published VQ-VAE decoder (big_vision, ``vae-oid.npz``), written from its
description: codebook of 128 entries; the 16 codes' embeddings form a 4x4 grid (row-major); 1x1 conv to
128 + ReLU; two residual blocks (3x3 conv, ReLU, 3x3 conv, ReLU, 1x1 conv, plus skip); four transposed
convolutions (kernel 4, stride 2, padding 1; 128->128->64->32->16 channels) each followed by ReLU
(4->8->16->32->64 px); a 1x1 conv to one channel. The layer indices of ``nn.Sequential`` below match the
state-dict keys of the published file, so it loads as it is.

The published file also holds the VQ-VAE's encoder (big_vision's training-side preprocessing encodes masks
with it); only the ``decoder.*`` weights and the codebook are loaded, strictly, and the rest is ignored.

The 64x64 map is pasted as big_vision's segmentation evaluator does (the code behind PaliGemma's published
numbers): the box is the loc tokens / 1023 times the image size, truncated to integers; an empty box gives
no mask; the map is resized to the box with PIL's bilinear filter and thresholded at 0 (ADR 0031).
"""

from __future__ import annotations

import logging
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vfmstudio.plugin_api import ModelError

log = logging.getLogger(__name__)

VAE_ENV = "VFMSTUDIO_PALIGEMMA_VAE"
VAE_SPACE = "big-vision/paligemma-hf"
# The demo space has also been published as google/paligemma-hf: tried second, for a cached copy or a move.
VAE_SPACES = (VAE_SPACE, "google/paligemma-hf")
VAE_FILE = "vae-oid.npz"
CODEBOOK_KEY = "_vq_vae._embedding"
DECODER_PREFIX = "decoder."
GRID = 4
MASK_SIZE = 64
# big_vision's evaluator maps loc bins to [0, 1] by dividing by 1023 (the training side rounds bbox * 1023).
EVALUATOR_LOC_SCALE = 1023
PASTE_MODES = ("evaluator", "cover")


class _Residual(nn.Module):
    def __init__(self, channels: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class MaskDecoder(nn.Module):
    """Codes (N, 16) int in [0, 128) -> mask logits (N, 64, 64), batched over objects."""

    def __init__(self, embed_dim: int, codebook_size: int = 128):
        super().__init__()
        self.codebook = nn.Embedding(codebook_size, embed_dim)
        self.decoder = nn.Sequential(
            nn.Conv2d(embed_dim, 128, 1), nn.ReLU(),
            _Residual(128), _Residual(128),
            nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 1, 1),
        )  # fmt: skip

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.ndim != 2 or codes.shape[1] != GRID * GRID:
            raise ValueError(f"mask codes: expected shape (N, {GRID * GRID}), got {tuple(codes.shape)}")
        n = codes.shape[0]
        emb = self.codebook(codes.long())  # (N, 16, D)
        grid = emb.reshape(n, GRID, GRID, -1).permute(0, 3, 1, 2)  # row-major 4x4 -> NCHW
        return self.decoder(grid)[:, 0]


def load_decoder(path: str | os.PathLike[str], device: str = "cpu") -> MaskDecoder:
    """A MaskDecoder with the weights of ``vae-oid.npz`` at ``path``; one-line ModelError when unusable."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            state = {k: np.asarray(npz[k]) for k in npz.files}
    except FileNotFoundError:
        raise ModelError(f"mask decoder weights '{path}' do not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read mask decoder weights '{path}': {exc}") from None
    if CODEBOOK_KEY not in state or state[CODEBOOK_KEY].ndim != 2:
        raise ModelError(f"'{path}' is not a PaliGemma mask decoder: no 2-D '{CODEBOOK_KEY}' codebook")
    codebook = state.pop(CODEBOOK_KEY)
    ignored = sorted(k for k in state if not k.startswith(DECODER_PREFIX))
    if ignored:
        log.debug(
            "mask decoder weights '%s': ignored %d keys that the decoder does not use: %s",
            path,
            len(ignored),
            ", ".join(ignored),
        )
    decoder = MaskDecoder(embed_dim=int(codebook.shape[1]), codebook_size=int(codebook.shape[0]))
    tensors = {"codebook.weight": torch.from_numpy(codebook.astype(np.float32))}
    tensors.update(
        {k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items() if k.startswith(DECODER_PREFIX)}
    )
    try:
        decoder.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(" ".join(first[:3]).split())
        raise ModelError(
            f"'{path}' does not match the PaliGemma mask decoder layout: {detail[:300]}"
        ) from None
    return decoder.to(device).eval()


def resolve_vae_path(configured: str | None = None) -> Path:
    """Where ``vae-oid.npz`` is: the parameter, then ``$VFMSTUDIO_PALIGEMMA_VAE``, then the hub cache
    (downloaded once from the Hugging Face space ``big-vision/paligemma-hf``)."""
    for candidate, source in ((configured, "parameter 'vae_path'"), (os.environ.get(VAE_ENV), f"${VAE_ENV}")):
        if candidate and str(candidate).strip():
            path = Path(str(candidate).strip()).expanduser()
            if not path.is_file():
                raise ModelError(f"mask decoder weights '{path}' (from {source}) do not exist")
            return path
    return _download_vae()


def _download_vae() -> Path:
    from huggingface_hub import try_to_load_from_cache

    from vfmstudio.plugin_api import download_file, hub_cache_dir, is_offline

    cache = hub_cache_dir()
    offline = is_offline()
    first_error: Exception | None = None
    for space in VAE_SPACES:
        cached = try_to_load_from_cache(space, VAE_FILE, cache_dir=str(cache), repo_type="space")
        if isinstance(cached, str):
            return Path(cached)
    for space in () if offline else VAE_SPACES:
        try:  # the model download engine: deadlines on every read, resumable (ADR 0130)
            return download_file(space, VAE_FILE, repo_type="space", cache_dir=cache)
        except Exception as exc:  # noqa: BLE001 - every hub failure becomes the same actionable line
            first_error = first_error or exc
    why = (
        "offline: HF_HUB_OFFLINE=1"
        if offline
        else (str(first_error) if isinstance(first_error, ModelError) else type(first_error).__name__)
    )
    raise ModelError(
        f"the PaliGemma mask decoder weights ({VAE_FILE}) are not in the cache ({cache}) and cannot be "
        f"downloaded ({why}); download {VAE_FILE} from https://huggingface.co/spaces/{VAE_SPACE} and pass "
        f"it with --param vae_path=FILE or set {VAE_ENV}"
    ) from first_error


def decode_logits(decoder: MaskDecoder, codes: np.ndarray | list) -> np.ndarray:
    """(N, 16) codes -> (N, 64, 64) float32 logits, one batched forward for all objects."""
    arr = np.asarray(codes, dtype=np.int64).reshape(-1, GRID * GRID)
    if arr.shape[0] == 0:
        return np.zeros((0, MASK_SIZE, MASK_SIZE), dtype=np.float32)
    device = next(decoder.parameters()).device
    with torch.inference_mode():
        out = decoder(torch.from_numpy(arr).to(device))
    return out.float().cpu().numpy()


def pixel_box(box_xyxy, width: int, height: int) -> tuple[int, int, int, int]:
    """The ``cover`` paste: integer pixel box (x0, y0, x1, y1) covering the float box (floor of the start,
    ceil of the end), exclusive ends, clamped to the image, at least 1x1."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    ix0 = min(max(math.floor(x0), 0), width - 1)
    iy0 = min(max(math.floor(y0), 0), height - 1)
    ix1 = min(max(math.ceil(x1), ix0 + 1), width)
    iy1 = min(max(math.ceil(y1), iy0 + 1), height)
    return ix0, iy0, ix1, iy1


def evaluator_box(locs, width: int, height: int) -> tuple[int, int, int, int] | None:
    """big_vision's evaluator box for loc bins (y_min, x_min, y_max, x_max): bins / 1023 times the image
    size, each truncated to an integer; None where the evaluator has no mask (corners not in order, or
    an empty box after truncation)."""
    y_min, x_min, y_max, x_max = (int(v) for v in locs)
    if not (y_max > y_min and x_max > x_min):
        return None
    y0, x0, y1, x1 = (
        int(v / EVALUATOR_LOC_SCALE * size)
        for v, size in ((y_min, height), (x_min, width), (y_max, height), (x_max, width))
    )
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _resize_logits(logits: np.ndarray, box_w: int, box_h: int) -> np.ndarray:
    """PIL's bilinear resize of one float map, as the evaluator does (PIL widens the filter when shrinking)."""
    from PIL import Image

    src = Image.fromarray(np.ascontiguousarray(logits, dtype=np.float32), mode="F")
    return np.asarray(src.resize((box_w, box_h), resample=Image.Resampling.BILINEAR))


def paste_mask(
    logits: np.ndarray, box: tuple[int, int, int, int], width: int, height: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Resize one 64x64 logit map to the integer ``box`` (x0, y0, x1, y1), threshold at 0 and paste it into
    a (height, width) bool mask; the part of a box outside the image is cut off."""
    mask = np.zeros((height, width), dtype=bool) if out is None else out
    x0, y0, x1, y1 = box
    inside = _resize_logits(logits, x1 - x0, y1 - y0) > 0
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, width), min(y1, height)
    if cx1 > cx0 and cy1 > cy0:
        mask[cy0:cy1, cx0:cx1] = inside[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return mask


def paste_masks(logits: np.ndarray, boxes_xyxy, width: int, height: int) -> np.ndarray:
    """The ``cover`` paste: each map resized bilinearly to the pixels covering its float box: (N, H, W) bool."""
    n = int(logits.shape[0])
    masks = np.zeros((n, height, width), dtype=bool)
    for i in range(n):
        paste_mask(logits[i], pixel_box(boxes_xyxy[i], width, height), width, height, out=masks[i])
    return masks
