"""Plugin discovery, isolation and validation. Nothing else touches ``pm.hook``.

Built-in plugins are imported by module name; third-party plugins come from the entry-point group
``vfmstudio``, enumerated without loading and then loaded one by one. Every step that runs plugin
code (import, registration, each hook call) is a fault boundary: a failure is recorded against the
plugin, the plugin is skipped, and every other plugin still works.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata as md
import logging
import os
import threading
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from vfmstudio import hookspecs
from vfmstudio.core.tools import FormatSpec, ToolSpec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vfmstudio"
BUILTIN_PLUGINS = ("vfmstudio_dinov2", "vfmstudio_clip", "vfmstudio_paligemma", "vfmstudio_formats", "vfmstudio_sam")
AUTOLOAD_ENV = "VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD"
DISABLED_ENV = "VFMSTUDIO_DISABLED_PLUGINS"


@dataclass
class PluginStatus:
    name: str
    source: str  # "builtin" or "entry point"
    version: str = ""
    status: str = "pending"  # loaded | failed | disabled | skipped (safe mode)
    error: str | None = None
    traceback: str | None = None
    module: str = ""
    tools: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "version": self.version, "status": self.status,
                "error": self.error, "module": self.module, "tools": list(self.tools),
                "formats": list(self.formats)}


class PluginError(Exception):
    """Raised inside the host to mark a plugin as failed with a one-line reason."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _short_name(module_name: str) -> str:
    return module_name.removeprefix("vfmstudio_")


