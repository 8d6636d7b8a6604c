"""Layer rasters (numpy only): mask fills and outlines, feature images, colour maps, caching keys."""

from __future__ import annotations

import numpy as np
import pytest

from vfmstudio.core import render as colormaps
from vfmstudio.core.render import colour_for, instance_index, mask_outline, render_masks
from vfmstudio.core.results import FeatureImage, Heatmap, LayerMaps, Masks, Prediction
from vfmstudio.qt.overlays import prepare_rasters, raster_key


def test_masks_fill_translucent_outline_opaque_later_masks_on_top():
    masks = np.zeros((2, 10, 12), dtype=bool)
    masks[0, 1:7, 1:7] = True
    masks[1, 4:9, 4:11] = True
    rgba = render_masks(masks, fill_alpha=100)
    assert tuple(rgba[3, 3]) == (*colour_for(0), 100)  # inside mask 0 only
    assert tuple(rgba[1, 3]) == (*colour_for(0), 255)  # its top edge
    assert tuple(rgba[6, 6]) == (*colour_for(1), 100)  # overlap: the later mask wins
    assert tuple(rgba[4, 5]) == (*colour_for(1), 255)  # mask 1's outline crosses mask 0
    assert tuple(rgba[0, 0]) == (0, 0, 0, 0) and tuple(rgba[9, 0]) == (0, 0, 0, 0)
    index = instance_index(masks)
    assert index[3, 3] == 1 and index[6, 6] == 2 and index[0, 0] == 0


def test_outline_of_a_single_mask_equals_its_inner_boundary():
    rng = np.random.default_rng(1)
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:25, 8:30] = rng.random((20, 22)) > 0.3
    rgba = render_masks(mask[None])
    outline = rgba[..., 3] == 255
    np.testing.assert_array_equal(outline, mask_outline(mask))  # away from the image border


def test_rasters_for_maps_and_feature_images():
    heat = Heatmap(np.array([[0.0, 1.0], [0.5, 0.25]], dtype=np.float32), image_id="a")
    stack = LayerMaps(np.stack([np.zeros((2, 2)), np.ones((2, 2)) * 4]), ("l0", "l1"), image_id="a")
    feat = FeatureImage(
        np.full((2, 2, 3), 9, np.uint8), foreground=np.array([[1, 0], [0, 1]], bool), image_id="a"
    )
    masks = Masks(np.ones((1, 2, 2), bool), ("x",), image_id="a")
    prediction = Prediction("fake.x", None, ("a",), (heat, stack, feat, masks))
    rasters = prepare_rasters(prediction)
    assert set(rasters) == {0, 1, 2, 3}
    key, raster = rasters[0]
    assert key == ("viridis",) and tuple(raster[0, 1, :3]) == tuple(colormaps.lut("viridis")[255])
    key, raster = rasters[1]
    assert key == ("viridis", 1)  # the last map, on one range for the whole stack
    assert tuple(raster[0, 0, :3]) == tuple(colormaps.lut("viridis")[255])
    _, raster = rasters[2]
    assert raster[0, 0, 3] == 255 and raster[0, 1, 3] == 0  # background transparent
    assert raster_key(stack, "magma", -2) == ("magma", 0) and raster_key(masks, "magma", 3) == ()


def test_colormap_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown colour map 'nope'"):
        colormaps.lut("nope")
