"""The window's pending predictions (``window.pending``) and the image list's review states.

Owns the :class:`~vfmstudio.session.pending.PendingView` of the window's project, rebuilt when the
project changes, and keeps each image row's review state and classes up to date. After an edit,
undo or redo only the images the undo stack's commands name are recomputed (one row each); a
full pass runs only when another project opens or the labels change outside the stack (a merge
of another writer's save).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from shiboken6 import isValid

from vfmstudio.core import commands as cmd
from vfmstudio.core.image_commands import RemoveImages
from vfmstudio.core.review import SetClassMap
from vfmstudio.qt.browser import PATH_ROLE
from vfmstudio.session.pending import PendingView

if TYPE_CHECKING:
    from vfmstudio.core.pending import PendingEntry


def touched_keys(command: Any) -> set[str] | None:
    """The image keys a core command changes; None when it may change any (class edits)."""
    if isinstance(command, cmd.AddClass | cmd.RemoveClass | cmd.EditClass | SetClassMap | RemoveImages):
        return None  # RemoveImages: images leave the project, so rows change key (none)
    if isinstance(command, cmd.Macro):
        out: set[str] = set()
        for c in command.commands:
            keys = touched_keys(c)
            if keys is None:
                return None
            out |= keys
        return out
    out = set()
    for name in ("key", "image"):  # SetDecision; SetTags, SetCaption
        value = getattr(command, name, None)
        if isinstance(value, str):
            out.add(value)
    for name in ("annotations", "new"):  # AddAnnotations; UpdateAnnotations
        for ann in getattr(command, name, None) or ():
            out.add(ann.image)
    for ann, _pos in getattr(command, "_removed", None) or ():  # RemoveAnnotations (after do)
        out.add(ann.image)
    return out


class ReviewStates(QObject):
    """``pending`` follows the project; ``refreshed(keys)`` after rows were updated (None: all)."""

    refreshed = Signal(object)

    def __init__(self, window: Any):
        super().__init__(window)
        self.window = window
        self.session = window.labelling.session
        self.pending = PendingView(self.session.project)
        self._key_of: dict[str, str] = {}  # normalised absolute path -> project key
        self._path_of: dict[str, str] = {}  # project key -> the browser row's path string
        self._row_key: dict[str, str] = {}  # the browser row's path string -> project key
        self._predicted: dict[str, list[str]] | None = None  # PendingView.predicted_labels, cached
        self._index = self.session.stack.index()
        self._dirty: set[str] = set()
        self._full = True
        self._labels_seen = False
        self._choices: list[str] = []  # what the class filter offers
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)
        self._flush_timer.timeout.connect(self.flush)
        self.session.project_changed.connect(self._on_project_changed)
        self.session.labels_changed.connect(self._on_labels_changed)
        self.session.stack.indexChanged.connect(self._on_index_changed)
        window.browser.listed.connect(self._on_listed)

    # ---------------------------------------------------------------- keys and paths
    def key_of(self, path: Path | str | None) -> str | None:
        """The project key of a listed image (None when the image is not in the project)."""
        if path is None:
            return None
        key = self._row_key.get(str(path))  # a row's own path string: no normalising
        return key if key is not None else self._key_of.get(_norm(path))

    def path_of(self, key: str) -> Path | None:
        found = self._path_of.get(key)
        return Path(found) if found is not None else None

    def _map_paths(self) -> None:
        project = self.pending.project
        roots = {str(project.root.absolute())}
        try:
            roots.add(str(project.root.resolve()))
        except OSError:
            pass
        self._key_of = {}
        for rec in project.images.values():
            for root in roots:
                self._key_of[os.path.normpath(os.path.join(root, rec.path))] = rec.key
        self._path_of, self._row_key = {}, {}
        for i in range(self.window.browser.list.count()):
            path = self.window.browser.list.item(i).data(PATH_ROLE)
            key = self._key_of.get(_norm(path))
            if key is not None:
                self._path_of[key] = path
                self._row_key[path] = key

    # ---------------------------------------------------------------- updates
    def add(self, key: str, entry: PendingEntry) -> None:
        """A run finished image ``key`` (Run on All Images): its row shows it at once."""
        self.pending.add(key, entry)
        self._predicted = None
        self.refresh([key])

    def refresh(self, keys: Iterable[str] | None = None) -> None:
        """Recompute the rows of ``keys`` now (None: every row)."""
        browser = self.window.browser
        if keys is None:
            self._map_paths()
            rows = {}
            for key, path in self._path_of.items():
                rows[path] = (self.pending.state(key), frozenset(self.pending.classes(key)))
            self._choices = self.classes()
            browser.set_review(rows, self._choices)
        else:
            keys = [k for k in dict.fromkeys(keys)]
            for key in keys:
                path = self._path_of.get(key)
                if path is None and key in self.pending.project.images:
                    self._map_paths()  # an image added to the project by this edit
                    path = self._path_of.get(key)
                if path is not None:
                    classes = frozenset(self.pending.classes(key))
                    browser.update_review(path, self.pending.state(key), classes)
                    # a class new to the project (a class edit or a class map refreshes them all)
                    self._choices += sorted(classes.difference(self._choices))
            browser.set_class_choices(self._choices)
        self.refreshed.emit(None if keys is None else list(keys))

    def classes(self) -> list[str]:
        """What the class filter offers: the project's classes, then predicted labels (mapped)."""
        from vfmstudio.core.review import mapped_label

        labels = self.pending.labels
        out = dict.fromkeys(c.name for c in labels.classes)
        for tool, names in self.predicted_labels().items():
            for name in names:
                mapped = mapped_label(labels, tool, name)
                if mapped:
                    out.setdefault(mapped, None)
        return list(out)

    def predicted_labels(self) -> dict[str, list[str]]:
        """The labels each tool predicts in the project (scans every entry once per change)."""
        if self._predicted is None:
            self._predicted = self.pending.predicted_labels()
        return self._predicted

    def flush(self) -> None:
        """Apply what changed since the last flush (deferred to the end of the event-loop turn,
        so an edit's labels_changed and indexChanged make one update)."""
        self._flush_timer.stop()
        full, dirty, seen = self._full, self._dirty, self._labels_seen
        self._full, self._dirty, self._labels_seen = False, set(), False
        if full or (seen and not dirty):
            self.refresh(None)
        elif dirty:
            self.refresh(dirty)

    def _schedule(self) -> None:
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _on_project_changed(self) -> None:
        project = self.session.project
        if project is not self.pending.project:
            self.pending = PendingView(project)
            self.window.pending = self.pending
        else:
            self.pending.reload()
        self._predicted = None
        self._index = self.session.stack.index()
        self._full = True
        self._schedule()

    def _on_listed(self) -> None:
        self._full = True  # the new rows get their states at the end of this event-loop turn
        self._schedule()

    def _on_labels_changed(self) -> None:
        self._labels_seen = True
        self._schedule()

    def _on_index_changed(self, index: int) -> None:
        stack = self.session.stack
        if not isValid(stack):  # the stack says index 0 while the window is being destroyed
            return
        lo, hi = sorted((self._index, index))
        self._index = index
        for i in range(lo, hi):
            command = stack.command(i)
            keys = touched_keys(getattr(command, "command", None)) if command is not None else None
            if keys is None:
                self._full = True
                break
            self._dirty |= keys
        current = self.key_of(self.window.current_path)
        if current is not None:
            self._dirty.add(current)
        self._schedule()


def _norm(path: Path | str) -> str:
    return os.path.normpath(os.path.abspath(str(path)))
