"""Patch math on cached features: PCA, thresholds, resampling to pixels, matching, clustering.

Everything here is deterministic (fixed seeds, sign conventions), so rerunning a tool with the
same parameters gives the same picture, and is cheap enough to rerun on every slider move.
Inputs are numpy arrays or CPU tensors; outputs are numpy.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import cv2
import numpy as np
import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the patch math on one torch thread, then give the model its threads back.

    These are many small products of ~1024 x 384: splitting each over OpenMP threads gains little
    when the cores are free and costs 5-20x when they are not (the GUI, a decoder, another process),
    because every product waits at a barrier for a descheduled thread. Switching costs < 1 us.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


# ---------------------------------------------------------------------------------------------- PCA


def top_components(
    x: np.ndarray | torch.Tensor, k: int, *, iters: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` leading principal directions (k, D) of the rows of ``x`` and their mean (D,).

    Randomised subspace iteration with a fixed seed: a few (N x D) @ (D x q) products instead of a
    full decomposition of the (D x D) covariance, about 1 ms for 1024 x 384 tokens on one core.
    Each direction's sign is fixed (largest-magnitude loading positive) so results are reproducible.
    """
    x = as_tensor(x).float()
    mean = x.mean(dim=0)
    xc = x - mean
    n, d = xc.shape
    q = min(k + 8, n, d)
    gen = torch.Generator().manual_seed(seed)
    # (z.T @ xc).T rather than xc.T @ z: the product with a transposed large view is far slower.
    basis = torch.linalg.qr((torch.randn(n, q, generator=gen).T @ xc).T).Q  # (D, q)
    for _ in range(iters):
        basis = torch.linalg.qr(((xc @ basis).T @ xc).T).Q
    # Rayleigh-Ritz on the small subspace orders the directions by explained variance.
    small = xc @ basis  # (N, q)
    _, vecs = torch.linalg.eigh(small.T @ small)  # ascending
    comps = (basis @ vecs.flip(1)).T[:k]  # (k, D)
    if comps.shape[0] < k:  # fewer samples or dimensions than asked: pad with zero directions
        comps = torch.cat([comps, comps.new_zeros(k - comps.shape[0], d)])
    flip = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    return comps * torch.where(flip == 0, 1.0, flip), mean


