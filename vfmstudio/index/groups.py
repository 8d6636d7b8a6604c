"""What the folder view asks of an index: duplicate groups and an outlier ranking (numpy only)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from vfmstudio.index.search import Searcher


def exact_copies(files: Mapping[str, str]) -> list[list[str]]:
    """Groups of files with the same content id (byte-identical pixels), largest groups first."""
    by_id: dict[str, list[str]] = defaultdict(list)
    for rel, image_id in files.items():
        by_id[image_id].append(rel)
    groups = [sorted(rels) for rels in by_id.values() if len(rels) > 1]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def near_duplicate_rows(searcher: Searcher, n: int, threshold: float, k: int = 10) -> list[list[int]]:
    """Groups of rows whose cosine similarity to a neighbour in the group is >= ``threshold``
    (single linkage over each row's ``k`` nearest neighbours), largest groups first."""
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    step = 1024
    for start in range(0, n, step):
        queries = np.asarray(searcher.vectors[start : start + step], dtype=np.float32)
        hits = searcher.search(queries, min(k + 1, n))
        for qi, (rows, scores) in enumerate(zip(hits.rows, hits.scores)):
            a = start + qi
            for b, score in zip(rows, scores):
                if b != a and b >= 0 and score >= threshold:
                    ra, rb = find(a), find(int(b))
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = defaultdict(list)
    for row in range(n):
        groups[find(row)].append(row)
    found = [sorted(g) for g in groups.values() if len(g) > 1]
    return sorted(found, key=lambda g: (-len(g), g[0]))


def outlier_scores(searcher: Searcher, n: int, k: int = 10) -> np.ndarray:
    """Per row, the mean cosine distance (1 - similarity) to its ``k`` nearest other rows: high = odd."""
    out = np.zeros(n, np.float32)
    if n < 2:
        return out
    step = 1024
    for start in range(0, n, step):
        queries = np.asarray(searcher.vectors[start : start + step], dtype=np.float32)
        hits = searcher.search(queries, min(k + 1, n))
        for qi, (rows, scores) in enumerate(zip(hits.rows, hits.scores)):
            others = [s for r, s in zip(rows, scores) if r != start + qi][:k]
            out[start + qi] = float(np.mean(1.0 - np.asarray(others))) if others else 0.0
    return out


def kmeans_labels(
    vectors: np.ndarray,
    k: int = 10,
    *,
    iterations: int = 20,
    fit_rows: int = 20_000,
    restarts: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """A cluster number per row, for colouring the map: k-means (k-means++ seeding, the best of
    ``restarts`` runs by inertia) fitted on at most ``fit_rows`` rows and applied to all in chunks."""
    n = vectors.shape[0]
    if n == 0:
        return np.zeros(0, np.int32)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    sample = np.asarray(vectors[np.sort(rng.choice(n, size=min(n, fit_rows), replace=False))], np.float32)
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        c = _lloyd(sample, _kmeans_pp(sample, k, rng), iterations)
        inertia = float(np.sum((sample - c[_nearest(sample, c)]) ** 2))
        if inertia < best_inertia:
            best, best_inertia = c, inertia
    if best is None:
        raise ValueError("k-means needs at least one restart")
    out = np.empty(n, np.int32)
    for start in range(0, n, 65_536):
        out[start : start + 65_536] = _nearest(np.asarray(vectors[start : start + 65_536], np.float32), best)
    return out


def _kmeans_pp(sample: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [sample[rng.integers(len(sample))]]
    dist = np.sum((sample - centres[0]) ** 2, axis=1)
    for _ in range(1, k):
        total = dist.sum()
        centres.append(
            sample[rng.choice(len(sample), p=dist / total) if total > 0 else rng.integers(len(sample))]
        )
        dist = np.minimum(dist, np.sum((sample - centres[-1]) ** 2, axis=1))
    return np.stack(centres)


def _lloyd(sample: np.ndarray, c: np.ndarray, iterations: int) -> np.ndarray:
    for _ in range(iterations):
        assign = _nearest(sample, c)
        moved = np.stack(
            [sample[assign == j].mean(axis=0) if np.any(assign == j) else c[j] for j in range(len(c))]
        )
        if np.allclose(moved, c):
            break
        c = moved
    return c


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = (x * x).sum(axis=1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(axis=1)[None, :]
    return np.argmin(d, axis=1).astype(np.int32)
