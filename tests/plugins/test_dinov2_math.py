"""The patch math behind the dinov2 tools, against exact references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vfmstudio_dinov2 import _math


def test_top_components_equal_an_exact_svd_and_are_reproducible():
    rng = np.random.default_rng(0)
    scales = np.geomspace(10, 0.1, 48)  # a decaying spectrum, like real tokens
    x = (rng.normal(size=(700, 48)) * scales) @ np.linalg.qr(rng.normal(size=(48, 48)))[0].T + 3.0
    comps, mean = _math.top_components(x.astype(np.float32), 3)
    _, _, vh = np.linalg.svd(x - x.mean(0), full_matrices=False)
    assert np.abs(np.abs((comps.numpy() @ vh[:3].T).diagonal()) - 1).max() < 1e-4
    assert np.allclose(mean.numpy(), x.mean(0), atol=1e-4)
    again, _ = _math.top_components(x.astype(np.float32), 3)
    assert torch.equal(comps, again)
    assert (comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)) > 0).all()  # sign convention


def test_top_components_with_fewer_rows_than_asked():
    comps, _ = _math.top_components(np.eye(2, 5, dtype=np.float32), 3)
    assert comps.shape == (3, 5) and not comps[2].any()


def test_otsu_finds_the_valley_between_two_modes():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0.2, 0.03, 700), rng.normal(0.75, 0.05, 300)]).clip(0, 1)
    cut = _math.otsu(values)
    assert 0.3 < cut < 0.6
    assert ((values > cut) == (np.arange(1000) >= 700)).all()


def test_clean_mask_drops_specks_fills_holes_and_keeps_shapes_at_the_border():
    grid = np.zeros((20, 20), bool)
    grid[0:8, 0:10] = True  # an object touching two borders
    grid[3, 4] = False  # a one-cell hole
    grid[15, 15] = True  # a speck
    grid[12:19, 12:14] = True  # a thin but large part, one cell from the border
    cleaned = _math.clean_mask(grid)
    expected = grid.copy()
    expected[3, 4] = True
    expected[15, 15] = False
    assert np.array_equal(cleaned, expected)


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_to_pixels_keeps_constants_and_places_cells_through_a_fractional_extent(mode):
    maps = torch.zeros(2, 3, 4)
    maps[0] = 7.0
    maps[1, 1, 2] = 1.0  # one cell
    extent = (2.5, 1.25, 42.5, 31.25)  # 10 x 10 px cells, offset by fractions of a pixel
    out = _math.to_pixels(maps, extent, (33, 45), mode)
    assert out.shape == (2, 33, 45)
    assert torch.allclose(
        out[0], torch.full((33, 45), 7.0), atol=1e-4
    )  # weights sum to one, borders replicate
    if mode == "nearest":
        # Cell (row 1, col 2) spans x in [22.5, 32.5) and y in [11.25, 21.25): pixel centres 22.5..31.5
        # and 11.5..20.5.
        expected = torch.zeros(33, 45)
        expected[11:21, 22:32] = 1.0
        assert torch.equal(out[1], expected)
    else:  # the peak sits at the cell centre x = 27.5, y = 16.25: pixel (27, 16)
        assert out[1].argmax() == 16 * 45 + 27


def test_mutual_nearest_keeps_only_best_buddies():
    a = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1)
    b = torch.nn.functional.normalize(torch.tensor([[1.0, 0.05], [0.1, 1.0]]), dim=1)
    ia, ib, score = _math.mutual_nearest(a, b)
    assert ia.tolist() == [0, 2] and ib.tolist() == [0, 1]  # a[1] prefers b[0], which prefers a[0]
    assert torch.allclose(score, (a[ia] * b[ib]).sum(1))


def test_kmeans_separates_well_separated_clusters():
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0], [10, 0], [0, 10]], np.float32)
    x = torch.from_numpy(
        np.concatenate([c + rng.normal(0, 0.5, (30, 2)).astype(np.float32) for c in centres])
    )
    labels = _math.kmeans(x, 3)
    groups = [set(labels[i * 30 : (i + 1) * 30].tolist()) for i in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3


def test_robust_cutoff_is_median_plus_k_scaled_mads():
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    assert _math.robust_cutoff(values, 2.0) == pytest.approx(3.0 + 2.0 * 1.4826 * 1.0)
    assert _math.robust_cutoff(np.full(10, 5.0), 3.0) > 5.0  # constant: nothing is an outlier