def minmax01(v: torch.Tensor, dim: int = 0) -> torch.Tensor:
    lo = v.amin(dim=dim, keepdim=True)
    hi = v.amax(dim=dim, keepdim=True)
    return (v - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]: the cut that maximises the between-class variance."""
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = counts.astype(np.float64) / max(1, counts.sum())
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centres)
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * w0 - mu) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1.0
    # Between-class variance is flat across empty bins: take the middle of the best plateau.
    best = np.flatnonzero(between >= between.max() - 1e-12)
    return float(edges[1 + (best[0] + best[-1]) // 2] if best.size else 0.5)


def centrality(mask: np.ndarray) -> float:
    """Mean Chebyshev distance (0 centre .. 1 border) of the True cells of a 2-D grid to its centre."""
    rows, cols = mask.shape
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 1.0
    dy = np.abs((ys + 0.5) / rows - 0.5) * 2
    dx = np.abs((xs + 0.5) / cols - 0.5) * 2
    return float(np.maximum(dx, dy).mean())


def foreground_is_high(v: np.ndarray, threshold: float, grid: tuple[int, int], margin: float = 0.1) -> bool:
    """Which side of ``threshold`` is the object: the more central side, else the minority side.

    PC1's sign is arbitrary. The object is usually nearer the centre than the background, which
    touches the borders; when both sides are about as central (within ``margin``), the smaller side
    is taken as foreground (docs/adr/0012).
    """
    high = (v > threshold).reshape(grid)
    if high.all() or not high.any():
        return True
    c_high, c_low = centrality(high), centrality(~high)
    if abs(c_high - c_low) > margin:
        return c_high < c_low
    return high.mean() <= 0.5


def clean_mask(mask: np.ndarray, share: float = 0.01) -> np.ndarray:
    """Drop foreground specks and fill background holes smaller than ``share`` of the grid (at least 2 cells).

    Connected components (8-connected foreground, 4-connected background) rather than an opening and
    closing: shapes are kept exactly, and objects near or on the border are neither glued to it nor
    eaten by it. A hole is background that does not touch the border.
    """
    min_cells = max(2, int(np.ceil(share * mask.size)))
    out = mask.copy()
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_cells)
    out[np.isin(labels, small[small > 0])] = False
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~out).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] < min_cells and i not in border]
    out[np.isin(labels, holes)] = True
    return out


# ---------------------------------------------------------------------------------------------- pixels


def _interp_matrix(n_out: int, n_in: int, lo: float, hi: float, mode: str) -> np.ndarray:
    """(n_out, n_in) weights sampling a grid of n_in cells spanning [lo, hi) at pixel centres 0.5 .. n_out-0.5.

    Pixels outside [lo, hi) take the edge cells (border replication).
    """
    u = ((np.arange(n_out) + 0.5) - lo) / (hi - lo) * n_in - 0.5  # position in cell-centre units
    m = np.zeros((n_out, n_in), dtype=np.float32)
    rows = np.arange(n_out)
    if mode == "nearest":
        idx = np.clip(np.floor(u + 0.5), 0, n_in - 1).astype(int)
        m[rows, idx] = 1.0
        return m
    base = np.floor(u).astype(int)
    t = u - base
    if mode == "bilinear":
        taps = {0: 1 - t, 1: t}
    elif mode == "bicubic":  # Keys' cubic with a = -0.75, as torch and OpenCV use
        a = -0.75

        def near(s):  # |s| <= 1
            return ((a + 2) * s - (a + 3)) * s * s + 1

        def far(s):  # 1 < |s| < 2
            return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a

        taps = {-1: far(t + 1), 0: near(t), 1: near(1 - t), 2: far(2 - t)}
    else:
        raise ValueError(f"unknown upsampling mode {mode!r}")
    for offset, weight in taps.items():
        np.add.at(m, (rows, np.clip(base + offset, 0, n_in - 1)), weight.astype(np.float32))
    return m


def to_pixels(
    maps: torch.Tensor,
    extent: tuple[float, float, float, float],
    size: tuple[int, int],
    mode: str = "bilinear",
) -> torch.Tensor:
    """Resample patch-level maps (C, rows, cols) onto the full image (C, H, W) through their extent.

    Separable: a small product per channel, then one (C*H, cols) x (cols, W) product, exact for
    fractional extents (0.4 ms for 4 channels at 448 x 448 on one core).
    """
    channels, rows, cols = maps.shape
    x0, y0, x1, y1 = extent
    h, w = size
    ry = _weights(h, rows, y0, y1, mode, False)
    rx = _weights(w, cols, x0, x1, mode, True)
    tall = torch.matmul(ry, maps.float())  # (C, H, cols)
    return (tall.reshape(channels * h, cols) @ rx).reshape(channels, h, w)


@functools.lru_cache(maxsize=16)
def _weights(n_out: int, n_in: int, lo: float, hi: float, mode: str, transposed: bool) -> torch.Tensor:
    """:func:`_interp_matrix` as a contiguous tensor, cached: every rerun on the same image (a threshold
    drag) resamples with the same weights. At most 16 matrices (a 12 MP side is ~5 MB)."""
    m = _interp_matrix(n_out, n_in, lo, hi, mode)
    return torch.from_numpy(m.T.copy() if transposed else m)


# ---------------------------------------------------------------------------------------------- matching


def normalize_rows(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(as_tensor(x).float(), dim=-1)


def mutual_nearest(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best buddies between unit rows of ``a`` (Na, C) and ``b`` (Nb, C): indices into a, into b, cosine."""
    sim = a @ b.T
    best_b = sim.argmax(dim=1)
    best_a = sim.argmax(dim=0)
    ia = torch.nonzero(best_a[best_b] == torch.arange(a.shape[0]), as_tuple=True)[0]
    ib = best_b[ia]
    return ia, ib, sim[ia, ib]


def kmeans(x: torch.Tensor, k: int, *, iters: int = 20, seed: int = 0) -> torch.Tensor:
    """Cluster labels (N,) of the rows of ``x``: k-means++ seeding (fixed seed), then Lloyd steps."""
    n = x.shape[0]
    if k >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    centres = [x[int(torch.randint(n, (1,), generator=gen))]]
    d2 = ((x - centres[0]) ** 2).sum(dim=1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / n)
        nxt = x[int(torch.multinomial(probs, 1, generator=gen))]
        centres.append(nxt)
        d2 = torch.minimum(d2, ((x - nxt) ** 2).sum(dim=1))
    c = torch.stack(centres)
    labels = torch.cdist(x, c).argmin(dim=1)
    for _ in range(iters):
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).unsqueeze(1)
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)  # an empty cluster keeps its centre
        new = torch.cdist(x, c).argmin(dim=1)
        if torch.equal(new, labels):
            break
        labels = new
    return labels


# ---------------------------------------------------------------------------------------------- norms


MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


def robust_cutoff(values: np.ndarray, k: float) -> float:
    """median + k * (scaled MAD): above it a value is an outlier (a robust z-score above k)."""
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med))) * MAD_TO_SIGMA
    return med + k * mad if mad > 0 else med + max(abs(med), 1.0) * 1e-6
