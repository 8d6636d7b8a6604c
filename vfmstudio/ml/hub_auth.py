"""The Hugging Face access token: where huggingface_hub reads it, read and stored at call time.

huggingface_hub freezes HF_HOME / HF_TOKEN_PATH into ``constants`` when it is imported; we re-read the
environment on every call (like ``hub.hub_cache_dir``) so settings and tests that move HF_HOME later are
honoured. The file format is huggingface_hub's: the bare token on one line. Never stored in a project.
"""

from __future__ import annotations

import os
from pathlib import Path

from vfmstudio.ml.errors import ModelError


def token_path() -> Path:
    """HF_TOKEN_PATH, else $HF_HOME/token, else ~/.cache/huggingface/token (huggingface_hub's rule)."""
    explicit = os.environ.get("HF_TOKEN_PATH")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        home = os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "token"


def _clean(token: str | None) -> str | None:
    return (token or "").replace("\r", "").replace("\n", "").strip() or None


def read_token() -> str | None:
    """HF_TOKEN (or the legacy HUGGING_FACE_HUB_TOKEN) first, then the token file; None when logged out."""
    env = _clean(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    if env:
        return env
    try:
        return _clean(token_path().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def store_token(token: str) -> Path:
    """Write ``token`` to the token file (mode 0600, atomic), where huggingface_hub and `hf` read it.

    No network call: huggingface_hub's ``login()`` would validate the token against the hub first, which
    the window cannot afford to block on; a wrong token shows up as a 401 on the next download instead.
    """
    token = _clean(token) or ""
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise ModelError("the access token is empty or contains spaces: paste it again")
    path = token_path()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"cannot store the access token in {path}: {exc.strerror or exc}") from exc
    return path
