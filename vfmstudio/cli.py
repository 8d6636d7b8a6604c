"""The ``vfmstudio`` command. Exit status: 0 success, 2 bad input, 1 internal error.

Errors are one line on stderr (``error: ...``); a traceback appears only with ``--debug``.
``vfmstudio PATH...`` (no sub-command) opens the window, like ``vfmstudio gui PATH...``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from vfmstudio import __version__
from vfmstudio.commands import COMMANDS
from vfmstudio.commands.errors import UsageError, input_error_message

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse exits with status 2 on bad arguments already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vfmstudio", description="A studio for vision foundation models.")
    parser.add_argument("--version", action="version", version=f"vfmstudio {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument(
        "--safe-mode",
        action="store_true",
        help="load built-in plugins only (same as VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD=1)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model encoders: a long warm-up that pays off only over many "
        "images, e.g. a GPU batch run (same as VFMSTUDIO_TORCH_COMPILE=1)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name in COMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _default_to_gui(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``vfmstudio [options] [PATH ...]`` means ``vfmstudio [options] gui [PATH ...]``."""
    commands = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands = set(action.choices)
    if "gui" not in commands:
        return argv
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in ("-h", "--help", "--version"):
            return argv
        i += 1
    if i == len(argv) or argv[i] not in commands:
        return argv[:i] + ["gui"] + argv[i:]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(_default_to_gui(argv, parser))
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.safe_mode:
        os.environ["VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    if args.compile:  # the environment, so batch workers (Ray actors, processes) compile too
        os.environ["VFMSTUDIO_TORCH_COMPILE"] = "1"
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the one place that turns any failure into exit 1
        if args.debug:
            traceback.print_exc()
        if (reason := input_error_message(exc)) is not None:  # a full disk, a memory bomb: exit 2
            print(f"error: {reason}", file=sys.stderr)
            return EXIT_USAGE
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"error: internal error: {type(exc).__name__}: {message} (run with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
