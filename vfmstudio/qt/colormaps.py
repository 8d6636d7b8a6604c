"""Colour maps for heat maps and layer maps as 256-entry RGB look-up tables (numpy only)."""

from __future__ import annotations

import numpy as np

# Anchor colours sampled from the published maps (matplotlib's viridis/magma, Google's turbo);
# linear interpolation between 8-9 anchors is visually indistinguishable at overlay opacity.
_ANCHORS: dict[str, list[tuple[int, int, int]]] = {
    "viridis": [(68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
                (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)],
    "magma": [(0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
              (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191)],
    "turbo": [(48, 18, 59), (70, 107, 227), (40, 187, 236), (50, 241, 152), (164, 252, 60),
              (237, 208, 58), (251, 128, 34), (208, 47, 5), (122, 4, 3)],
    "gray": [(0, 0, 0), (255, 255, 255)],
}
COLORMAPS: tuple[str, ...] = tuple(_ANCHORS)
_LUTS: dict[str, np.ndarray] = {}


def lut(name: str) -> np.ndarray:
    """(256, 3) uint8 table for ``name``."""
    if name not in _ANCHORS:
        raise ValueError(f"unknown colour map {name!r} (known: {', '.join(COLORMAPS)})")
    if name not in _LUTS:
        anchors = np.asarray(_ANCHORS[name], dtype=np.float64)
        xs = np.linspace(0.0, 1.0, len(anchors))
        t = np.linspace(0.0, 1.0, 256)
        _LUTS[name] = np.stack([np.interp(t, xs, anchors[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)
    return _LUTS[name]


def apply(values: np.ndarray, lo: float, hi: float, name: str = "viridis", alpha: int = 255) -> np.ndarray:
    """(h, w) floats -> (h, w, 4) uint8 RGBA through the colour map, ``lo``..``hi`` mapped to 0..255."""
    span = hi - lo if hi > lo else 1.0
    idx = np.clip((np.asarray(values, dtype=np.float32) - lo) * (255.0 / span), 0, 255).astype(np.uint8)
    out = np.empty(idx.shape + (4,), dtype=np.uint8)
    out[..., :3] = lut(name)[idx]
    out[..., 3] = alpha
    return out
