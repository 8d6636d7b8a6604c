"""The project behind the window: one label set, its undo stack, autosave, recovery on open.

Every edit is a core command (:mod:`vfmstudio.core.commands`) wrapped in a :class:`CoreCommand`
on a ``QUndoStack``; the stack's clean state is the unsaved marker and each change restarts a
single-shot autosave timer. Opening a folder uses its ``vfmstudio.json``; a missing file is
created by the first autosave, not by opening.

A corrupt file or one from a newer vfmstudio is refused and never written: the window keeps
working in an unsaved project (``read_only``: autosave and Save are off, Save As names a new
file). See ADR 0070.

Another program saving the same project (``vfmstudio import``, a second window, a sync tool) is
never overwritten: a save that finds the file changed merges the other side's changes in
(:mod:`vfmstudio.core.project_merge`) when no edit conflicts, and otherwise asks
(``ask_conflict``: merge keeping ours, save under another name, or cancel). While a project file is
open the session holds its lock file (:class:`~vfmstudio.core.project_lock.ProjectLock`), so an
import refuses to run underneath it. See ADR 0105.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from vfmstudio.core.annotations import AnnotationError, LabelSet
from vfmstudio.core.commands import Command
from vfmstudio.core.image import ImageLoadError
from vfmstudio.core.pending import copy_store
from vfmstudio.core.project import (
    DEFAULT_NAME,
    Project,
    ProjectChangedOnDisk,
    ProjectCorruptError,
    ProjectError,
    ProjectTooNewError,
    find_recovery,
    open_backup,
    open_project,
)
from vfmstudio.core.project_lock import ProjectLock, ProjectLockedError
from vfmstudio.core.project_merge import merge_from_disk

AUTOSAVE_MS = 3000
SAVE_ATTEMPTS = 3  # merge-and-save rounds before giving up on a file that keeps changing

#: What ``ask_conflict`` answers: "merge" (keep ours where both sides edited), "cancel", or the
#: path to save under instead.
ConflictAnswer = str | Path


class CoreCommand(QUndoCommand):
    """A core command on the session's label set; ``redo``/``undo`` call ``do``/``undo``."""

    def __init__(self, command: Command, labels: LabelSet, on_applied: Callable[[Command], None]):
        super().__init__(command.text)
        self.command = command
        self._labels = labels
        self._on_applied = on_applied
        self._first = True

    def redo(self) -> None:
        if self._first:  # the push already did it (so a refused edit never reaches the stack)
            self._first = False
        else:
            self.command.do(self._labels)
        self._on_applied(self.command)

    def undo(self) -> None:
        self.command.undo(self._labels)
        self._on_applied(self.command)


