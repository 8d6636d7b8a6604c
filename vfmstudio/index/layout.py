"""2-D layouts of an index for the Explore map, and the geometry of selecting points on it (numpy only)."""

from __future__ import annotations

import numpy as np

FIT_ROWS = 20_000  # the PCA is fitted on at most this many rows (a fixed sample), then applied to all
CHUNK = 65_536


def pca_2d(vectors: np.ndarray, *, fit_rows: int = FIT_ROWS, seed: int = 0) -> np.ndarray:
    """(N, 2) float32: the first two principal components, the instant first layout of the map.

    Fitted on a fixed random sample of at most ``fit_rows`` rows and applied in chunks, so 100k
    memory-mapped vectors are never all copied at once; each axis's sign is fixed (largest loading
    positive) so the map does not flip between runs.
    """
    n = vectors.shape[0]
    if n == 0:
        return np.zeros((0, 2), np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, fit_rows), replace=False))
    sample = np.asarray(vectors[rows], dtype=np.float32)
    mean = sample.mean(axis=0)
    if n < 3:
        return np.zeros((n, 2), np.float32)
    axes = _top_directions(sample - mean, 2, seed)
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    out = np.empty((n, 2), np.float32)
    for start in range(0, n, CHUNK):
        block = np.asarray(vectors[start : start + CHUNK], dtype=np.float32)
        out[start : start + len(block)] = (block - mean) @ axes.T
    return out


def _top_directions(
    centred: np.ndarray, k: int, seed: int, oversample: int = 8, iterations: int = 4
) -> np.ndarray:
    """The top ``k`` right singular vectors (k, D) by randomised subspace iteration (Halko et al. 2011):
    a few products with a thin random matrix instead of a full SVD of the sample (seconds -> tens of ms)."""
    d = centred.shape[1]
    width = min(d, k + oversample)
    q = np.random.default_rng(seed).standard_normal((d, width)).astype(np.float32)
    for _ in range(iterations):
        q, _ = np.linalg.qr(centred.T @ (centred @ q))
    _, _, vt = np.linalg.svd(centred @ q, full_matrices=False)
    axes = (vt[:k] @ q.T).astype(np.float32)
    if axes.shape[0] < k:
        axes = np.vstack([axes, np.zeros((k - axes.shape[0], d), np.float32)])
    return axes


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of the ``points`` (N, 2) inside ``polygon`` (M, 2; closed implicitly), even-odd rule."""
    pts = np.asarray(points, dtype=np.float64)
    poly = np.asarray(polygon, dtype=np.float64)
    inside = np.zeros(len(pts), dtype=bool)
    if len(poly) < 3 or len(pts) == 0:
        return inside
    x, y = pts[:, 0], pts[:, 1]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1):
        crosses = (ay > y) != (by > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (x < xint)
    return inside
