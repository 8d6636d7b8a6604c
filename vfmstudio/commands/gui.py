"""``vfmstudio [gui] [PATH ...]``: open the studio window on folders or image files.

The window appears before torch is imported: nothing here or in ``vfmstudio.qt`` imports it at
module level; a model's first run does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vfmstudio.commands.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gui",
        help="open the studio window (the default command)",
        description="Open the studio window on folders and/or image files.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="folders or image files to open")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in getattr(args, "paths", []) or []]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"{missing[0]}: no such file or folder")
    try:
        from vfmstudio.qt.app import run_gui
    except ImportError as exc:  # PySide6 missing or its system libraries absent
        raise UsageError(
            f"cannot start the window: {exc} (is PySide6 installed, and a display available?)"
        ) from exc
    return run_gui(paths, safe_mode=bool(getattr(args, "safe_mode", False)))
