"""The models vfmstudio knows how to use, for pickers and `vfmstudio models` (no torch, no network).

The catalogue is what the loaded plugins declare through ``vfm_register_models`` (docs/adr/0145):
the built-in plugins and any third-party one alike. Nothing here lists models itself.
"""

from __future__ import annotations

from typing import Any

from vfmstudio.core.tools import ModelSpec
from vfmstudio.ml import hub

KnownModel = ModelSpec  # former name of a catalogue entry


def __getattr__(name: str) -> Any:
    if name == "KNOWN_MODELS":  # the former closed table, now whatever the loaded plugins declare
        return known_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def known_models(host: Any = None) -> tuple[ModelSpec, ...]:
    """Every declared model, in plugin load order then declaration order."""
    if host is None:
        from vfmstudio._plugin_host import get_host

        host = get_host()
    return tuple(host.load().models.values())


def get_known(ref: str, host: Any = None) -> ModelSpec | None:
    """The catalogue entry for a hub id (a trailing ``@revision`` is ignored)."""
    repo_id = ref.split("@", 1)[0]
    return next((m for m in known_models(host) if m.ref == repo_id), None)


def models_for(family: str, host: Any = None) -> tuple[ModelSpec, ...]:
    return tuple(m for m in known_models(host) if m.family == family)


def list_models(family: str | None = None, host: Any = None) -> list[dict[str, Any]]:
    """One dict per known model: ref, family, title, size, params_millions, licence, gated, default,
    plugin, cached."""
    return [
        {**m.describe(), "cached": hub.is_cached(m.ref)}
        for m in known_models(host)
        if family is None or m.family == family
    ]
