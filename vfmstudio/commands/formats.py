"""``vfmstudio formats``: the annotation formats plugins provide, with their parameters."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("formats", help="list export/import formats")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from vfmstudio._plugin_host import get_host

    formats = sorted(get_host().load().formats.values(), key=lambda f: f.id)
    if args.json:
        print(json.dumps([f.describe() for f in formats], indent=1))
        return 0
    for f in formats:
        modes = "/".join(m for m, ok in (("export", f.exporter), ("import", f.importer)) if ok)
        print(f"{f.id:<16} {modes:<14} {f.title}")
        for p in f.params:
            arg = f"--param {p.name}={p.default if p.default is not None else ''}"
            print(f"    {arg:<36} {p.help}")
    return 0
