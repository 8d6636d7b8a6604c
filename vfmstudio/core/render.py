"""Colours of results, drawn the same everywhere: palette, colour maps, mask fills and outlines.

numpy only, so it runs on any thread and in the core. The window (``vfmstudio/qt``) wraps these
arrays in QImages; the CLI's overlay PNGs (:mod:`vfmstudio.core.overlay`) composite the same arrays,
so a mask or heat map has the same colours in both.
"""

from __future__ import annotations

import numpy as np

DEFAULT_COLORMAP = "viridis"

# Anchor colours sampled from the published maps (matplotlib's viridis/magma, Google's turbo);
# linear interpolation between 8-9 anchors is visually indistinguishable at overlay opacity.
_ANCHORS: dict[str, list[tuple[int, int, int]]] = {
    "viridis": [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ],
    "magma": [
        (0, 0, 4),
        (28, 16, 68),
        (79, 18, 123),
        (129, 37, 129),
        (181, 54, 122),
        (229, 80, 100),
        (251, 135, 97),
        (254, 194, 135),
        (252, 253, 191),
    ],
    "turbo": [
        (48, 18, 59),
        (70, 107, 227),
        (40, 187, 236),
        (50, 241, 152),
        (164, 252, 60),
        (237, 208, 58),
        (251, 128, 34),
        (208, 47, 5),
        (122, 4, 3),
    ],
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
        _LUTS[name] = (
            np.stack([np.interp(t, xs, anchors[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)
        )
    return _LUTS[name]


def apply(values: np.ndarray, lo: float, hi: float, name: str = "viridis", alpha: int = 255) -> np.ndarray:
    """(h, w) floats -> (h, w, 4) uint8 RGBA through the colour map, ``lo``..``hi`` mapped to 0..255."""
    span = hi - lo if hi > lo else 1.0
    idx = np.clip((np.asarray(values, dtype=np.float32) - lo) * (255.0 / span), 0, 255).astype(np.uint8)
    out = np.empty(idx.shape + (4,), dtype=np.uint8)
    out[..., :3] = lut(name)[idx]
    out[..., 3] = alpha
    return out


# A qualitative palette (Tableau 10) so neighbouring instances differ clearly.
PALETTE = np.array(
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ],
    dtype=np.uint8,
)


def colour_for(i: int) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in PALETTE[i % len(PALETTE)])
    return r, g, b


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside the mask (a 1-pixel inner outline)."""
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


def instance_index(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> (H, W) uint16: 1 + the index of the topmost (last) mask at each pixel, 0 for none."""
    n, h, w = masks.shape
    index = np.zeros((h, w), dtype=np.uint16)
    for i in range(n):
        m = masks[i]
        rows = np.flatnonzero(m.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(m[rows[0] : rows[-1] + 1].any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        # Only the bounding box is touched: a small mask on a big image stays cheap.
        np.copyto(index[y0:y1, x0:x1], np.uint16(i + 1), where=m[y0:y1, x0:x1])
    return index


def render_masks(masks: np.ndarray, fill_alpha: int = 110) -> np.ndarray:
    """(N, H, W) bool -> (H, W, 4) RGBA: translucent fills, opaque outlines, later masks on top."""
    index = instance_index(masks)
    n = masks.shape[0]
    if n + 1 > 32767:
        raise ValueError(f"too many masks to draw: {n}")
    # One colour table, fills then outlines, gathered once as 32-bit RGBA words.
    table = np.zeros((2 * (n + 1), 4), dtype=np.uint8)
    for i in range(n):
        table[i + 1] = (*colour_for(i), fill_alpha)
        table[n + 2 + i] = (*colour_for(i), 255)
    # An outline pixel is one whose 4-neighbour shows a different instance (or the image edge).
    edge = np.zeros(index.shape, dtype=bool)
    edge[1:, :] |= index[1:, :] != index[:-1, :]
    edge[:-1, :] |= index[:-1, :] != index[1:, :]
    edge[:, 1:] |= index[:, 1:] != index[:, :-1]
    edge[:, :-1] |= index[:, :-1] != index[:, 1:]
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    code = index + edge.astype(np.uint16) * np.uint16(n + 1)  # background edges map to an empty entry
    words = table.view(np.uint32).ravel()[code]
    return words.view(np.uint8).reshape(index.shape + (4,))


def render_feature_image(rgb: np.ndarray, foreground: np.ndarray | None) -> np.ndarray:
    """RGB feature map -> RGBA, background (outside ``foreground``) transparent."""
    h, w = rgb.shape[:2]
    out = np.empty((h, w, 4), dtype=np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255 if foreground is None else np.where(foreground, 255, 0)
    return out


def layer_maps_range(values: np.ndarray) -> tuple[float, float]:
    """One range for the whole stack, so scrubbing layers compares like with like."""
    lo, hi = float(values.min()), float(values.max())
    return lo, hi if hi > lo else lo + 1.0


def colourize(
    values: np.ndarray, value_range: tuple[float, float] | None = None, name: str = DEFAULT_COLORMAP
) -> np.ndarray:
    """(h, w) floats -> (h, w, 3) uint8 RGB through colour map ``name`` over ``value_range``
    (default: the values' own range)."""
    values = np.asarray(values, dtype=np.float32)
    if value_range is None:
        value_range = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    return apply(values, float(value_range[0]), float(value_range[1]), name)[..., :3]


def composite(base: np.ndarray, rgba: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """``rgba`` (h, w, 4) over ``base`` (h, w, 3) uint8 ("over" with straight alpha, times ``opacity``)."""
    a = rgba[..., 3:4].astype(np.float32) * (opacity / 255.0)
    out = base.astype(np.float32) * (1.0 - a) + rgba[..., :3].astype(np.float32) * a
    return out.round().astype(np.uint8)
