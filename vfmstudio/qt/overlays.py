"""Layer rasters: results turned into RGBA arrays (numpy only, safe on any thread) with the shared
colours of :mod:`vfmstudio.core.render`.

The inference job renders each new result's raster right after the tool returns, so the GUI
thread only wraps finished arrays; a raster is cached on its layer per colour map and layer
index, so toggling visibility or opacity never renders again.
"""

from __future__ import annotations

import numpy as np

from vfmstudio.core.render import (
    DEFAULT_COLORMAP,
    apply,
    colour_for,
    layer_maps_range,
    render_feature_image,
    render_masks,
)
from vfmstudio.core.results import FeatureImage, Heatmap, LayerMaps, Masks, Prediction, Result

__all__ = [
    "DEFAULT_COLORMAP",
    "colour_for",
    "layer_maps_range",
    "prepare_rasters",
    "raster_key",
    "render_raster",
]


def raster_key(result: Result, colormap: str, layer_index: int) -> tuple:
    """What a raster depends on besides the result: the colour map for maps, the index for stacks."""
    if isinstance(result, LayerMaps):
        return (colormap, layer_index % result.values.shape[0])
    if isinstance(result, Heatmap):
        return (colormap,)
    return ()


def render_raster(
    result: Result, colormap: str = DEFAULT_COLORMAP, layer_index: int = -1
) -> np.ndarray | None:
    """The RGBA raster of a raster-drawn result (masks, maps, feature images); None for the others."""
    if isinstance(result, Masks):
        return render_masks(result.masks)
    if isinstance(result, FeatureImage):
        return render_feature_image(result.rgb, result.foreground)
    if isinstance(result, Heatmap):
        lo, hi = result.value_range
        return apply(result.values, lo, hi, colormap)
    if isinstance(result, LayerMaps):
        lo, hi = layer_maps_range(result.values)
        return apply(result.values[layer_index % result.values.shape[0]], lo, hi, colormap)
    return None


def prepare_rasters(prediction: Prediction) -> dict[int, tuple[tuple, np.ndarray]]:
    """Rasters for a new prediction with the default settings, by result index (run on the worker)."""
    out = {}
    for i, r in enumerate(prediction.results):
        raster = render_raster(r)
        if raster is not None:
            out[i] = (raster_key(r, DEFAULT_COLORMAP, -1), raster)
    return out
