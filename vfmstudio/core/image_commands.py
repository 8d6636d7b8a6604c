"""Undoable edits of the project's image list (Qt-free).

Image records live in :class:`~vfmstudio.core.project.Project` (``project.images``), outside the
:class:`~vfmstudio.core.annotations.LabelSet` that every :class:`~vfmstudio.core.commands.Command`
receives; a command here therefore holds its project and refuses a label set that is not that
project's. Undo restores the records, their order and everything the label set kept for the images
(annotations in order, tags, caption, format extras, review decisions), so a removal is one step
on the window's undo stack like any label edit. Files on disk are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vfmstudio.core.annotations import Annotation, AnnotationError, LabelSet
from vfmstudio.core.commands import Command
from vfmstudio.core.project import ImageRecord, Project


@dataclass
class _Removed:
    """What the removed images held, and the dict orders to put back on undo."""

    records: dict[str, ImageRecord]
    annotations: dict[str, list[Annotation]]
    per_image: dict[str, dict[str, Any]]  # LabelSet dict attribute name -> {key: value}
    orders: dict[str, list[str]] = field(default_factory=dict)  # container name -> its keys before


# LabelSet's per-image dicts besides the annotations (which go through _insert/_remove).
_PER_IMAGE = ("tags", "captions", "extras", "decisions")


class RemoveImages(Command):
    """Remove images from the project (not from disk) with all their labels; undo puts them back."""

    def __init__(self, project: Project, keys: Iterable[str]):
        self.project = project
        self.keys = list(dict.fromkeys(keys))
        n = len(self.keys)
        self.text = f"Remove {n} image{'' if n == 1 else 's'} from the project"
        self._saved: _Removed | None = None

    def do(self, labels: LabelSet) -> None:
        if labels is not self.project.labels:
            raise AnnotationError("this removal belongs to another project")
        missing = [k for k in self.keys if k not in self.project.images]
        if missing:
            raise AnnotationError(f"{missing[0]}: not an image of the project")
        removed = _Removed(
            records={k: self.project.images[k] for k in self.keys},
            annotations={k: list(labels.annotations(k)) for k in self.keys},
            per_image={
                name: {k: getattr(labels, name)[k] for k in self.keys if k in getattr(labels, name)}
                for name in _PER_IMAGE
            },
            orders={
                "images": list(self.project.images),
                "_by_image": list(labels._by_image),
                **{name: list(getattr(labels, name)) for name in _PER_IMAGE},
            },
        )
        for key in self.keys:
            for ann in removed.annotations[key]:
                labels._remove(ann.id)
            for name in _PER_IMAGE:
                getattr(labels, name).pop(key, None)
            del self.project.images[key]
        self._saved = removed

    def undo(self, labels: LabelSet) -> None:
        removed = self._saved
        if removed is None:
            return
        self.project.images.update(removed.records)
        for key in self.keys:
            for ann in removed.annotations[key]:
                labels._insert(ann, None)
        for name, values in removed.per_image.items():
            getattr(labels, name).update(values)
        _reorder(self.project.images, removed.orders["images"])
        _reorder(labels._by_image, removed.orders["_by_image"])
        for name in _PER_IMAGE:
            _reorder(getattr(labels, name), removed.orders[name])
        self._saved = None


def _reorder(d: dict, order: list[str]) -> None:
    """Put ``d``'s keys back in ``order`` (keys not in it keep their place at the end), in place."""
    rank = {k: i for i, k in enumerate(order)}
    items = sorted(d.items(), key=lambda kv: rank.get(kv[0], len(rank)))
    d.clear()
    d.update(items)
