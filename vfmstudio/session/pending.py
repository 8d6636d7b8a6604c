"""The project's pending predictions as the window and ``vfmstudio review`` see them: entries by
image key, each image's review state, the classes on each image, and the filters of the image list.

Built from the store's index alone (no prediction file is read to open a project); a prediction is
read when an image is reviewed, and a few are kept for stepping back and forth.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from vfmstudio.core.annotations import LabelSet
from vfmstudio.core.pending import PendingEntry, PendingStore
from vfmstudio.core.project import Project
from vfmstudio.core.results import Prediction
from vfmstudio.core.review import (
    PREDICTED,
    ReviewPlan,
    accept_all,
    image_state,
    is_open,
    mapped_label,
    open_items,
    reject_all,
)

_KEEP_PREDICTIONS = 8


class PendingView:
    """Pending predictions of one project, by image key."""

    def __init__(self, project: Project, store: PendingStore | None = None):
        self.project = project
        self.store = store or PendingStore(project.path)
        self._by_key: dict[str, list[PendingEntry]] = {}
        self._predictions: OrderedDict[tuple[str, str], Prediction] = OrderedDict()
        self.reload()

    @property
    def labels(self) -> LabelSet:
        return self.project.labels

    def reload(self) -> None:
        """Read the store's index again (after a run elsewhere, or a project switch)."""
        key_of = {r.path: r.key for r in self.project.images.values()}
        self._by_key = {}
        for path, entries in self.store.load_index().items():
            key = key_of.get(path)
            if key is not None:  # a prediction for an image no longer in the project is ignored
                self._by_key[key] = entries
        self._predictions.clear()

    def add(self, key: str, entry: PendingEntry) -> None:
        """A run just wrote ``entry`` for image ``key``: replace the run's older entry, if any."""
        entries = [e for e in self._by_key.get(key, []) if e.run != entry.run]
        self._by_key[key] = [*entries, entry]
        self._predictions.pop((entry.run, key), None)

    # ------------------------------------------------------------------ reading
    def keys(self) -> list[str]:
        """Images with pending predictions (reviewed or not), in project order."""
        return [k for k in self.project.images if k in self._by_key]

    def entries(self, key: str, tool: str | None = None) -> list[PendingEntry]:
        return [e for e in self._by_key.get(key, ()) if tool is None or e.tool == tool]

    def open_entries(self, key: str, tool: str | None = None) -> list[PendingEntry]:
        return [e for e in self.entries(key, tool) if is_open(e, self.labels, key)]

    def state(self, key: str) -> str:
        return image_state(key, self._by_key.get(key, ()), self.labels)

    def states(self) -> dict[str, str]:
        return {k: self.state(k) for k in self.project.images}

    def classes(self, key: str) -> set[str]:
        """Classes on the image: its annotations' and its open predictions' (after the class map)."""
        out = {a.label for a in self.labels.annotations(key)}
        out.update(self.labels.tags.get(key, ()))
        for e in self.entries(key):  # open_items is empty for a reviewed entry: no is_open pass first
            for it in open_items(e, self.labels, key):
                if it.kind != "caption":
                    label = mapped_label(self.labels, e.tool, it.label)
                    if label is not None:
                        out.add(label)
        return out

    def predicted_labels(self, tool: str | None = None) -> dict[str, list[str]]:
        """Prediction labels seen per tool (what the class map maps), in order of appearance."""
        out: dict[str, dict[str, None]] = {}
        for entries in self._by_key.values():
            for e in entries:
                if tool is None or e.tool == tool:
                    seen = out.setdefault(e.tool, {})
                    for it in e.items:
                        if it.kind != "caption":
                            seen.setdefault(it.label, None)
        return {t: list(v) for t, v in out.items()}

    def filter(self, keys: Iterable[str], *, state: str | None = None, cls: str | None = None) -> list[str]:
        """``keys`` in the given review state and/or with class ``cls`` on them."""
        out = []
        for k in keys:
            if state is not None and self.state(k) != state:
                continue
            if cls is not None and cls not in self.classes(k):
                continue
            out.append(k)
        return out

    def next_open(self, order: list[str], current: str | None, step: int = 1) -> str | None:
        """The next (``step`` 1) or previous (-1) image in ``order`` still to review, wrapping."""
        if not order:
            return None
        start = order.index(current) if current in order else (-1 if step > 0 else 0)
        n = len(order)
        for i in range(1, n + 1):
            k = order[(start + step * i) % n]
            if k != current and self.state(k) == PREDICTED:
                return k
        return None

    def prediction(self, entry: PendingEntry, key: str) -> Prediction:
        cached = self._predictions.get((entry.run, key))
        if cached is not None:
            self._predictions.move_to_end((entry.run, key))
            return cached
        pred = self.store.load_prediction(entry)
        self._predictions[(entry.run, key)] = pred
        while len(self._predictions) > _KEEP_PREDICTIONS:
            self._predictions.popitem(last=False)
        return pred

    # ------------------------------------------------------------------ review steps
    def accept_all(
        self,
        key: str,
        *,
        tool: str | None = None,
        min_score: float | None = None,
        masks_as_polygons: bool = False,
        masks_as_rotated_boxes: bool = False,
    ) -> list[ReviewPlan]:
        """Plans (one command per run) accepting what "accept all" takes on ``key``; push them in order."""
        return [
            accept_all(
                self.labels,
                key,
                e,
                self.prediction(e, key),
                min_score=min_score,
                masks_as_polygons=masks_as_polygons,
                masks_as_rotated_boxes=masks_as_rotated_boxes,
            )
            for e in self.open_entries(key, tool)
        ]

    def reject_all(self, key: str, *, tool: str | None = None) -> list[ReviewPlan]:
        return [reject_all(self.labels, key, e) for e in self.open_entries(key, tool)]
