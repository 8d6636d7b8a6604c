"""``vfmstudio tools``: every tool with its inputs, parameters and default model."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("tools", help="list tools with their parameters")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("tool", nargs="?", help="show one tool in detail")
    p.set_defaults(func=run)


def run(args) -> int:
    from vfmstudio._plugin_host import get_host
    from vfmstudio.commands.errors import UsageError

    host = get_host()
    tools = sorted(host.tools.values(), key=lambda t: t.id)
    if args.tool:
        try:
            tools = [host.tool(args.tool)]
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
    if args.json:
        print(json.dumps([t.describe() for t in tools], indent=2))
        return 0
    for t in tools:
        print(f"{t.id:<22} {t.title}  [{t.inputs.value}; default model: {t.default_model or '-'}]")
        if args.tool or len(tools) == 1:
            if t.description:
                print(f"    {t.description}")
            for p in t.params:
                extra = f" choices: {', '.join(p.choices)}" if p.choices else ""
                if p.minimum is not None or p.maximum is not None:
                    extra += f" range: [{p.minimum}, {p.maximum}]"
                print(f"    --param {p.name}=<{p.type.value}> (default {p.default!r}){extra}  {p.help}")
    return 0
