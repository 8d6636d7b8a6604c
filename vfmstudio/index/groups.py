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
        queries = np.asarray(searcher.vectors[start:start + step], dtype=np.float32)
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
        queries = np.asarray(searcher.vectors[start:start + step], dtype=np.float32)
        hits = searcher.search(queries, min(k + 1, n))
        for qi, (rows, scores) in enumerate(zip(hits.rows, hits.scores)):
            others = [s for r, s in zip(rows, scores) if r != start + qi][:k]
            out[start + qi] = float(np.mean(1.0 - np.asarray(others))) if others else 0.0
    return out
