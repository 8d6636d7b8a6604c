"""Where a batch's images come from: a folder (recursive), a list file or a glob.

Every image becomes an :class:`Item` with a stable, file-name-safe ``key`` derived from its path
relative to the source's root. Keys are path-based rather than content-based so that the same
picture stored in two folders gets two outputs (the feature cache, keyed by content, still
computes it once), and so a run can tell which images it has finished without decoding them.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from vfmstudio.core.image import IMAGE_EXTENSIONS, list_images

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAGIC = re.compile(r"[*?\[]")
_LIST_SUFFIXES = {".txt", ".lst", ".list", ".csv", ""}
_KEY_TEXT_MAX = 100


class SourceError(ValueError):
    """SRC cannot be read as a folder, list file or glob; the message names SRC and the reason."""


@dataclass(frozen=True)
class Item:
    """One image to process: its path, its path relative to the source root, and its key."""

    path: str
    rel: str
    key: str


@dataclass(frozen=True)
class Source:
    """The resolved SRC: what the user gave, its kind, the root keys are relative to, and the items."""

    spec: str
    kind: str  # "folder" | "list" | "glob" | "file"
    root: str
    items: tuple[Item, ...]

    def identity(self) -> dict:
        """What a resumed run must share with the original one."""
        return {"spec": self.spec, "kind": self.kind, "root": self.root}


def image_key(rel: str) -> str:
    """A readable file-name-safe key for ``rel`` plus a short hash of it, so keys never collide.

    >>> image_key("cats/tabby 01.jpg")
    'cats__tabby_01.jpg-7ddcebb64d'
    """
    text = _UNSAFE.sub("_", rel.replace("\\", "/").replace("/", "__")).strip("._")[:_KEY_TEXT_MAX] or "image"
    digest = hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{text}-{digest}"


def resolve_source(spec: str | os.PathLike[str], *, limit: int | None = None) -> Source:
    """Turn SRC into items, in a stable order (``limit`` keeps the first N of that order).

    A folder is searched recursively for image files; a file with an image suffix is one image;
    any other file is a list with one path per line (relative to the list's folder; blank lines
    and ``#`` comments are skipped); anything else containing ``* ? [`` is a glob (``**`` allowed).
    Listed files that do not exist stay in the run and end up in the failures file.
    """
    text = os.fspath(spec)
    p = Path(text).expanduser()
    if p.is_dir():
        kind, root = "folder", Path(os.path.abspath(p))
        try:
            paths = list_images(p, recursive=True)
        except OSError as exc:
            raise SourceError(f"{text}: cannot list the folder ({exc.strerror or exc})") from None
    elif p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
        kind, paths = "file", [p]
        root = Path(os.path.abspath(p)).parent
    elif p.is_file():
        if p.suffix.lower() not in _LIST_SUFFIXES:
            raise SourceError(
                f"{text}: not an image, folder or list file (a list file ends in .txt, .lst or .list)"
            )
        kind, paths = "list", _read_list(p)
        root = _common_root(paths, p.resolve().parent)
    elif _MAGIC.search(text):
        kind = "glob"
        paths = sorted(
            {Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True) if os.path.isfile(m)},
            key=str,
        )
        root = _glob_root(text)
    else:
        raise SourceError(f"{text}: no such file or folder")
    if not paths:
        raise SourceError(f"{text}: no images found ({kind})")
    if limit is not None:
        paths = paths[:limit]
    items = []
    seen: set[str] = set()
    for path in paths:
        absolute = os.path.abspath(path)
        rel = _relative(absolute, root)
        if rel in seen:
            continue
        seen.add(rel)
        items.append(Item(path=absolute, rel=rel, key=image_key(rel)))
    return Source(spec=text, kind=kind, root=str(root), items=tuple(items))


def _read_list(p: Path) -> list[Path]:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"{p}: cannot read the list file ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    base = p.resolve().parent
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line).expanduser()
        out.append(entry if entry.is_absolute() else base / entry)
    return out


def _common_root(paths: list[Path], fallback: Path) -> Path:
    if not paths:
        return fallback
    try:
        return Path(os.path.commonpath([os.path.dirname(os.path.abspath(x)) for x in paths]))
    except ValueError:  # different drives on Windows: keep absolute paths as the relative part
        return Path("")


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    head = []
    for part in Path(os.path.expanduser(pattern)).parts:
        if _MAGIC.search(part):
            break
        head.append(part)
    return Path(os.path.abspath(Path(*head))) if head else Path.cwd()


def _relative(absolute: str, root: Path | str) -> str:
    if str(root):
        try:
            return Path(absolute).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(absolute).as_posix().lstrip("/")
