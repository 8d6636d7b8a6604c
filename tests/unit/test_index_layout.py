"""Layouts of the Explore map: the t-SNE map keeps clusters apart (also for points placed by their
neighbours instead of fitted), is repeatable and can be cancelled; the growing map keeps drawn points
still while new vectors arrive."""

from __future__ import annotations

import numpy as np
import pytest

from vfmstudio.index.growing import GrowingMap
from vfmstudio.index.layout import LayoutCancelled, fit_pca, pca_2d, tsne_2d
from vfmstudio.index.store import EmbeddingStore, FileEntry


def clusters(n: int, k: int = 4, dim: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)).astype(np.float32) * 4
    label = rng.integers(0, k, n)
    return centres[label] + rng.standard_normal((n, dim)).astype(np.float32), label


def neighbour_agreement(xy: np.ndarray, label: np.ndarray) -> float:
    """Share of points whose nearest other point on the map has the same cluster."""
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((label[d.argmin(axis=1)] == label).mean())


def test_pca_basis_projects_like_pca_2d():
    v, _ = clusters(300)
    basis = fit_pca(v)
    np.testing.assert_allclose(basis.project(v), pca_2d(v), rtol=1e-5, atol=1e-5)
    assert fit_pca(v[:2]) is None


def test_tsne_keeps_clusters_together_including_points_placed_by_their_neighbours():
    v, label = clusters(500)
    steps = []
    xy = tsne_2d(v, fit_rows=300, progress=lambda f, m: steps.append((f, m)))
    assert xy.shape == (500, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    assert neighbour_agreement(xy, label) >= 0.98
    # Points outside the fitted sample were placed, not left at the origin.
    rows = np.sort(np.random.default_rng(0).choice(500, size=300, replace=False))
    placed = np.setdiff1d(np.arange(500), rows)
    assert neighbour_agreement(xy[placed], label[placed]) >= 0.95
    assert steps[0][0] is not None and any("placing 200 more" in m for _f, m in steps)
    fractions = [f for f, _m in steps if f is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    np.testing.assert_array_equal(xy, tsne_2d(v, fit_rows=300))  # the same map each time


def test_tsne_of_a_tiny_or_uniform_folder_is_finite():
    rng = np.random.default_rng(1)
    assert tsne_2d(rng.standard_normal((5, 16)).astype(np.float32)).shape == (5, 2)
    same = np.ones((20, 16), np.float32)  # e.g. twenty blank frames
    np.testing.assert_array_equal(tsne_2d(same), np.zeros((20, 2), np.float32))


def test_tsne_stops_when_cancelled():
    v, _ = clusters(200)
    polls = []

    def cancelled() -> bool:
        polls.append(1)
        return len(polls) >= 2

    with pytest.raises(LayoutCancelled):
        tsne_2d(v, cancelled=cancelled)
    assert len(polls) < 10  # it stopped at the second poll, not after all 750 iterations


def test_the_growing_map_places_new_vectors_with_the_first_basis(tmp_path):
    v, _ = clusters(40, dim=16)
    store = EmbeddingStore.open(tmp_path / "store", {"tool": "t", "model": "m", "params": {}})
    ids = [f"id{i}" for i in range(40)]
    files = {f"{i}.png": FileEntry(ids[i], 1, 1) for i in range(40)}
    files["copy of 0.png"] = FileEntry("id0", 1, 1)
    emitted = []
    now = [0.0]
    grow = GrowingMap(emitted.append, every_s=0.5, clock=lambda: now[0])
    grow(store, files)
    store.append(ids[:2], v[:2])
    grow(store, files)
    assert emitted == []  # fewer than 3 vectors: nothing to lay out yet
    store.append(ids[2:10], v[2:10])
    grow(store, files)
    assert len(emitted) == 1 and len(emitted[0].rels) == 11  # 10 contents, one of them twice
    first = dict(zip(emitted[0].rels, map(tuple, emitted[0].xy)))
    assert first["copy of 0.png"] == first["0.png"]
    store.append(ids[10:20], v[10:20])
    now[0] = 0.2
    grow(store, files)
    assert len(emitted) == 1  # too soon after the last update
    now[0] = 0.6
    store.append(ids[20:], v[20:])
    grow(store, files)
    assert len(emitted) == 2 and sorted(emitted[1].rels) == sorted(files)
    second = dict(zip(emitted[1].rels, map(tuple, emitted[1].xy)))
    assert all(second[rel] == xy for rel, xy in first.items())  # drawn points did not move
    basis = fit_pca(v[:10])
    np.testing.assert_allclose(second["39.png"], basis.project(v[39:40])[0], rtol=1e-5, atol=1e-5)


def test_a_big_map_is_redrawn_less_often(tmp_path, monkeypatch):
    import vfmstudio.index.growing as growing

    monkeypatch.setattr(growing, "SECONDS_PER_POINT", 0.01)  # 20 points drawn: wait 0.2 s
    v, _ = clusters(30, dim=8)
    store = EmbeddingStore.open(tmp_path / "store", {"tool": "t", "model": "m", "params": {}})
    files = {f"{i}.png": FileEntry(f"id{i}", 1, 1) for i in range(30)}
    emitted, now = [], [0.0]
    grow = GrowingMap(emitted.append, every_s=0.05, clock=lambda: now[0])
    store.append([f"id{i}" for i in range(20)], v[:20])
    grow(store, files)
    store.append([f"id{i}" for i in range(20, 30)], v[20:])
    now[0] = 0.1
    grow(store, files)
    assert len(emitted) == 1  # 0.1 s > every_s, but 20 points drawn ask for 0.2 s
    now[0] = 0.25
    grow(store, files)
    assert [len(e.rels) for e in emitted] == [20, 30]
