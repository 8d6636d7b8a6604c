"""Every hook a vfmstudio plugin can implement.

Plugins implement hooks with :data:`vfmstudio.plugin_api.hookimpl`. The host calls each
implementation on its own, inside a fault boundary, and validates what comes back, so one broken
plugin cannot hide the others. Add a hook only with an ADR (docs/adr/).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # only for annotations: keep this module free of numpy at import time
    import numpy as np

    from vfmstudio.core.tools import FormatSpec, ModelSpec, ToolSpec

PROJECT = "vfmstudio"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

HOOK_NAMES = ("vfm_register_tools", "vfm_register_formats", "vfm_read_image", "vfm_register_models")


@hookspec
def vfm_register_tools() -> list[ToolSpec]:
    """Return the tools this plugin provides.

    Each :class:`~vfmstudio.core.tools.ToolSpec` has an id ``<family>.<name>`` whose family is the
    plugin's name (or one listed in the plugin module's ``VFM_TOOL_FAMILIES``). Tool code is named
    by ``run="module:function"`` and imported only when the tool runs, so registering is cheap:
    never import torch or load a model here.
    """


@hookspec
def vfm_register_formats() -> list[FormatSpec]:
    """Return the annotation formats (exporters and importers) this plugin provides.

    ``FormatSpec.exporter`` names ``export(project, out_dir, params, ctx) -> None`` and
    ``FormatSpec.importer`` names ``import_(source, params, ctx) -> Project`` (an in-memory project,
    see :func:`vfmstudio.core.project.in_memory`); ``ctx`` is a
    :class:`vfmstudio.core.exchange.ExchangeContext`. Resolve every path read from a file with
    :func:`vfmstudio.core.exchange.safe_join`. See docs/formats.md.
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
