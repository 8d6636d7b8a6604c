"""The project file: images by relative path and content hash, classes, annotations, captions.

Safety of data is this module's job:

- every write is atomic (:func:`vfmstudio.core.atomic.atomic_write_bytes`: temp file in the same
  folder, flush, fsync, ``os.replace``, fsync of the folder), so the project file always holds a
  whole old or a whole new state, whatever moment a crash hits; temp files a killed save left
  behind are removed by the next save;
- before each save the current file is kept as ``<name>.bak1`` (older ones rotate to ``.bak2``,
  ``.bak3``), each rotation step itself atomic;
- a second writer is never overwritten silently: a save first compares the file on disk with what
  this copy last read or wrote and raises :class:`ProjectChangedOnDisk` when another program
  changed it (:func:`vfmstudio.core.project_merge.merge_from_disk` brings its changes in); the
  check and the replace run inside :func:`vfmstudio.core.project_lock.save_section` (ADR 0105);
- a corrupt file, or one written by a newer vfmstudio, is refused with a one-line message and is
  never overwritten; :func:`find_recovery` offers the newest readable backup when the project is
  unreadable or a backup holds a newer revision;
- images that moved or changed since they were added are reported by :meth:`Project.check_images`;
  their annotations are kept.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vfmstudio.core.annotations import Annotation, AnnotationError, LabelSet, new_id
from vfmstudio.core.atomic import atomic_write_bytes, remove_stale_temps
from vfmstudio.core.cancel import CancelToken
from vfmstudio.core.image import DEFAULT_MAX_PIXELS, ImageLoadError, image_id_for_file, open_image
from vfmstudio.core.project_lock import save_section

DEFAULT_NAME = "vfmstudio.json"
FORMAT_NAME = "vfmstudio-project"
VERSION = 1
BACKUPS = 3
STALE_TEMP_S = 60.0  # open_project removes temp files of killed saves older than this


class ProjectError(Exception):
    """A project could not be opened or saved; ``str(e)`` is one line naming the file."""


class ProjectCorruptError(ProjectError):
    """The file is not a readable project. ``backup`` is the newest readable backup, if any."""

    def __init__(self, message: str, backup: BackupInfo | None = None):
        super().__init__(
            message
            + (
                f"; a readable backup exists: {backup.path.name} (revision {backup.revision})"
                if backup
                else ""
            )
        )
        self.backup = backup


class ProjectTooNewError(ProjectError):
    """The file was written by a newer vfmstudio (its format version is above ours)."""


class ProjectChangedOnDisk(ProjectError):
    """Another program saved the project since this copy was loaded or saved; nothing was written.

    Merge its changes with :func:`vfmstudio.core.project_merge.merge_from_disk` and save again, or
    save under another name."""

    def __init__(self, path: Path, loaded: int, on_disk: int | None):
        self.path, self.loaded, self.on_disk = path, loaded, on_disk
        disk = f"revision {on_disk}" if on_disk is not None else "a new file"
        super().__init__(
            f"{path.name}: changed on disk by another program since it was loaded (revision {loaded} "
            f"here, {disk} on disk); not saved: reload and merge, or save under another name"
        )


# ------------------------------------------------------------------------------ images


@dataclass
class ImageRecord:
    """An image of the project: ``path`` is relative to the project folder, with '/' separators."""

    key: str
    path: str
    id: str = ""  # content hash (see vfmstudio.core.image.image_id_for_file); "" when unknown
    width: int = 0
    height: int = 0
    size: int = 0
    mtime_ns: int = 0

    def to_json(self) -> dict:
        return {
            "key": self.key,
            "path": self.path,
            "id": self.id,
            "width": self.width,
            "height": self.height,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
        }

    @classmethod
    def from_json(cls, obj: Mapping) -> ImageRecord:
        path = str(obj["path"])
        # We only ever write paths relative to the project folder; an absolute one in a file is
        # hostile or foreign, and exports would copy whatever it names (docs/reliability.md).
        if not path or "\x00" in path or _absolute_anywhere(path):
            raise ValueError(f"image path {path[:200]!r} is not relative to the project folder")
        width, height = int(obj.get("width", 0)), int(obj.get("height", 0))
        if width < 0 or height < 0 or width * height > DEFAULT_MAX_PIXELS:  # exports allocate this much
            raise ValueError(
                f"image {path[:200]!r} claims {width}x{height} pixels (the limit is "
                f"{DEFAULT_MAX_PIXELS}, set VFMSTUDIO_MAX_PIXELS)"
            )
        return cls(
            key=str(obj["key"]),
            path=path,
            id=str(obj.get("id", "")),
            width=width,
            height=height,
            size=int(obj.get("size", 0)),
            mtime_ns=int(obj.get("mtime_ns", 0)),
        )


def _absolute_anywhere(path: str) -> bool:
    """Absolute or rooted on POSIX or Windows ("/x", "\\x", "//server/share", "C:x"): string tests,
    since opening a 100 000-image project checks every path (three PurePaths each cost 0.4 s for 10k)."""
    return path[0] in "/\\" or (len(path) > 1 and path[1] == ":")


@dataclass(frozen=True)
class ImageIssue:
    """``kind``: ``missing``, ``moved`` (found by content at ``found``) or ``changed`` (new content)."""

    key: str
    kind: str
    path: str
    found: str | None = None

    def __str__(self) -> str:
        if self.kind == "moved":
            return f"{self.path}: moved to {self.found}"
        if self.kind == "changed":
            return f"{self.path}: the file changed since it was added (annotations kept)"
        return f"{self.path}: missing (annotations kept)"


_EXIF_ORIENTATION = 0x0112


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the upright image, read from the header (EXIF rotation applied)."""
    from PIL import Image, UnidentifiedImageError

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO named like an image would block open()
            raise ImageLoadError(path, "not a regular file")
        with open_image(path) as im:
            w, h = im.size
            try:
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
            except Exception:  # noqa: BLE001 - a broken EXIF block must not stop the read
                orientation = 1
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(path, f"cannot read the image header ({exc})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _rel(path: Path, root: Path) -> str:
    try:
        resolved = path.resolve()
    except RuntimeError:  # Python 3.11 raises this for a symlink loop; callers handle OSError
        raise OSError(errno.ELOOP, "symbolic link loop", str(path)) from None
    return Path(os.path.relpath(resolved, root.resolve())).as_posix()


# ------------------------------------------------------------------------------ the project


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    revision: int
    saved: str


class Project:
    """A project in memory. ``path`` is the project file; images are relative to its folder."""

    def __init__(self, path: str | os.PathLike[str], *, labels: LabelSet | None = None):
        self.path = Path(path).absolute()
        self.images: dict[str, ImageRecord] = {}
        self.labels = labels if labels is not None else LabelSet()
        self.revision = 0
        self.saved = ""
        self.extra: dict[str, Any] = {}  # unknown top-level keys, written back unchanged
        # The file's bytes as this copy last read, wrote or merged them (None: no file): a save
        # replaces only that content, and they are the base of a three-way merge.
        self._base: bytes | None = None
        self._replace_unreadable = False

    @property
    def root(self) -> Path:
        return self.path.parent

    # ---------------------------------------------------------------- images
    def image_path(self, key: str) -> Path:
        return self.root / self.images[key].path

    def add_image(
        self, path: str | os.PathLike[str], *, key: str | None = None, hash_file: bool = True
    ) -> ImageRecord:
        """Add (or return the existing record of) an image file; its key defaults to its relative path.

        A relative ``path`` is relative to the project folder (not the working folder)."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        rel = _rel(p, self.root)
        for rec in self.images.values():
            if rec.path == rel:
                return rec
        key = key or rel
        if key in self.images:
            raise ProjectError(f"{self.path.name}: an image with key {key!r} is already in the project")
        st = p.stat()
        width, height = image_size(p)
        rec = ImageRecord(
            key, rel, image_id_for_file(p) if hash_file else "", width, height, st.st_size, st.st_mtime_ns
        )
        self.images[key] = rec
        return rec

    def key_for_id(self, image_id: str) -> str | None:
        for rec in self.images.values():
            if rec.id == image_id:
                return rec.key
        return None

    def key_for_path(self, path: str | os.PathLike[str]) -> str | None:
        p = Path(path)
        rel = _rel(p if p.is_absolute() else self.root / p, self.root)
        return next((r.key for r in self.images.values() if r.path == rel), None)

    def check_images(
        self, *, cancel: CancelToken | None = None, on_progress: Callable[[float, str], None] | None = None
    ) -> list[ImageIssue]:
        """Report missing, moved and changed images. Files whose size and mtime are unchanged are
        not re-hashed; a missing file is looked for by name and content under the project folder."""
        issues = []
        by_name: dict[str, list[Path]] | None = None
        n = len(self.images)
        for i, rec in enumerate(list(self.images.values())):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if on_progress is not None:
                on_progress(i / max(n, 1), rec.path)
            p = self.root / rec.path
            try:
                st = p.stat()
            except OSError:
                if by_name is None:
                    by_name = {}
                    for dirpath, _dirs, files in os.walk(self.root):
                        for f in files:
                            by_name.setdefault(f, []).append(Path(dirpath) / f)
                found = next(
                    (c for c in by_name.get(Path(rec.path).name, ()) if rec.id and _safe_id(c) == rec.id),
                    None,
                )
                issues.append(
                    ImageIssue(
                        rec.key,
                        "moved" if found else "missing",
                        rec.path,
                        _rel(found, self.root) if found else None,
                    )
                )
                continue
            if (st.st_size, st.st_mtime_ns) == (rec.size, rec.mtime_ns):
                continue
            if rec.id and _safe_id(p) != rec.id:
                issues.append(ImageIssue(rec.key, "changed", rec.path))
        return issues

    def relink(self, key: str, new_path: str | os.PathLike[str]) -> None:
        """Point an image at its new location (after a move), keeping its key and annotations."""
        rec = self.images[key]
        p = Path(new_path)
        p = p if p.is_absolute() else self.root / p
        st = p.stat()
        rec.path, rec.size, rec.mtime_ns = _rel(p, self.root), st.st_size, st.st_mtime_ns
        rec.id = image_id_for_file(p)

    def refresh(self, key: str) -> None:
        """Accept an image's new content (hash, size) after a ``changed`` report."""
        self.relink(key, self.root / self.images[key].path)
        rec = self.images[key]
        rec.width, rec.height = image_size(self.root / rec.path)

    # ---------------------------------------------------------------- merging
    def merge(
        self,
        other: Project,
        *,
        on_progress: Callable[[float, str], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> dict[str, int]:
        """Add another (imported, in-memory) project's images and labels to this one.

        Images are matched by path; annotations keep their ids unless one is taken, and one equal
        to an annotation already on the image (same class and shape) is skipped, so importing the
        same files twice adds nothing; classes new to this project are appended with their colours;
        tags are merged; captions fill empty ones.
        """
        counts = {"images": 0, "annotations": 0, "classes": 0, "duplicates": 0}
        for c in other.labels.classes:
            if self.labels.get_class(c.name) is None:
                self.labels.classes.append(c)
                counts["classes"] += 1
        for name, skeleton in other.labels.skeletons.items():
            self.labels.skeletons.setdefault(name, skeleton)
        n = len(other.images)
        for i, rec in enumerate(other.images.values()):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if on_progress is not None:
                on_progress(i / max(n, 1), rec.path)
            src = other.root / rec.path
            key = self.key_for_path(src)
            if key is None:
                if src.exists():
                    key = self.add_image(src).key
                else:  # keep the labels of a missing image; check_images reports it
                    key = _rel(src, self.root)
                    self.images[key] = ImageRecord(key, key, rec.id, rec.width, rec.height)
                counts["images"] += 1
            # one incoming annotation is matched to at most one already there: importing the same
            # files twice adds nothing, yet two identical objects in one file are both kept
            present = Counter((a.label, a.shape) for a in self.labels.annotations(key))
            for ann in other.labels.annotations(rec.key):
                if present[(ann.label, ann.shape)] > 0:
                    present[(ann.label, ann.shape)] -= 1
                    counts["duplicates"] += 1
                    continue
                new = ann if ann.id not in self.labels else _with_new_id(ann)
                self.labels._insert(_with_image(new, key), None)
                counts["annotations"] += 1
            tags = other.labels.tags.get(rec.key)
            if tags:  # _set_tags drops repeated tags
                self.labels._set_tags(key, (*self.labels.tags.get(key, ()), *tags))
            caption = other.labels.captions.get(rec.key)
            if caption and not self.labels.captions.get(key):
                self.labels._set_caption(key, caption)
            extra = other.labels.extras.get(rec.key)
            if extra:
                self.labels.extras.setdefault(key, {}).update(extra)
        return counts

    # ---------------------------------------------------------------- JSON and files
    def to_json(self) -> dict:
        return {
            **self.extra,
            "format": FORMAT_NAME,
            "version": VERSION,
            "revision": self.revision,
            "saved": self.saved,
            "images": [r.to_json() for r in self.images.values()],
            "labels": self.labels.to_json(),
        }

    @classmethod
    def from_json(cls, path: Path, obj: Any) -> Project:
        name = path.name
        if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
            raise ProjectCorruptError(f'{name}: not a vfmstudio project (no \'"format": "{FORMAT_NAME}"\')')
        version = obj.get("version")
        if not isinstance(version, int) or version < 1:
            raise ProjectCorruptError(f"{name}: the project format version is missing or invalid")
        if version > VERSION:
            raise ProjectTooNewError(
                f"{name}: written by a newer vfmstudio (project format {version}, this version "
                f"reads up to {VERSION}); upgrade vfmstudio to open it"
            )
        project = cls(path)
        try:
            for r in obj.get("images", ()):
                rec = ImageRecord.from_json(r)
                project.images[rec.key] = rec
            project.labels = LabelSet.from_json(obj.get("labels") or {})
            project.revision = int(obj.get("revision", 0))
            project.saved = str(obj.get("saved", ""))
        except (
            AnnotationError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            ArithmeticError,
            RecursionError,
        ) as exc:
            # ArithmeticError: int(1e999) overflows; every message is kept to one line.
            detail = " ".join(str(exc).split())[:300]
            raise ProjectCorruptError(
                f"{name}: invalid project content ({type(exc).__name__}: {detail})"
            ) from None
        project.extra = {
            k: v
            for k, v in obj.items()
            if k not in ("format", "version", "revision", "saved", "images", "labels")
        }
        return project

    def to_bytes(self) -> bytes:
        # Compact: five times faster to write than indented JSON, and autosave runs after every edit.
        return (json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

    def save(self) -> None:
        """Write the project atomically, keeping the previous file as ``.bak1`` (rotating).

        Raises :class:`ProjectChangedOnDisk` (writing nothing) when another program saved the file
        since this copy last read or wrote it, and :class:`ProjectError` when the file there is not
        a project we can read."""
        path = self.path
        with save_section(path.parent):
            remove_stale_temps(path)  # a killed save's leftovers; live writers wait for the section
            try:
                current: bytes | None = path.read_bytes()
            except FileNotFoundError:
                current = None
            if current is not None and current != self._base and not self._replace_unreadable:
                try:
                    on_disk = _parse(path, current)
                except ProjectError as exc:
                    raise ProjectError(f"not saving over {path.name}: {exc}") from None
                raise ProjectChangedOnDisk(
                    path, self.revision, on_disk.revision if self._base is not None else None
                )
            old_revision, old_saved = self.revision, self.saved
            self.revision += 1
            self.saved = _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")
            try:
                data = self.to_bytes()
                if current is not None and not self._replace_unreadable:
                    _rotate_backups(path)
                    atomic_write_bytes(backup_path(path, 1), current)
                elif (
                    current is not None
                ):  # the unreadable file we recovered from: keep it aside, never lose it
                    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
                    os.replace(path, path.with_name(f"{path.name}.unreadable-{stamp}"))
                atomic_write_bytes(path, data)
            except BaseException:
                self.revision, self.saved = old_revision, old_saved  # nothing new reached the project file
                raise
            self._mark_disk(data)
            self._replace_unreadable = False

    def _mark_disk(self, data: bytes | None) -> None:
        """Record ``data`` as the file's content this copy knows (read, written or merged)."""
        self._base = data


def _rotate_backups(path: Path) -> None:
    """.bak2 -> .bak3, .bak1 -> .bak2; a step whose source vanished (a writer that ignores the save
    section, or a user tidying up) is skipped rather than failing the save."""
    for i in range(BACKUPS - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.replace(backup_path(path, i), backup_path(path, i + 1))


def _read_base_and_disk(project: Project) -> tuple[Project | None, bytes | None]:
    """(the state ``project`` last knew as a parsed project or None, the file's bytes now or None)."""
    base = _parse(project.path, project._base) if project._base is not None else None
    try:
        return base, project.path.read_bytes()
    except FileNotFoundError:
        return base, None
    except OSError as exc:
        raise ProjectError(f"{project.path}: cannot read ({exc.strerror or exc})") from None


def backup_path(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.bak{n}")


def _parse(path: Path, data: bytes) -> Project:
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProjectCorruptError(f"{path.name}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ProjectCorruptError(
            f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:  # hostile nesting ([[[[...): json recurses per level
        raise ProjectCorruptError(f"{path.name}: JSON nested too deeply to be a project") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ProjectCorruptError(f"{path.name}: not valid JSON ({' '.join(str(exc).split())})") from None
    return Project.from_json(path, obj)


def _read(path: Path) -> Project:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProjectError(f"{path}: cannot read ({exc.strerror or exc})") from None
    project = _parse(path, data)
    project._mark_disk(data)
    return project


def list_backups(path: str | os.PathLike[str]) -> list[BackupInfo]:
    """Readable backups of a project, newest revision first."""
    path = Path(path).absolute()
    out = []
    for i in range(1, BACKUPS + 1):
        b = backup_path(path, i)
        if not b.exists():
            continue
        try:
            p = _read(b)
        except ProjectError:
            continue
        out.append(BackupInfo(b, p.revision, p.saved))
    return sorted(out, key=lambda b: -b.revision)


def find_recovery(path: str | os.PathLike[str]) -> BackupInfo | None:
    """The backup to offer on open: the newest readable one if the project is unreadable or a
    backup holds a later revision than the project; otherwise None."""
    path = Path(path).absolute()
    backups = list_backups(path)
    if not backups:
        return None
    try:
        project = _read(path)
    except ProjectTooNewError:
        return None
    except ProjectError:
        return backups[0]
    return backups[0] if backups[0].revision > project.revision else None


def open_project(path: str | os.PathLike[str], *, create: bool = False) -> Project:
    """Open a project file (``create``: start an empty one when the file does not exist).

    Raises :class:`ProjectCorruptError` (with the best backup named) or :class:`ProjectTooNewError`.
    """
    path = Path(path).absolute()
    if path.is_dir():
        path = path / DEFAULT_NAME
    if not path.exists():
        if not create:
            raise ProjectError(f"{path}: no such project file")
        if not path.parent.is_dir():
            raise ProjectError(f"{path}: the folder {path.parent} does not exist")
        return Project(path)
    # Temp files of a save killed mid-write; a live save is done within the minute.
    remove_stale_temps(path, older_than_s=STALE_TEMP_S)
    try:
        return _read(path)
    except ProjectCorruptError as exc:
        backups = list_backups(path)
        raise ProjectCorruptError(str(exc), backups[0] if backups else None) from None


def open_backup(path: str | os.PathLike[str], backup: BackupInfo | str | os.PathLike[str]) -> Project:
    """Load a backup as the project at ``path``. The next save writes ``path``; an unreadable
    project file there is first moved aside to ``<name>.unreadable-<time>``."""
    path = Path(path).absolute()
    b = backup.path if isinstance(backup, BackupInfo) else Path(backup)
    project = _read(b)
    project.path = path
    project._mark_disk(None)
    try:
        current = _read(path)
    except ProjectTooNewError:
        raise
    except ProjectError:
        project._replace_unreadable = path.exists()
    else:  # the user chose the backup over this readable file: the next save replaces it knowingly
        project._base = current._base
    return project


def _safe_id(p: Path) -> str:
    try:
        return image_id_for_file(p)
    except (ImageLoadError, OSError):
        return ""


def _with_image(ann: Annotation, key: str) -> Annotation:
    return ann if ann.image == key else replace(ann, image=key)


def _with_new_id(ann: Annotation) -> Annotation:
    return replace(ann, id=new_id())


def in_memory(
    root: str | os.PathLike[str], images: Iterable[ImageRecord] = (), labels: LabelSet | None = None
) -> Project:
    """A project that lives only in memory (what importers return), rooted at a dataset folder."""
    project = Project(Path(root).absolute() / DEFAULT_NAME, labels=labels)
    for rec in images:
        project.images[rec.key] = rec
    return project