class PluginHost:
    """Loads plugins and holds what they registered: ``tools``, ``formats``, ``statuses``."""

    def __init__(self, *, safe_mode: bool | None = None, disabled: Iterable[str] = (),
                 builtins: Iterable[str] = BUILTIN_PLUGINS, entry_points: bool = True):
        if safe_mode is None:
            safe_mode = os.environ.get(AUTOLOAD_ENV, "").strip().lower() in {"1", "true", "yes"}
        env_disabled = {s.strip() for s in os.environ.get(DISABLED_ENV, "").split(",") if s.strip()}
        self.safe_mode = safe_mode
        self.disabled = set(disabled) | env_disabled
        self._builtins = tuple(builtins)
        self._use_entry_points = entry_points
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.statuses: dict[str, PluginStatus] = {}
        self.tools: dict[str, ToolSpec] = {}
        self.formats: dict[str, FormatSpec] = {}
        self._loaded = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    def load(self) -> PluginHost:
        with self._lock:
            if self._loaded:
                return self
            self._loaded = True
            for module_name in self._builtins:
                self._load_one(_short_name(module_name), "builtin", lambda m=module_name: importlib.import_module(m),
                               version=_dist_version("vfmstudio"), module_name=module_name)
            if self._use_entry_points:
                for ep in _entry_points():
                    dist = getattr(ep, "dist", None)
                    version = getattr(dist, "version", "") or ""
                    if self.safe_mode:
                        self.statuses[ep.name] = PluginStatus(ep.name, "entry point", version, "skipped",
                                                              "safe mode: third-party plugins are not loaded",
                                                              module=ep.value)
                        continue
                    self._load_one(ep.name, "entry point", ep.load, version=version, module_name=ep.value)
            return self

    def _load_one(self, name: str, source: str, importer, *, version: str, module_name: str) -> None:
        status = PluginStatus(name, source, version, module=module_name)
        if name in self.statuses:
            status.status, status.error = "failed", f"a plugin named '{name}' is already loaded"
            self.statuses[f"{name} ({module_name})"] = status
            return
        self.statuses[name] = status
        if name in self.disabled:
            status.status, status.error = "disabled", "disabled by the user"
            return
        try:
            plugin = importer()
            self._check_hook_names(plugin)
            tools = self._collect_tools(name, plugin)
            formats = self._collect_formats(name, plugin)
            self.pm.register(plugin, name=name)
        except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
            if isinstance(exc, KeyboardInterrupt):
                raise
            status.status = "failed"
            status.error = _one_line(exc)
            status.traceback = traceback.format_exc()
            log.info("plugin %s failed to load: %s", name, status.error)  # shown by `vfmstudio plugins`
            return
        for spec in tools:
            self.tools[spec.id] = spec
        for spec in formats:
            self.formats[spec.id] = spec
        status.tools = [t.id for t in tools]
        status.formats = [f.id for f in formats]
        status.status = "loaded"

    @staticmethod
    def _check_hook_names(plugin: Any) -> None:
        for attr in dir(plugin):
            if attr.startswith("vfm_") and callable(getattr(plugin, attr, None)) and attr not in hookspecs.HOOK_NAMES:
                guess = difflib.get_close_matches(attr, hookspecs.HOOK_NAMES, n=1)
                hint = f" (did you mean {guess[0]}?)" if guess else ""
                raise PluginError(f"unknown hook {attr}{hint}")

    def _call_own_hook(self, plugin: Any, hook: str) -> Any:
        fn = getattr(plugin, hook, None)
        if fn is None:
            return None
        return fn()

    def _collect_tools(self, name: str, plugin: Any) -> list[ToolSpec]:
        value = self._call_own_hook(plugin, "vfm_register_tools")
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            raise PluginError(f"vfm_register_tools must return a list of ToolSpec, got {type(value).__name__}")
        families = set(getattr(plugin, "VFM_TOOL_FAMILIES", ())) | {name}
        out = []
        for spec in value:
            if not isinstance(spec, ToolSpec):
                raise PluginError(f"vfm_register_tools returned a {type(spec).__name__}, expected ToolSpec")
            if spec.family not in families:
                raise PluginError(f"tool id {spec.id!r} must start with '{name}.' (the plugin's name)")
            if spec.id in self.tools or any(t.id == spec.id for t in out):
                owner = self.tools[spec.id].plugin if spec.id in self.tools else name
                raise PluginError(f"duplicate tool id {spec.id!r} (already registered by {owner})")
            out.append(dataclasses.replace(spec, plugin=name))
        return out

    def _collect_formats(self, name: str, plugin: Any) -> list[FormatSpec]:
        value = self._call_own_hook(plugin, "vfm_register_formats")
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            raise PluginError(f"vfm_register_formats must return a list of FormatSpec, got {type(value).__name__}")
        out = []
        for spec in value:
            if not isinstance(spec, FormatSpec):
                raise PluginError(f"vfm_register_formats returned a {type(spec).__name__}, expected FormatSpec")
            if spec.id in self.formats or any(f.id == spec.id for f in out):
                owner = self.formats[spec.id].plugin if spec.id in self.formats else name
                raise PluginError(f"duplicate format id {spec.id!r} (already registered by {owner})")
            out.append(dataclasses.replace(spec, plugin=name))
        return out

    # ------------------------------------------------------------------ queries
    def tool(self, tool_id: str) -> ToolSpec:
        self.load()
        try:
            return self.tools[tool_id]
        except KeyError:
            guess = difflib.get_close_matches(tool_id, list(self.tools), n=1)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            raise KeyError(f"unknown tool '{tool_id}'{hint}; see 'vfmstudio tools'") from None

    def format(self, format_id: str) -> FormatSpec:
        self.load()
        try:
            return self.formats[format_id]
        except KeyError:
            known = ", ".join(sorted(self.formats)) or "none"
            raise KeyError(f"unknown format '{format_id}' (known: {known})") from None

    def list_statuses(self) -> list[PluginStatus]:
        self.load()
        return list(self.statuses.values())

    def read_image(self, path: Path) -> Any:
        """Ask each plugin's ``vfm_read_image`` in turn; a raising plugin is logged and skipped."""
        self.load()
        import numpy as np

        for impl in self.pm.hook.vfm_read_image.get_hookimpls():
            try:
                value = impl.function(path=path)
            except Exception as exc:  # noqa: BLE001 - a plugin's failure must not stop the others
                log.warning("plugin %s failed in vfm_read_image(%s): %s", impl.plugin_name, path, _one_line(exc))
                continue
            if value is None:
                continue
            if isinstance(value, np.ndarray) and value.ndim == 3 and value.shape[2] == 3 and value.dtype == np.uint8:
                return value
            log.warning("plugin %s returned an invalid image from vfm_read_image", impl.plugin_name)
        return None


def _entry_points() -> list[md.EntryPoint]:
    try:
        eps = md.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as exc:  # noqa: BLE001 - broken metadata of one distribution must not stop start-up
        log.warning("could not enumerate plugins: %s", _one_line(exc))
        return []
    seen: set[str] = set()
    out = []
    for ep in sorted(eps, key=lambda e: e.name):
        if ep.name not in seen:  # the same distribution visible twice on sys.path
            seen.add(ep.name)
            out.append(ep)
    return out


def _dist_version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return ""


_HOST: PluginHost | None = None
_HOST_LOCK = threading.Lock()


def get_host(*, safe_mode: bool | None = None) -> PluginHost:
    """The process-wide host, loaded on first use."""
    global _HOST
    with _HOST_LOCK:
        if _HOST is None:
            _HOST = PluginHost(safe_mode=safe_mode).load()
        return _HOST


def reset_host() -> None:
    """Forget the process-wide host (tests)."""
    global _HOST
    with _HOST_LOCK:
        _HOST = None

