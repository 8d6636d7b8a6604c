"""Sub-commands of ``vfmstudio``. Each module has ``register(subparsers)``, which adds its parser
and sets ``func`` to a callable ``(args) -> int``. Modules here must import quickly: heavy work
is imported inside ``func``.

Errors: raise :class:`vfmstudio.commands.errors.UsageError` (exit 2, one line) for bad input;
anything else is an internal error (exit 1, traceback only with --debug).
Add a module to COMMANDS when it lands.
"""

COMMANDS = (
    "vfmstudio.commands.gui",
    "vfmstudio.commands.plugins",
    "vfmstudio.commands.tools",
    "vfmstudio.commands.models",
    "vfmstudio.commands.run",
    "vfmstudio.commands.batch",
    "vfmstudio.commands.review",
    "vfmstudio.commands.formats",
    "vfmstudio.commands.export",
    "vfmstudio.commands.import_",
    "vfmstudio.commands.index",
)
