"""Layer rasters: results turned into RGBA arrays (numpy only, safe on any thread).

The inference job renders each new result's raster right after the tool returns, so the GUI
thread only wraps finished arrays; a raster is cached on its layer per colour map and layer
index, so toggling visibility or opacity never renders again.
"""

from __future__ import annotations

import numpy as np

from vfmstudio.core.results import FeatureImage, Heatmap, LayerMaps, Masks, Prediction, Result
from vfmstudio.qt import colormaps

DEFAULT_COLORMAP = "viridis"

# A qualitative palette (Tableau 10) so neighbouring instances differ clearly.
PALETTE = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)],
                   dtype=np.uint8)


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


def raster_key(result: Result, colormap: str, layer_index: int) -> tuple:
    """What a raster depends on besides the result: the colour map for maps, the index for stacks."""
    if isinstance(result, LayerMaps):
        return (colormap, layer_index % result.values.shape[0])
    if isinstance(result, Heatmap):
        return (colormap,)
    return ()


def render_raster(result: Result, colormap: str = DEFAULT_COLORMAP, layer_index: int = -1) -> np.ndarray | None:
    """The RGBA raster of a raster-drawn result (masks, maps, feature images); None for the others."""
    if isinstance(result, Masks):
        return render_masks(result.masks)
    if isinstance(result, FeatureImage):
        return render_feature_image(result.rgb, result.foreground)
    if isinstance(result, Heatmap):
        lo, hi = result.value_range
        return colormaps.apply(result.values, lo, hi, colormap)
    if isinstance(result, LayerMaps):
        lo, hi = layer_maps_range(result.values)
        return colormaps.apply(result.values[layer_index % result.values.shape[0]], lo, hi, colormap)
    return None


def prepare_rasters(prediction: Prediction) -> dict[int, tuple[tuple, np.ndarray]]:
    """Rasters for a new prediction with the default settings, by result index (run on the worker)."""
    out = {}
    for i, r in enumerate(prediction.results):
        raster = render_raster(r)
        if raster is not None:
            out[i] = (raster_key(r, DEFAULT_COLORMAP, -1), raster)
    return out
