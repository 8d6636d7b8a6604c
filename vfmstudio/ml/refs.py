"""Model references: a Hugging Face hub id (``org/name`` or ``org/name@revision``) or a local directory.

Pure string/path logic: no torch, no network.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vfmstudio.ml.errors import ModelError

# Hub naming rules: letters, digits, '-', '_', '.'; no leading/trailing '-' or '.'; at most 96 chars.
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
# A revision is a branch, a tag, a commit hash or e.g. "refs/pr/3".
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")


@dataclass(frozen=True)
class ModelRef:
    """Exactly one of ``repo_id`` (hub) or ``local_dir`` is set; ``revision`` only applies to hub ids."""

    repo_id: str | None = None
    revision: str | None = None
    local_dir: Path | None = None

    def __post_init__(self) -> None:
        if (self.repo_id is None) == (self.local_dir is None):
            raise ModelError("a model reference needs either a hub id or a local directory")
        if self.local_dir is not None and self.revision is not None:
            raise ModelError("a local model directory has no revision")

    @property
    def is_local(self) -> bool:
        return self.local_dir is not None

    @property
    def hub_id(self) -> str:
        """``repo_id`` of a hub reference (a local one has none)."""
        if self.repo_id is None:
            raise ModelError(f"'{self.local_dir}' is a local folder, not a hub model")
        return self.repo_id

    @property
    def display(self) -> str:
        """Short human name: the hub id (with revision) or the directory name."""
        if self.local_dir is not None:
            return self.local_dir.name or str(self.local_dir)
        return self.hub_id if self.revision is None else f"{self.repo_id}@{self.revision}"

    @property
    def key(self) -> tuple[str, str]:
        """Stable identity for caches: (hub id or absolute path, revision or '')."""
        if self.local_dir is not None:
            return (str(self.local_dir), "")
        return (self.repo_id or "", self.revision or "")

    def __str__(self) -> str:
        # parse_model_ref(str(ref)) == ref: local dirs are absolute, so they look like paths.
        if self.local_dir is not None:
            return str(self.local_dir)
        return self.display


def _looks_like_path(text: str) -> bool:
    if text.startswith(("/", "./", "../", "~", ".\\", "..\\")) or text in (".", ".."):
        return True
    # Windows drive letters ("C:\\models\\x"); harmless elsewhere.
    if re.match(r"^[A-Za-z]:[\\/]", text):
        return True
    return os.sep != "/" and os.sep in text


def _local_ref(text: str) -> ModelRef:
    return ModelRef(local_dir=Path(text).expanduser().resolve())


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a well-formed ``org/name`` hub id, else raise ModelError."""
    if not repo_id or repo_id != repo_id.strip() or any(c.isspace() for c in repo_id):
        raise ModelError(f"invalid model id {repo_id!r}: expected 'org/name' without spaces")
    parts = repo_id.split("/")
    if len(parts) != 2:
        raise ModelError(f"invalid model id {repo_id!r}: expected 'org/name' (or an existing directory)")
    for part in parts:
        if ".." in part or "--" in part or not _NAME_RE.match(part):
            raise ModelError(
                f"invalid model id {repo_id!r}: '{part}' may only use letters, digits, '-', '_', '.', "
                "must not start or end with '-' or '.', and must not contain '..' or '--'"
            )
    return repo_id


def validate_revision(revision: str) -> str:
    if not _REVISION_RE.match(revision) or ".." in revision or revision.endswith("/"):
        raise ModelError(f"invalid revision {revision!r}: expected a branch, tag or commit hash")
    return revision


def parse_model_ref(text: str | os.PathLike[str] | ModelRef) -> ModelRef:
    """Parse a user-provided model reference.

    An existing directory, or a path-looking string (``/``, ``./``, ``../``, ``~``), is a local model;
    anything else must be a hub id ``org/name`` optionally followed by ``@revision``.
    """
    if isinstance(text, ModelRef):
        return text
    if isinstance(text, os.PathLike):
        return _local_ref(os.fspath(text))
    if not isinstance(text, str):
        raise ModelError(f"invalid model reference {text!r}: expected a string")
    raw = text.strip()
    if not raw:
        raise ModelError("empty model reference: give a hub id like 'facebook/dinov2-small' or a directory")
    if _looks_like_path(raw):
        return _local_ref(raw)
    # A relative "org/name" that happens to be an existing folder is a local model.
    if Path(raw).is_dir():
        return _local_ref(raw)
    repo_id, sep, revision = raw.partition("@")
    validate_repo_id(repo_id)
    if sep:
        if not revision:
            raise ModelError(f"invalid model reference {raw!r}: empty revision after '@'")
        validate_revision(revision)
        return ModelRef(repo_id=repo_id, revision=revision)
    return ModelRef(repo_id=repo_id)
