"""2-D layouts of an index for the Explore map, and the geometry of selecting points on it (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIT_ROWS = 20_000  # the PCA is fitted on at most this many rows (a fixed sample), then applied to all
CHUNK = 65_536


@dataclass(frozen=True)
class PcaBasis:
    """The mean and the principal directions (k, D) a layout projects every vector with."""

    mean: np.ndarray
    axes: np.ndarray

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """(N, k) float32, in chunks (memory-mapped vectors are never all copied at once)."""
        n = vectors.shape[0]
        out = np.empty((n, self.axes.shape[0]), np.float32)
        for start in range(0, n, CHUNK):
            block = np.asarray(vectors[start : start + CHUNK], dtype=np.float32)
            out[start : start + len(block)] = (block - self.mean) @ self.axes.T
        return out


def fit_pca(vectors: np.ndarray, k: int = 2, *, fit_rows: int = FIT_ROWS, seed: int = 0) -> PcaBasis | None:
    """The top ``k`` principal directions, fitted on a fixed random sample of at most ``fit_rows`` rows;
    each axis's sign is fixed (largest loading positive) so the map does not flip between runs.
    None when there are fewer than 3 rows (no direction to speak of)."""
    n = vectors.shape[0]
    if n < 3:
        return None
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, fit_rows), replace=False))
    sample = np.asarray(vectors[rows], dtype=np.float32)
    mean = sample.mean(axis=0)
    axes = _top_directions(sample - mean, k, seed)
    signs = np.sign(axes[np.arange(k), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    return PcaBasis(mean, axes.astype(np.float32))


def pca_2d(vectors: np.ndarray, *, fit_rows: int = FIT_ROWS, seed: int = 0) -> np.ndarray:
    """(N, 2) float32: the first two principal components, the instant first layout of the map
    (see :func:`fit_pca`)."""
    basis = fit_pca(vectors, 2, fit_rows=fit_rows, seed=seed)
    if basis is None:
        return np.zeros((vectors.shape[0], 2), np.float32)
    return basis.project(vectors)


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


# ---------------------------------------------------------------------- t-SNE

TSNE_FIT_ROWS = 20_000  # t-SNE is fitted on at most this many rows; the rest are placed by neighbours
TSNE_DIMS = 50  # vectors are reduced to this many principal components first (the usual t-SNE input)


class LayoutCancelled(Exception):
    """The layout was cancelled before it finished."""


def tsne_2d(
    vectors: np.ndarray,
    *,
    fit_rows: int = TSNE_FIT_ROWS,
    seed: int = 0,
    n_jobs: int | None = None,
    cancelled=lambda: False,
    progress=None,
) -> np.ndarray:
    """(N, 2) float32: a t-SNE map (openTSNE, FFT-accelerated gradients; ADR 0180).

    The vectors are reduced to ``TSNE_DIMS`` principal components; t-SNE is fitted on a fixed random
    sample of at most ``fit_rows`` rows (initialised from their PCA map, so it is deterministic for a
    seed), and every other row is placed at the median position of its nearest sample rows (openTSNE's
    ``prepare_partial``), so 100k points cost about a 20k-point fit. ``cancelled()`` is polled every
    few iterations (raises :class:`LayoutCancelled`); ``progress(fraction, message)`` is told how far.
    ``n_jobs`` defaults to all cores but one (the window's thread keeps one).
    """
    import os

    from openTSNE import TSNE
    from openTSNE.initialization import rescale

    n = vectors.shape[0]
    if n < 5:  # too few for a neighbourhood: the PCA map says as much
        return pca_2d(vectors)
    basis = fit_pca(vectors, min(TSNE_DIMS, vectors.shape[1]), seed=seed)
    assert basis is not None
    reduced = basis.project(vectors)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, fit_rows), replace=False))
    is_sample = np.zeros(n, bool)
    is_sample[sample] = True
    fit_x = np.ascontiguousarray(reduced[sample], dtype=np.float64)
    if float(np.std(fit_x[:, 0])) < 1e-12:  # all vectors alike: no direction to spread them along
        return pca_2d(vectors)
    perplexity = float(min(30.0, max(1.0, (len(sample) - 1) / 3.0)))  # openTSNE needs 3 x perplexity < n
    early, late, every = 250, 500, 25
    total = early + late
    done = [0]  # iterations so far (openTSNE counts each of its two phases from 1)

    def poll(iteration: int, error: float, embedding) -> bool:
        done[0] += every
        if progress is not None:
            progress(min(1.0, done[0] / total), f"t-SNE: iteration {min(done[0], total)} of {total}")
        return bool(cancelled())  # True stops the optimisation (openTSNE returns what it has)

    tsne = TSNE(
        perplexity=perplexity,
        initialization=rescale(fit_x[:, :2].copy()),
        early_exaggeration_iter=early,
        n_iter=late,
        n_jobs=n_jobs if n_jobs is not None else max(1, (os.cpu_count() or 2) - 1),
        random_state=seed,
        callbacks=poll,
        callbacks_every_iters=every,
        neighbors="annoy" if len(sample) > 1000 else "exact",
        verbose=False,
    )
    embedding = tsne.fit(fit_x)
    if cancelled():
        raise LayoutCancelled()
    out = np.empty((n, 2), np.float32)
    out[sample] = np.asarray(embedding, np.float32)
    rest = np.flatnonzero(~is_sample)
    if len(rest):
        if cancelled():
            raise LayoutCancelled()
        if progress is not None:
            progress(None, f"t-SNE: placing {len(rest)} more images by their neighbours")
        for start in range(0, len(rest), CHUNK):
            rows = rest[start : start + CHUNK]
            placed = embedding.prepare_partial(
                np.ascontiguousarray(reduced[rows], dtype=np.float64), initialization="median", k=10
            )
            out[rows] = np.asarray(placed, np.float32)
    return out
