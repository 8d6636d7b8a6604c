"""The map while an index update runs: points appear as their vectors are stored (numpy only).

The first time at least 3 vectors are stored a PCA basis is fitted on them; every later vector is
projected with that basis, so points already drawn stay where they are while new ones arrive. The
finished update re-fits the layout on everything (``pca_2d``), which replaces this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vfmstudio.index.layout import PcaBasis, fit_pca
from vfmstudio.index.store import EmbeddingStore, FileEntry

EVERY_S = 0.5  # at most two map updates a second (each redraws every point so far)
# Redrawing N points costs the GUI thread time in proportion to N (about 1 s for 100k on a slow
# 2-core box), so big maps are updated less often: at least this many seconds per point between.
SECONDS_PER_POINT = 5e-5


@dataclass(frozen=True)
class MapGrowth:
    """The points placed so far: one per file (copies of one content share a position)."""

    rels: list[str]
    xy: np.ndarray  # (N, 2) float32


class GrowingMap:
    """Called as ``on_stored(store, files)`` by :func:`~vfmstudio.index.build.update_index`; hands a
    :class:`MapGrowth` to ``emit`` at most once per ``every_s`` seconds of ``clock`` (longer for
    big maps: ``SECONDS_PER_POINT`` per point drawn)."""

    def __init__(
        self,
        emit: Callable[[MapGrowth], None],
        *,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.emit = emit
        self.every_s = EVERY_S if every_s is None else every_s
        self.clock = clock
        self.basis: PcaBasis | None = None
        self.placed = 0  # store rows placed on the map
        self._rels: list[str] = []
        self._xy: list[np.ndarray] = []  # one (n, 2) block per update
        self._last: float | None = None
        self._rels_of: dict[str, list[str]] | None = None

    def __call__(self, store: EmbeddingStore, files: dict[str, FileEntry]) -> None:
        now = self.clock()
        wait = max(self.every_s, len(self._rels) * SECONDS_PER_POINT)
        if self._last is not None and now - self._last < wait:
            return
        n = len(store)
        if n <= self.placed:
            return
        vectors = store.vectors()
        if self.basis is None:
            self.basis = fit_pca(vectors[:n])
            if self.basis is None:
                return  # fewer than 3 vectors: nothing to lay out yet
        if self._rels_of is None:
            self._rels_of = {}
            for rel, entry in sorted(files.items()):
                self._rels_of.setdefault(entry.image_id, []).append(rel)
        xy = self.basis.project(vectors[self.placed : n])
        rows: list[int] = []
        for row, image_id in enumerate(store.ids[self.placed : n]):
            for rel in self._rels_of.get(image_id, ()):
                self._rels.append(rel)
                rows.append(row)
        self._xy.append(xy[np.asarray(rows, dtype=np.int64)].reshape(-1, 2))
        self.placed = n
        self._last = now
        self.emit(MapGrowth(list(self._rels), np.concatenate(self._xy).astype(np.float32, copy=False)))
