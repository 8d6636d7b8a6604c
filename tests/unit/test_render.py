"""One set of colours: the CLI's overlay PNGs colour results exactly as the window's layer rasters."""

import numpy as np

from vfmstudio.core import overlay, render
from vfmstudio.core.results import Heatmap, LayerMaps, Masks
from vfmstudio.qt.overlays import render_raster  # numpy only: what the window wraps in a QImage


def _masks():
    masks = np.zeros((2, 40, 60), bool)
    masks[0, 5:30, 5:25] = True
    masks[1, 10:35, 30:55] = True
    return Masks(masks, labels=("a", "b"))


def test_cli_masks_are_the_window_raster_composited():
    image = np.full((40, 60, 3), 90, np.uint8)
    result = _masks()
    cli = overlay.draw_result(image, result)
    window = render.composite(image, render_raster(result))
    # Away from the two label boxes drawn at the masks' top-left corners, every pixel is the same.
    region = (slice(23, 40), slice(0, 60))
    assert np.array_equal(cli[region], window[region])
    # Fill and outline colours are the palette's, as in the window.
    fill = np.array(render.colour_for(1), np.float32)
    alpha = 110 / 255
    assert tuple(cli[25, 40]) == tuple((90 * (1 - alpha) + fill * alpha).round().astype(np.uint8))
    assert tuple(cli[34, 40]) == render.colour_for(1)  # bottom edge of mask 1: opaque outline


def test_cli_heatmap_uses_the_window_colour_map():
    values = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    result = Heatmap(values, extent=(0, 0, 4, 3))
    cli = overlay.draw_result(np.zeros((3, 4, 3), np.uint8), result, alpha=1.0)
    assert np.array_equal(cli, render_raster(result)[..., :3])
    assert tuple(cli[-1, -1]) == tuple(render.lut("viridis")[255])


def test_cli_layer_maps_share_the_stack_range_like_the_window():
    values = np.stack([np.zeros((2, 2), np.float32), np.full((2, 2), 0.5, np.float32)])
    values[0, 0, 0] = 1.0  # the stack's maximum lies in another layer
    result = LayerMaps(values, names=("l0", "l1"), extent=(0, 0, 2, 2))
    cli = overlay.draw_result(np.zeros((2, 2, 3), np.uint8), result, alpha=1.0)
    window = render_raster(result, layer_index=-1)[..., :3]
    assert np.array_equal(cli[1:, :], window[1:, :])  # row 0 holds the layer's name label
    assert tuple(window[1, 1]) == tuple(render.lut("viridis")[127])


def test_composite_is_straight_alpha_over():
    base = np.array([[[100, 100, 100]]], np.uint8)
    rgba = np.array([[[200, 0, 50, 51]]], np.uint8)
    assert tuple(render.composite(base, rgba)[0, 0]) == (120, 80, 90)
    assert tuple(render.composite(base, rgba, opacity=0.0)[0, 0]) == (100, 100, 100)
