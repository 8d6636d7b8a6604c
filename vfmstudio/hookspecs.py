"""Every hook a vfmstudio plugin can implement (``HOOK_NAMES`` is derived from this module).

Plugins implement hooks with :data:`vfmstudio.plugin_api.hookimpl`. The host calls each
implementation on its own, inside a fault boundary, and validates what comes back, so one broken
plugin cannot hide the others. Add a hook only with an ADR (docs/adr/).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

# Imported for real, not only for type checking: the host reads each registration hook's item type
# (``list[ToolSpec]``) from its annotation to validate what a plugin returns.
from vfmstudio.core.tools import FormatSpec, ModelSpec, ToolSpec

if TYPE_CHECKING:
    import numpy as np

PROJECT = "vfmstudio"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Hooks whose name starts with this take no arguments and return a list of declarations
#: (``vfm_register_<kind>() -> list[Spec]``); the host calls them once per plugin when it loads.
REGISTRATION_PREFIX = "vfm_register_"


@hookspec
def vfm_register_tools() -> list[ToolSpec]:
    """Return the tools this plugin provides.

    Each :class:`~vfmstudio.core.tools.ToolSpec` has an id ``<family>.<name>`` whose family is the
    plugin's own name (its entry-point name) or a family the plugin module declares in
    ``VFM_TOOL_FAMILIES``; a family belongs to one plugin, so none can claim another's. Tool code is named
    by ``run="module:function"`` and imported only when the tool runs, so registering is cheap:
    never import torch or load a model here.
    """


@hookspec
def vfm_register_formats() -> list[FormatSpec]:
    """Return the annotation formats (exporters and importers) this plugin provides.

    ``FormatSpec.exporter`` names an :class:`~vfmstudio.plugin_api.ExporterFunction`
    ``export(project, out_dir, params, ctx) -> None`` and ``FormatSpec.importer`` an
    :class:`~vfmstudio.plugin_api.ImporterFunction` ``import_(source, params, ctx) -> Project`` (an
    in-memory project, see :func:`vfmstudio.plugin_api.in_memory`); ``ctx`` is an
    :class:`~vfmstudio.plugin_api.ExchangeContext`. Resolve every path read from a file with
    :func:`vfmstudio.plugin_api.safe_join`. See docs/formats.md.
    """


@hookspec(firstresult=True)
def vfm_read_image(path: Path) -> np.ndarray | None:
    """Decode an image that Pillow cannot read.

    Return an (H, W, 3) uint8 RGB array, or None when the file is not yours. The first plugin
    that returns an array wins.
    """


@hookspec
def vfm_register_models() -> list[ModelSpec]:
    """Return the models this plugin offers (the model catalogue is built from these; docs/adr/0145).

    Each :class:`~vfmstudio.core.tools.ModelSpec` names a hub id, its family, title, approximate
    size, licence, whether the hub gates it and whether it is its family's default. Tools that list
    the family in ``ToolSpec.model_families`` offer the model, whichever plugin declared it. Pure
    data: never import torch or touch the network here.
    """


def _hook_names() -> tuple[str, ...]:
    marker = f"{PROJECT}_spec"  # the attribute pluggy's HookspecMarker sets
    return tuple(name for name, obj in globals().items() if name.startswith("vfm_") and hasattr(obj, marker))


#: Every hook name, derived from the specifications above (never listed by hand).
HOOK_NAMES: tuple[str, ...] = _hook_names()