class ProjectSession(QObject):
    """Owns the open project. ``labels_changed`` fires after every edit, undo, redo and open."""

    labels_changed = Signal()
    project_changed = Signal()  # a different project (or the same one re-read) is open
    dirty_changed = Signal(bool)
    message = Signal(str, str)  # level, text
    saved = Signal(str)  # path

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        autosave_ms: int = AUTOSAVE_MS,
        ask_recovery: Callable[[str], bool] | None = None,
        ask_conflict: Callable[[str], ConflictAnswer] | None = None,
    ):
        super().__init__(parent)
        self.project: Project = Project(Path.cwd() / DEFAULT_NAME)
        self.read_only = True  # nothing is written until a folder or project is opened
        self.refused_reason = ""
        self.stack = QUndoStack(self)
        self.stack.cleanChanged.connect(lambda clean: self.dirty_changed.emit(not clean))
        self.stack.indexChanged.connect(self._on_index_changed)
        self.autosave = QTimer(self)
        self.autosave.setSingleShot(True)
        self.autosave.setInterval(autosave_ms)
        self.autosave.timeout.connect(self.save)
        # Asked when a backup is newer than the project (or the project is unreadable); tests
        # inject an answer instead of a modal dialog.
        self.ask_recovery = ask_recovery or (lambda message: False)
        # Asked when the file changed on disk and both sides edited the same thing.
        self.ask_conflict = ask_conflict or (lambda message: "cancel")
        self._lock: ProjectLock | None = None
        self._images_dirty = False  # image records added since the last save (not undoable)

    # ---------------------------------------------------------------- opening
    @property
    def labels(self) -> LabelSet:
        return self.project.labels

    @property
    def path(self) -> Path:
        return self.project.path

    def open(self, path: str | Path) -> bool:
        """Open a project file, or ``vfmstudio.json`` in a folder (a new project when missing).

        Returns False when the file was refused (the session then holds an unsaved project)."""
        self.flush()
        path = Path(path).absolute()
        if path.is_dir():
            path = path / DEFAULT_NAME
        ok = True
        try:
            recovery = find_recovery(path)
        except ProjectError:
            recovery = None
        project: Project | None = None
        if recovery is not None:
            when = recovery.saved.replace("T", " ")[:19] or "unknown time"
            question = (
                f"{path.name}: the backup {recovery.path.name} (revision {recovery.revision}, saved {when}) "
                f"is newer than the project or the project is unreadable. Recover from the backup?"
            )
            if self.ask_recovery(question):
                try:
                    project = open_backup(path, recovery)
                    self.message.emit("warning", f"recovered {path.name} from {recovery.path.name}")
                except ProjectError as exc:
                    self.message.emit("error", str(exc))
        if project is None:
            try:
                project = open_project(path, create=True)
            except (ProjectCorruptError, ProjectTooNewError, ProjectError) as exc:
                ok = False
                self.refused_reason = str(exc)
                self.message.emit(
                    "error",
                    f"{exc}. The file is left untouched; edits stay unsaved "
                    f"until you use File > Save Project As.",
                )
                project = Project(path)
        self._set_project(project, read_only=not ok)
        return ok

    def _set_project(self, project: Project, *, read_only: bool) -> None:
        self.autosave.stop()
        self.project = project
        self.read_only = read_only
        self._release_lock()
        if not read_only and project.path.exists():
            self._take_lock(warn=True)  # a new project's file (and lock) appear with its first save
        if not read_only:
            self.refused_reason = ""
        self._images_dirty = False
        self.stack.clear()
        self.stack.setClean()
        self.project_changed.emit()
        self.labels_changed.emit()

    # ---------------------------------------------------------------- images
    def display_key(self, path: Path) -> str:
        """The key an image has (or will get on its first edit): its path relative to the project."""
        key = self.project.key_for_path(path)
        if key is not None:
            return key
        return Path(os.path.relpath(Path(path).resolve(), self.project.root.resolve())).as_posix()

    def key_for(self, path: Path, *, add: bool = True) -> str | None:
        """The project key of an image file; adds the image to the project when ``add``."""
        key = self.project.key_for_path(path)
        if key is not None or not add:
            return key
        try:
            key = self.project.add_image(path).key
        except (OSError, ImageLoadError, ProjectError) as exc:
            self.message.emit("error", f"{path.name}: cannot add to the project ({exc})")
            return None
        self._images_dirty = True
        return key

    # ---------------------------------------------------------------- edits
    def push(self, command: Command) -> bool:
        """Apply an edit as one undo step; a refused edit is a message and changes nothing."""
        try:
            command.do(self.project.labels)
        except AnnotationError as exc:
            self.message.emit("warning", str(exc))
            return False
        self.stack.push(CoreCommand(command, self.project.labels, lambda _c: self.labels_changed.emit()))
        return True

    def _on_index_changed(self, _index: int) -> None:
        if not self.read_only:
            self.autosave.start()  # restarted by every edit: saves a few seconds after the last one

    @property
    def dirty(self) -> bool:
        return not self.stack.isClean()

    # ---------------------------------------------------------------- saving
    def save(self) -> bool:
        """Write the project atomically (core keeps the rotating backups); changes another program
        saved meanwhile are merged in first (see the module docstring)."""
        self.autosave.stop()
        if self.read_only:
            if self.dirty:
                self.message.emit(
                    "warning",
                    f"not saved: {self.refused_reason or 'no project file'}; use File > Save Project As",
                )
            return False
        for _attempt in range(SAVE_ATTEMPTS):
            try:
                self.project.save()
                break
            except ProjectChangedOnDisk as exc:
                merged = self._merge_from_disk(exc)
                if merged is not None:
                    return merged  # refused, cancelled, or saved under another name
            except (OSError, ProjectError) as exc:
                self.message.emit("error", f"could not save {self.project.path.name}: {exc}")
                return False
        else:
            self.message.emit(
                "error",
                f"could not save {self.project.path.name}: another program keeps "
                f"changing it; use File > Save Project As",
            )
            return False
        self._images_dirty = False
        self.stack.setClean()
        if self._lock is None:
            self._take_lock(warn=False)
        self.saved.emit(str(self.project.path))
        return True

    def _merge_from_disk(self, exc: ProjectChangedOnDisk) -> bool | None:
        """Bring in what another program saved; None: merged, save again. Asks first when both
        sides edited the same annotation, caption or tags."""
        name = self.project.path.name
        try:
            preview = merge_from_disk(self.project, dry_run=True)
        except ProjectError as err:
            self.message.emit(
                "error", f"could not save {name}: {exc}; the file there cannot be merged ({err})"
            )
            return False
        if preview.conflicts:
            answer = self.ask_conflict(
                f"{exc}.\n\n{preview.summary()}.\n\nMerge (keeping your version where "
                f"both changed the same thing), save under another name, or cancel?"
            )
            if answer == "cancel" or not answer:
                self.message.emit("warning", f"not saved: {exc}")
                return False
            if answer != "merge":
                return self.save_as(answer)
        report = merge_from_disk(self.project)
        if report.conflicts:  # undo steps may name annotations the merge brought back or replaced
            self.stack.clear()
        self.message.emit("warning" if report.conflicts else "info", f"{name}: {report.summary()}")
        self.labels_changed.emit()
        return None

    # ---------------------------------------------------------------- the lock file
    def _take_lock(self, *, warn: bool) -> None:
        lock = ProjectLock(self.project.path, "vfmstudio window")
        try:
            lock.acquire()
        except ProjectLockedError as exc:
            if warn:
                self.message.emit(
                    "warning",
                    f"{exc.path.name}: also open for writing by {exc.owner.describe()}; "
                    f"saves here merge in what it saves",
                )
            return
        except OSError:  # a read-only folder: saving will say so
            return
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def save_as(self, path: str | Path) -> bool:
        """Write to a new file and keep working there (also the way out of a refused project)."""
        target = Path(path).absolute()
        if target.is_dir():
            target = target / DEFAULT_NAME
        if target.exists() and target != self.project.path:
            try:
                open_project(target)
            except ProjectError as exc:
                self.message.emit("error", f"not saving over {target.name}: {exc}")
                return False
        old_root, new = self.project.root, Project(target, labels=self.project.labels)
        for rec in self.project.images.values():  # image paths stay right relative to the new folder
            try:
                new.add_image(old_root / rec.path, key=rec.key)
            except (OSError, ImageLoadError, ProjectError):
                new.images[rec.key] = rec
        new.extra = dict(self.project.extra)
        old_path = self.project.path
        self._release_lock()  # the new file's lock is taken by its first save
        self.project, self.read_only, self.refused_reason = new, False, ""
        ok = self.save()
        if ok:
            try:  # pending predictions follow the project (they sit beside its file)
                copy_store(old_path, target)
            except OSError as exc:
                self.message.emit("warning", f"{target.name}: pending predictions not copied ({exc})")
            self.project_changed.emit()
        return ok

    def flush(self) -> None:
        """Save now if anything is unsaved (window closing, another project opening, a plugin
        tool about to run, a fatal signal)."""
        if not self.read_only and (self.dirty or self.autosave.isActive()):
            self.save()

    def close(self) -> None:
        """Save what is unsaved and let go of the project's lock (the window is closing)."""
        self.flush()
        self._release_lock()
