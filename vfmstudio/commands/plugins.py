"""``vfmstudio plugins``: every plugin with its source, version, status and error."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("plugins", help="list plugins and their status")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from vfmstudio._plugin_host import get_host

    statuses = get_host().list_statuses()
    if args.json:
        print(json.dumps([s.describe() for s in statuses], indent=2))
        return 0
    for s in statuses:
        line = f"{s.name:<22} {s.source:<12} {s.version or '-':<10} {s.status}"
        if s.error:
            line += f": {s.error}"
        elif s.tools or s.formats:
            line += f" ({len(s.tools)} tools, {len(s.formats)} formats)"
        print(line)
        if s.traceback and getattr(args, "debug", False):
            print(s.traceback)
    return 0
