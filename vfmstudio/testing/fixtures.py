"""Shared tiny-model directories for tests: built once per root folder, reused afterwards.

Use from a session-scoped fixture, e.g.::

    @pytest.fixture(scope="session")
    def tiny_dinov2(tmp_path_factory):
        return tiny_model_dir("dinov2", tmp_path_factory.getbasetemp() / "tiny-models")
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

_MARKER = ".vfmstudio-tiny-complete"
_LOCK = threading.Lock()


def tiny_model_dir(name: str, root: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """``root/name`` holding the tiny model ``name`` (see tiny_models.TINY_BUILDERS), built if missing.

    A marker file written last tells a complete build from one interrupted half-way; the seed is part of
    the marker so a different seed rebuilds.
    """
    from vfmstudio.testing.tiny_models import build_tiny

    dest = Path(root) / name
    marker = dest / _MARKER
    expected = f"seed={seed}\n"
    with _LOCK:
        if _complete(marker, expected):
            return dest
        # pytest-xdist workers share no lock: build in a private folder, then rename it into place.
        tmp = Path(root) / f".{name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        build_tiny(name, tmp, seed=seed)
        (tmp / _MARKER).write_text(expected)
        if dest.exists() and not _complete(marker, expected):
            shutil.rmtree(dest, ignore_errors=True)  # stale or interrupted build
        try:
            os.replace(tmp, dest)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not _complete(marker, expected):
                raise
            # else another process won the race with an identical build
        return dest


def _complete(marker: Path, expected: str) -> bool:
    try:
        return marker.read_text() == expected
    except OSError:
        return False
