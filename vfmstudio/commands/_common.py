"""What several commands share: the device pattern, ``--param`` and ``--timeout`` parsing, and
a one-line progress display."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from vfmstudio.commands.errors import UsageError

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
LOCK_WAIT_S = 5.0


@contextlib.contextmanager
def project_locked(path: Path, who: str, nothing_done: str) -> Iterator[None]:
    """Hold the project's lock for a command that writes it. A project open for writing elsewhere
    (the window, another command) is refused after LOCK_WAIT_S, never raced; a writer that ignores
    the lock is caught by the save's check (ProjectChangedOnDisk). ``nothing_done`` ends the
    refusal, e.g. "nothing was imported"."""
    from vfmstudio.core.project_lock import ProjectLock, ProjectLockedError

    lock = ProjectLock(path, who)
    try:
        lock.acquire(wait_s=LOCK_WAIT_S)
    except ProjectLockedError as exc:
        raise UsageError(f"{exc} ({nothing_done})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot lock the project ({exc.strerror or exc})") from None
    try:
        yield
    finally:
        lock.release()


def add_timeout_option(parser, what: str) -> None:
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        help=f"abandon {what} after this many seconds, 0 for no limit "
        "(default $VFMSTUDIO_TOOL_TIMEOUT_S or 900)",
    )


def timeout_from_args(args) -> float | None:
    from vfmstudio.execution import tool_timeout_s

    try:
        return tool_timeout_s(getattr(args, "timeout", None))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param expects NAME=VALUE, got {item!r}")
        params[name.strip()] = value
    return params


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = False

    def __call__(self, fraction: float | None, message: str) -> None:
        if not self.tty:
            return
        pct = "" if fraction is None else f"{fraction * 100:5.1f}% "
        sys.stderr.write(f"\r{pct}{message[:70]:<70}")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()
