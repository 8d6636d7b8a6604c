"""The one atomic file writer of vfmstudio (project files, backups, batch outputs, hub refs).

A write goes to a temporary file in the target's folder (``.<name>.<random>.tmp``), is flushed and
fsynced, then moved over the target with ``os.replace`` and the folder is fsynced: readers see the
whole old or the whole new content whatever moment a crash hits, and the new content survives a
power cut once the call returns.

Permissions: ``mkstemp`` creates 0600 files; the result gets the mode of the file it replaces, or
``0666`` less the umask for a new file, like any other program's output (issue 13).

A process killed between the temp write and the replace leaves a full-size temp file behind;
:func:`remove_stale_temps` removes those of our naming pattern (callers run it when they open or
save, see docs/reliability.md).
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

_SUFFIX = ".tmp"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform/file system
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_UMASK: int | None = None


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows (``os.umask`` can
    only be read by setting it, which races with other threads creating files)."""
    global _UMASK
    try:
        with open("/proc/self/status", encoding="ascii") as fp:
            for line in fp:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    if _UMASK is None:  # no /proc: read it once by setting it back at once
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


def new_file_mode() -> int:
    """The mode a new file created by ``open()`` gets: 0666 less the umask."""
    return 0o666 & ~current_umask()


def temp_pattern(path: str | os.PathLike[str]) -> str:
    """The glob pattern of the temp files :func:`atomic_write_bytes` makes for ``path``."""
    return f".{glob.escape(Path(path).name)}.*{_SUFFIX}"


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, fsync: bool = True, mode: int | None = None
) -> None:
    """Replace ``path`` with ``data`` atomically (old or new content, never a mix).

    ``mode``: permission bits of the result; default: those of the file replaced, else 0666 less
    the umask. ``fsync=False`` skips the flushes to disk (scratch files that are cheap to redo).
    """
    path = Path(path)
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            mode = new_file_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
            fp.flush()
            if fsync:
                os.fsync(fp.fileno())
            try:
                os.fchmod(fp.fileno(), mode)
            except (AttributeError, OSError):  # no fchmod (Windows) or a file system without modes
                pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync:
        _fsync_dir(path.parent)


def atomic_write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int | None = None,
    compact: bool = False,
    fsync: bool = True,
) -> None:
    """:func:`atomic_write_bytes` of ``obj`` as UTF-8 JSON (NaN and infinity refused: not JSON)."""
    separators = (",", ":") if compact else None
    text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False, separators=separators)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"), fsync=fsync)


def remove_stale_temps(path: str | os.PathLike[str], *, older_than_s: float = 0.0) -> list[Path]:
    """Remove temp files of :func:`atomic_write_bytes` for ``path`` left by a killed writer.

    ``older_than_s``: keep younger ones (a live writer in another process may own them; callers
    holding the write lock pass 0). Returns the removed paths; errors are ignored (best effort).
    """
    path = Path(path)
    removed: list[Path] = []
    now = time.time()
    try:
        candidates = list(path.parent.glob(temp_pattern(path)))
    except OSError:
        return removed
    for tmp in candidates:
        try:
            if older_than_s and now - tmp.lstat().st_mtime < older_than_s:
                continue
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            continue
    return removed
