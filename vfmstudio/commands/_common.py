"""What several commands share: the device pattern, ``--param`` and ``--timeout`` parsing, and
a one-line progress display."""

from __future__ import annotations

import re
import sys

from vfmstudio.commands.errors import UsageError

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


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
