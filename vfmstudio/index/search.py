"""Nearest neighbours over stored vectors: exact numpy below a size, usearch's HNSW above it (ADR 0150).

Vectors are L2-normalised, so the score is the cosine similarity (inner product). The exact path scans
the memory-mapped rows in chunks (bounded memory whatever the folder size); the approximate index is
built once per store content and kept next to the vectors (``hnsw.usearch``), keyed by a digest of the
row ids, so a query after an unchanged update opens it in milliseconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Below this many vectors an exact scan is fast enough (about 5 ms for 20k x 768 on one core) and
# exact; above it, HNSW answers in well under a millisecond at recall >= 0.95 (benchmarks/bench_index.py).
EXACT_BELOW = 20_000
CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class Hits:
    """Rows and scores per query, best first: (Q, k) each."""

    rows: np.ndarray
    scores: np.ndarray


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> Hits:
    """Top-``k`` rows by inner product for each query, scanning ``vectors`` in chunks."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    n = vectors.shape[0]
    k = min(k, n)
    if k <= 0:
        return Hits(np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32))
    best_rows = np.zeros((len(queries), 0), np.int64)
    best_scores = np.zeros((len(queries), 0), np.float32)
    for start in range(0, n, CHUNK_ROWS):
        block = np.asarray(vectors[start : start + CHUNK_ROWS], dtype=np.float32)
        scores = queries @ block.T
        rows = np.broadcast_to(np.arange(start, start + block.shape[0]), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_rows = np.concatenate([best_rows, rows], axis=1)
        take = min(k, all_scores.shape[1])
        part = np.argpartition(-all_scores, take - 1, axis=1)[:, :take]
        best_scores = np.take_along_axis(all_scores, part, axis=1)
        best_rows = np.take_along_axis(all_rows, part, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return Hits(np.take_along_axis(best_rows, order, axis=1), np.take_along_axis(best_scores, order, axis=1))


class ApproximateIndex:
    """usearch HNSW over the stored rows (inner product), saved beside the vectors."""

    def __init__(self, path: Path, vectors: np.ndarray, ids_digest: str):
        from usearch.index import Index

        self.path = Path(path)
        self.vectors = vectors
        stamp = self.path.with_suffix(".digest")
        dim = int(vectors.shape[1])
        # f16 halves the graph's memory and build time at no measured recall cost on clustered embeddings.
        self.index = Index(
            ndim=dim, metric="ip", dtype="f16", connectivity=16, expansion_add=64, expansion_search=128
        )
        if self.path.exists() and stamp.exists() and stamp.read_text() == ids_digest:
            self.index.load(str(self.path))
        else:
            for start in range(0, vectors.shape[0], CHUNK_ROWS):
                block = np.ascontiguousarray(vectors[start : start + CHUNK_ROWS], dtype=np.float32)
                self.index.add(np.arange(start, start + block.shape[0], dtype=np.uint64), block)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.index.save(str(self.path))
            stamp.write_text(ids_digest)

    def search(self, queries: np.ndarray, k: int) -> Hits:
        """Candidates from the graph (twice ``k``), re-scored exactly on the float32 rows: the scores are
        exact cosines and the order is exact among the candidates."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self.index))
        if k <= 0:
            return Hits(np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32))
        found = self.index.search(queries, min(2 * k, len(self.index)))
        keys = np.asarray(found.keys, dtype=np.int64).reshape(len(queries), -1)
        rows_out = np.zeros((len(queries), k), np.int64)
        scores_out = np.zeros((len(queries), k), np.float32)
        for qi, (q, cand) in enumerate(zip(queries, keys)):
            cand = np.unique(cand[cand >= 0])
            exact = np.asarray(self.vectors[np.sort(cand)], dtype=np.float32) @ q
            cand = np.sort(cand)
            order = np.argsort(-exact, kind="stable")[:k]
            rows_out[qi, : len(order)] = cand[order]
            scores_out[qi, : len(order)] = exact[order]
        return Hits(rows_out, scores_out)


def ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


class Searcher:
    """Exact search for small stores, HNSW for large ones (``exact=True`` forces the scan)."""

    def __init__(
        self,
        vectors: np.ndarray,
        ids: list[str],
        cache_path: Path | None = None,
        *,
        exact: bool | None = None,
    ):
        self.vectors = vectors
        self.exact = (len(ids) < EXACT_BELOW) if exact is None else exact
        self._approx: ApproximateIndex | None = None
        if not self.exact and len(ids):
            path = cache_path or Path("hnsw.usearch")
            self._approx = ApproximateIndex(path, vectors, ids_digest(ids))

    def search(self, queries: np.ndarray, k: int) -> Hits:
        if self._approx is None:
            return exact_search(self.vectors, queries, k)
        return self._approx.search(queries, k)
