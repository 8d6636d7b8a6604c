"""Undoable edits of a :class:`~vfmstudio.core.annotations.LabelSet` (Qt-free).

Every edit is a :class:`Command` with ``do(labels)`` and ``undo(labels)``; ``undo`` restores the
exact previous state (order of annotations included), and ``do`` may be called again after
``undo`` (redo). Commands validate before they change anything, so a refused edit raises
:class:`~vfmstudio.core.annotations.AnnotationError` and leaves the set untouched.

The window wraps each command in a ``QUndoCommand`` whose ``redo()``/``undo()`` call ``do``/``undo``
on the project's label set; scripts and tests use :class:`UndoStack`, which has the same rules
(push does, a push after undo drops the redo tail, ``is_clean`` drives the unsaved marker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from vfmstudio.core.annotations import (
    Accepted,
    Annotation,
    AnnotationError,
    LabelClass,
    LabelSet,
    Mask,
    Shape,
    Skeleton,
)


class Command:
    """Base class. ``text`` names the edit for the undo menu ("Undo Delete 2 annotations")."""

    text: str = "Edit"

    def do(self, labels: LabelSet) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def undo(self, labels: LabelSet) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class AddAnnotations(Command):
    """Append annotations (classes they use are added too, and removed again on undo)."""

    def __init__(self, annotations: Iterable[Annotation]):
        self.annotations = list(annotations)
        ids = [a.id for a in self.annotations]
        if len(set(ids)) != len(ids):
            raise AnnotationError("the same annotation id appears twice")
        self.text = f"Add {_plural(len(self.annotations), 'annotation')}"
        self._new_classes: list[str] = []

    def do(self, labels: LabelSet) -> None:
        for a in self.annotations:
            if a.id in labels:
                raise AnnotationError(f"an annotation with id {a.id!r} already exists")
        self._new_classes = [
            n for n in dict.fromkeys(a.label for a in self.annotations) if labels.get_class(n) is None
        ]
        for name in self._new_classes:
            labels.classes.append(LabelClass(name))
        for a in self.annotations:
            labels._insert(a, None)

    def undo(self, labels: LabelSet) -> None:
        for a in reversed(self.annotations):
            labels._remove(a.id)
        for name in reversed(self._new_classes):
            labels.classes.pop(labels.class_index(name))


class RemoveAnnotations(Command):
    def __init__(self, ids: Iterable[str]):
        self.ids = list(dict.fromkeys(ids))
        self.text = f"Delete {_plural(len(self.ids), 'annotation')}"
        self._removed: list[tuple[Annotation, int]] = []

    def do(self, labels: LabelSet) -> None:
        for i in self.ids:
            labels.get(i)  # validate all before removing any
        self._removed = [labels._remove(i) for i in self.ids]

    def undo(self, labels: LabelSet) -> None:
        for ann, pos in reversed(self._removed):
            labels._insert(ann, pos)


class UpdateAnnotations(Command):
    """Replace annotations by new versions with the same ids (shape edits, class changes)."""

    def __init__(self, new: Iterable[Annotation], text: str = "Edit annotation"):
        self.new = list(new)
        self.text = text
        self._old: list[Annotation] = []
        self._new_classes: list[str] = []

    def do(self, labels: LabelSet) -> None:
        for a in self.new:
            if labels.get(a.id).image != a.image:
                raise AnnotationError(f"annotation {a.id}: cannot move between images")
        self._new_classes = [
            n for n in dict.fromkeys(a.label for a in self.new) if labels.get_class(n) is None
        ]
        for name in self._new_classes:
            labels.classes.append(LabelClass(name))
        self._old = [labels._replace(a) for a in self.new]

    def undo(self, labels: LabelSet) -> None:
        for old in reversed(self._old):
            labels._replace(old)
        for name in reversed(self._new_classes):
            labels.classes.pop(labels.class_index(name))


def set_shape(labels: LabelSet, ann_id: str, shape: Shape, text: str = "Edit shape") -> UpdateAnnotations:
    """Move, resize or reshape one annotation (box drag, vertex edit, brushed mask)."""
    return UpdateAnnotations([labels.get(ann_id).with_shape(shape)], text)


def move(labels: LabelSet, ids: Iterable[str], dx: float, dy: float) -> UpdateAnnotations:
    anns = [labels.get(i) for i in ids]
    return UpdateAnnotations(
        [a.with_shape(a.shape.translated(dx, dy)) for a in anns], f"Move {_plural(len(anns), 'annotation')}"
    )


def change_label(labels: LabelSet, ids: Iterable[str], label: str) -> UpdateAnnotations:
    label = label.strip()
    if not label:
        raise AnnotationError("a class label cannot be empty")
    anns = [labels.get(i) for i in ids]
    return UpdateAnnotations([a.with_label(label) for a in anns], f"Set class to {label}")


def paint_mask(
    labels: LabelSet, ann_id: str, stroke: np.ndarray, *, erase: bool = False
) -> UpdateAnnotations:
    """Brush (or erase) ``stroke`` pixels into a mask annotation."""
    ann = labels.get(ann_id)
    if not isinstance(ann.shape, Mask):
        raise AnnotationError(f"annotation {ann_id} is a {ann.shape.kind}, not a mask")
    arr = ann.shape.to_array()
    stroke = np.asarray(stroke, dtype=bool)
    if stroke.shape != arr.shape:
        raise AnnotationError(f"brush stroke of shape {stroke.shape} on a mask of shape {arr.shape}")
    arr = arr & ~stroke if erase else arr | stroke
    return UpdateAnnotations([ann.with_shape(Mask.from_array(arr))], "Erase mask" if erase else "Paint mask")


def brush_stroke(height: int, width: int, points: Sequence[tuple[float, float]], radius: float) -> np.ndarray:
    """Pixels within ``radius`` of a polyline through ``points`` (what a round brush covers)."""
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy = xx + 0.5, yy + 0.5
    out = np.zeros((height, width), dtype=bool)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    segs = zip(pts, pts[1:]) if len(pts) > 1 else [(pts[0], pts[0])]
    for a, b in segs:
        d = b - a
        length2 = float(d @ d)
        t = (
            np.zeros_like(cx)
            if length2 == 0
            else np.clip(((cx - a[0]) * d[0] + (cy - a[1]) * d[1]) / length2, 0, 1)
        )
        out |= (cx - a[0] - t * d[0]) ** 2 + (cy - a[1] - t * d[1]) ** 2 <= radius * radius
    return out


class SetTags(Command):
    def __init__(self, image: str, tags: Iterable[str]):
        self.image = image
        self.tags = tuple(tags)
        self.text = "Set tags"
        self._old: tuple[str, ...] = ()

    def do(self, labels: LabelSet) -> None:
        self._old = labels._set_tags(self.image, self.tags)

    def undo(self, labels: LabelSet) -> None:
        labels._set_tags(self.image, self._old)


class SetCaption(Command):
    def __init__(self, image: str, text: str):
        self.image = image
        self.caption = text
        self.text = "Set caption"
        self._old = ""

    def do(self, labels: LabelSet) -> None:
        self._old = labels._set_caption(self.image, self.caption)

    def undo(self, labels: LabelSet) -> None:
        labels._set_caption(self.image, self._old)


class AddClass(Command):
    def __init__(self, name: str, color: str = "", index: int | None = None):
        self.cls = LabelClass(name, color)
        self.index = index
        self.text = f"Add class {self.cls.name}"

    def do(self, labels: LabelSet) -> None:
        if labels.get_class(self.cls.name) is not None:
            raise AnnotationError(f"class {self.cls.name!r} already exists")
        pos = len(labels.classes) if self.index is None else self.index
        labels.classes.insert(pos, self.cls)

    def undo(self, labels: LabelSet) -> None:
        labels.classes.pop(labels.class_index(self.cls.name))


class RemoveClass(Command):
    """Remove a class and every annotation of it (undo brings both back in place)."""

    def __init__(self, name: str):
        self.name = name
        self.text = f"Remove class {name}"
        self._cls: tuple[LabelClass, int] | None = None
        self._anns: RemoveAnnotations | None = None
        self._skeleton: Skeleton | None = None

    def do(self, labels: LabelSet) -> None:
        pos = labels.class_index(self.name)
        self._anns = RemoveAnnotations([a.id for a in labels.annotations() if a.label == self.name])
        self._anns.do(labels)
        self._cls = (labels.classes.pop(pos), pos)
        self._skeleton = labels.skeletons.pop(self.name, None)

    def undo(self, labels: LabelSet) -> None:
        assert self._cls is not None and self._anns is not None
        labels.classes.insert(self._cls[1], self._cls[0])
        self._anns.undo(labels)
        _put_skeleton(labels, self.name, self._skeleton)


class EditClass(Command):
    """Rename and/or recolour a class; a rename relabels its annotations."""

    def __init__(self, name: str, *, new_name: str | None = None, color: str | None = None):
        self.name = name
        self.new_name = (new_name or name).strip()
        self.color = color
        self.text = (
            f"Rename class {name} to {self.new_name}" if self.new_name != name else f"Edit class {name}"
        )
        self._old: tuple[int, LabelClass] | None = None
        self._relabel: UpdateAnnotations | None = None

    def do(self, labels: LabelSet) -> None:
        pos = labels.class_index(self.name)
        if self.new_name != self.name and labels.get_class(self.new_name) is not None:
            raise AnnotationError(f"class {self.new_name!r} already exists")
        old = labels.classes[pos]
        new = LabelClass(self.new_name, self.color if self.color is not None else old.color)
        ids = [a.id for a in labels.annotations() if a.label == self.name]
        labels.classes[pos] = new
        self._old = (pos, old)
        self._relabel = UpdateAnnotations([labels.get(i).with_label(self.new_name) for i in ids])
        self._relabel.do(labels)
        if self.new_name != self.name and self.name in labels.skeletons:  # the poses keep their joins
            labels.skeletons[self.new_name] = labels.skeletons.pop(self.name)

    def undo(self, labels: LabelSet) -> None:
        assert self._old is not None and self._relabel is not None
        self._relabel.undo(labels)
        pos, old = self._old
        labels.classes[pos] = old
        if self.new_name != self.name and self.new_name in labels.skeletons:
            labels.skeletons[self.name] = labels.skeletons.pop(self.new_name)


class SetSkeleton(Command):
    """Give a class the keypoint names (in drawing order) and edges of its poses; None removes it.
    Existing keypoints keep their points: the skeleton names and joins them."""

    def __init__(self, name: str, skeleton: Skeleton | None):
        self.name = name
        self.skeleton = skeleton
        self.text = f"Set skeleton of {name}" if skeleton is not None else f"Remove skeleton of {name}"
        self._old: Skeleton | None = None

    def do(self, labels: LabelSet) -> None:
        labels.class_index(self.name)  # an unknown class is refused
        self._old = labels.skeletons.get(self.name)
        _put_skeleton(labels, self.name, self.skeleton)

    def undo(self, labels: LabelSet) -> None:
        _put_skeleton(labels, self.name, self._old)


def _put_skeleton(labels: LabelSet, name: str, skeleton: Skeleton | None) -> None:
    if skeleton is None:
        labels.skeletons.pop(name, None)
    else:
        labels.skeletons[name] = skeleton


class Macro(Command):
    """Several commands as one undo step; if one fails, the ones already done are undone."""

    def __init__(self, commands: Iterable[Command], text: str):
        self.commands = list(commands)
        self.text = text

    def do(self, labels: LabelSet) -> None:
        done: list[Command] = []
        try:
            for c in self.commands:
                c.do(labels)
                done.append(c)
        except Exception:
            for c in reversed(done):
                c.undo(labels)
            raise

    def undo(self, labels: LabelSet) -> None:
        for c in reversed(self.commands):
            c.undo(labels)


def accept(accepted: Accepted, labels: LabelSet, text: str = "Accept prediction") -> Macro:
    """One undoable step adding what :func:`~vfmstudio.core.annotations.accept_prediction` built.

    Tags are merged with the image's existing tags; a caption replaces the image's caption.
    """
    commands: list[Command] = []
    if accepted.annotations:
        commands.append(AddAnnotations(accepted.annotations))
    for image, tags in accepted.tags.items():
        commands.append(SetTags(image, (*labels.tags.get(image, ()), *tags)))
    for image, caption in accepted.captions.items():
        commands.append(SetCaption(image, caption))
    return Macro(commands, text)


class UndoStack:
    """A Qt-free undo stack with QUndoStack's rules, for the CLI, scripts and tests."""

    def __init__(self, labels: LabelSet, on_changed: Callable[[], None] | None = None):
        self.labels = labels
        self._commands: list[Command] = []
        self._index = 0
        self._clean: int | None = 0
        self.on_changed = on_changed

    def push(self, command: Command) -> None:
        command.do(self.labels)  # raises before anything is recorded when refused
        del self._commands[self._index :]
        if self._clean is not None and self._clean > self._index:
            self._clean = None  # the saved state can no longer be reached
        self._commands.append(command)
        self._index += 1
        self._changed()

    def undo(self) -> None:
        if not self.can_undo:
            return
        self._index -= 1
        self._commands[self._index].undo(self.labels)
        self._changed()

    def redo(self) -> None:
        if not self.can_redo:
            return
        self._commands[self._index].do(self.labels)
        self._index += 1
        self._changed()

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands)

    @property
    def index(self) -> int:
        return self._index

    def __len__(self) -> int:
        return len(self._commands)

    def undo_text(self) -> str:
        return self._commands[self._index - 1].text if self.can_undo else ""

    def redo_text(self) -> str:
        return self._commands[self._index].text if self.can_redo else ""

    def set_clean(self) -> None:
        self._clean = self._index
        self._changed()

    @property
    def is_clean(self) -> bool:
        return self._clean == self._index

    def _changed(self) -> None:
        if self.on_changed is not None:
            self.on_changed()


__all__ = [
    "AddAnnotations",
    "AddClass",
    "Command",
    "EditClass",
    "Macro",
    "RemoveAnnotations",
    "RemoveClass",
    "SetCaption",
    "SetTags",
    "UndoStack",
    "UpdateAnnotations",
    "accept",
    "brush_stroke",
    "change_label",
    "move",
    "paint_mask",
    "set_shape",
]
