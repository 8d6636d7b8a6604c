"""Plugin discovery, isolation and validation. Nothing else touches ``pm.hook``.

Built-in plugins are imported by module name; third-party plugins come from the entry-point group
``vfmstudio``, enumerated without loading, probed once in a subprocess with a time limit (so one that
exits or hangs at import is skipped, see ``_plugin_probe``) and then loaded one by one. Every step that runs plugin
code (import, registration, each hook call) is a fault boundary: a failure is recorded against the
plugin, the plugin is skipped, and every other plugin still works.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata as md
import logging
import threading
import traceback
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from vfmstudio import hookspecs, settings
from vfmstudio.core.tools import FormatSpec, ModelSpec, ToolRegistry, ToolSpec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vfmstudio"
BUILTIN_PLUGINS = (
    "vfmstudio_dinov2",
    "vfmstudio_clip",
    "vfmstudio_paligemma",
    "vfmstudio_formats",
    "vfmstudio_sam",
)
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
    models: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)  # ids by registration kind

    def describe(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "source": self.source,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "module": self.module,
            "tools": list(self.tools),
            "formats": list(self.formats),
            "models": list(self.models),
        }
        for kind, ids in self.provides.items():
            out.setdefault(kind, list(ids))
        return out


class PluginError(Exception):
    """Raised inside the host to mark a plugin as failed with a one-line reason."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _short_name(module_name: str) -> str:
    return module_name.removeprefix("vfmstudio_")


class PluginHost:
    """Loads plugins and holds what they registered: ``tools``, ``formats``, ``statuses``."""

    def __init__(
        self,
        *,
        safe_mode: bool | None = None,
        disabled: Iterable[str] = (),
        builtins: Iterable[str] = BUILTIN_PLUGINS,
        entry_points: bool = True,
        probe_first: bool = True,
        probe_cache: Path | None = None,
    ):
        if safe_mode is None:
            safe_mode = bool(settings.get(AUTOLOAD_ENV, strict=False))
        env_disabled = set(settings.get(DISABLED_ENV))
        self.safe_mode = safe_mode
        self.disabled = set(disabled) | env_disabled
        self._builtins = tuple(builtins)
        self._use_entry_points = entry_points
        self._probe_first = probe_first  # load third-party plugins in a bounded subprocess first
        self._probe_cache = probe_cache  # None: the user's cache folder (vfmstudio._plugin_probe)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.statuses: dict[str, PluginStatus] = {}
        #: What the registration hooks returned, by kind (``vfm_register_<kind>``) and id.
        self.registered: dict[str, dict[str, Any]] = {
            hook.removeprefix(hookspecs.REGISTRATION_PREFIX): {} for hook in registration_hooks()
        }
        self.tools = ToolRegistry()  # a retired tool id (alias) finds the tool that replaced it
        self.registered["tools"] = self.tools
        self.formats: dict[str, FormatSpec] = self.registered["formats"]
        self.models: dict[str, ModelSpec] = self.registered["models"]  # the catalogue, by hub id, in order
        #: Which plugin owns each tool family (its name, or one it declared in VFM_TOOL_FAMILIES).
        self.family_owner: dict[str, str] = {}
        self._reserved: set[str] = set()
        self._loaded = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    def load(self) -> PluginHost:
        with self._lock:
            if self._loaded:
                return self
            self._loaded = True
            from vfmstudio.isolation import mark_builtin

            mark_builtin(self._builtins)  # their tools run in-process (vfmstudio.isolation)
            eps = _entry_points() if self._use_entry_points else []
            # Every plugin's name is its own tool family from the start, whatever the loading order.
            self._reserved = {_short_name(m) for m in self._builtins} | {ep.name for ep in eps}
            for module_name in self._builtins:
                self._load_one(
                    _short_name(module_name),
                    "builtin",
                    lambda m=module_name: importlib.import_module(m),
                    version=_dist_version("vfmstudio"),
                    module_name=module_name,
                )
            if self._use_entry_points:
                verdicts = self._probe(eps)
                for ep in eps:
                    dist = getattr(ep, "dist", None)
                    version = getattr(dist, "version", "") or ""
                    if self.safe_mode:
                        self.statuses[ep.name] = PluginStatus(
                            ep.name,
                            "entry point",
                            version,
                            "skipped",
                            "safe mode: third-party plugins are not loaded",
                            module=ep.value,
                        )
                        continue
                    verdict = verdicts.get(ep.name)
                    if verdict is not None and not verdict.ok and ep.name not in self.disabled:
                        self.statuses[ep.name] = PluginStatus(
                            ep.name,
                            "entry point",
                            version,
                            "failed",
                            verdict.error or "failed to load",
                            module=ep.value,
                        )
                        log.info("plugin %s skipped: %s", ep.name, verdict.error)
                        continue
                    self._load_one(ep.name, "entry point", ep.load, version=version, module_name=ep.value)
            self._offer_models()
            return self

    def _probe(self, eps: list[md.EntryPoint]) -> dict[str, Any]:
        """Verdicts from loading each new third-party plugin in a subprocess first (import-time bounds)."""
        if self.safe_mode or not self._probe_first:
            return {}
        from vfmstudio import _plugin_probe

        wanted = [ep for ep in eps if ep.name not in self.disabled and ep.name not in self.statuses]
        try:
            return _plugin_probe.probe(wanted, cache=self._probe_cache)
        except Exception as exc:  # noqa: BLE001 - e.g. no process can be started: load as before
            log.warning("could not probe third-party plugins in a subprocess: %s", _one_line(exc))
            return {}

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
        registered = False
        try:
            plugin = importer()
            self._check_hooks(plugin)
            families = self._families(name, plugin)
            self.pm.register(plugin, name=name)  # pluggy checks each hookimpl's signature against its spec
            registered = True
            provided = {hook: self._collect(name, hook, families) for hook in registration_hooks()}
        except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
            if isinstance(exc, KeyboardInterrupt):
                raise
            if registered:
                self.pm.unregister(name=name)  # a half-registered plugin is harder to reason about than none
            status.status = "failed"
            status.error = _one_line(exc)
            status.traceback = traceback.format_exc()
            log.info("plugin %s failed to load: %s", name, status.error)  # shown by `vfmstudio plugins`
            return
        for hook, specs in provided.items():
            kind = hook.removeprefix(hookspecs.REGISTRATION_PREFIX)
            table = self.registered.setdefault(kind, {})
            for spec in specs:
                if isinstance(table, ToolRegistry):
                    table.add(spec)  # its aliases too
                else:
                    table[str(_spec_key(spec))] = spec  # validated in _collect
            status.provides[kind] = [str(_spec_key(spec)) for spec in specs]
        for family in families:
            self.family_owner[family] = name
        status.tools = status.provides.get("tools", [])
        status.formats = status.provides.get("formats", [])
        status.models = status.provides.get("models", [])
        status.status = "loaded"

    @staticmethod
    def _check_hooks(plugin: Any) -> None:
        """Refuse misspelled hooks and hooks without ``@hookimpl`` (pluggy would silently ignore both)."""
        marker = f"{hookspecs.PROJECT}_impl"
        for attr in dir(plugin):
            if not (attr.startswith("vfm_") and callable(getattr(plugin, attr, None))):
                continue
            if attr not in hookspecs.HOOK_NAMES:
                guess = difflib.get_close_matches(attr, hookspecs.HOOK_NAMES, n=1)
                hint = f" (did you mean {guess[0]}?)" if guess else ""
                raise PluginError(f"unknown hook {attr}{hint}")
            if not hasattr(getattr(plugin, attr), marker):
                raise PluginError(
                    f"{attr} is not marked with @hookimpl "
                    "(from vfmstudio.plugin_api import hookimpl; put @hookimpl above it)"
                )

    def _families(self, name: str, plugin: Any) -> set[str]:
        """The tool families plugin ``name`` may use: its name and those it declares itself in
        ``VFM_TOOL_FAMILIES``. A family belongs to one plugin: another plugin's name, or a family another
        plugin declared first, is refused."""
        declared = getattr(plugin, "VFM_TOOL_FAMILIES", ())
        if isinstance(declared, str) or not all(isinstance(f, str) for f in declared):
            raise PluginError("VFM_TOOL_FAMILIES must be a tuple of family names")
        for family in declared:
            if family != name and family in self._reserved:
                raise PluginError(
                    f"tool family {family!r} is the name of another plugin; "
                    "a plugin declares only families of its own"
                )
            owner = self.family_owner.get(family)
            if owner not in (None, name):
                raise PluginError(f"tool family {family!r} belongs to plugin {owner}")
        return {name, *declared}

    def _collect(self, name: str, hook: str, families: set[str]) -> list[Any]:
        """Call plugin ``name``'s implementation of registration ``hook`` and validate the list it returns."""
        impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin_name == name]
        if not impls:
            return []
        value = impls[0].function()
        item_type = _item_type(hook)
        expected = item_type.__name__ if item_type else "declaration"
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            raise PluginError(f"{hook} must return a list of {expected}, got {type(value).__name__}")
        kind = hook.removeprefix(hookspecs.REGISTRATION_PREFIX)
        taken = self.registered.get(kind, {})
        out: list[Any] = []
        for spec in value:
            key = _spec_key(spec)
            if (item_type is not None and not isinstance(spec, item_type)) or key is None:
                raise PluginError(f"{hook} returned a {type(spec).__name__}, expected {expected}")
            for spec_id in (key, *getattr(spec, "aliases", ())):  # a tool's former ids stay its aliases
                if kind == "tools" and spec_id.split(".", 1)[0] not in families:
                    raise PluginError(
                        f"tool id {spec_id!r} must start with '{name}.' (the plugin's name) "
                        "or a family the plugin declares in VFM_TOOL_FAMILIES"
                    )
                if spec_id in taken or any(
                    spec_id in (_spec_key(s), *getattr(s, "aliases", ())) for s in out
                ):
                    owner = getattr(taken[spec_id], "plugin", "") if spec_id in taken else name
                    what = "model" if kind == "models" else f"{kind.rstrip('s')} id"
                    verb = "declared" if kind == "models" else "registered"
                    raise PluginError(f"duplicate {what} {spec_id!r} (already {verb} by {owner})")
            if (
                dataclasses.is_dataclass(spec)
                and not isinstance(spec, type)
                and any(f.name == "plugin" for f in dataclasses.fields(spec))
            ):
                spec = dataclasses.replace(spec, plugin=name)
            out.append(spec)
        return out

    def call_each(self, hook: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call every plugin's implementation of ``hook`` in turn (pluggy's order), each inside its own
        fault boundary: yields ``(plugin name, value)``; a raising plugin is logged and skipped."""
        self.load()
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:
                value = impl.function(**kwargs)
            except Exception as exc:  # noqa: BLE001 - a plugin's failure must not stop the others
                log.warning("plugin %s failed in %s: %s", impl.plugin_name, hook, _one_line(exc))
                continue
            yield impl.plugin_name, value

    def _offer_models(self) -> None:
        """Append the catalogue's models of each tool's ``model_families`` to its model list."""
        for spec in list(self.tools.values()):
            if not spec.model_families:
                continue
            declared = [
                m for family in spec.model_families for m in self.models.values() if m.family == family
            ]
            listed = {m.ref for m in spec.models}
            models = spec.models + tuple(m.choice() for m in declared if m.ref not in listed)
            default = spec.default_model or next((m.ref for m in declared if m.default), None)
            self.tools.add(
                dataclasses.replace(
                    spec, models=models, default_model=default or (models[0].ref if models else None)
                )
            )

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
        import numpy as np

        for plugin_name, value in self.call_each("vfm_read_image", path=path):
            if value is None:
                continue
            if (
                isinstance(value, np.ndarray)
                and value.ndim == 3
                and value.shape[2] == 3
                and value.dtype == np.uint8
            ):
                return value
            log.warning("plugin %s returned an invalid image from vfm_read_image", plugin_name)
        return None


def _spec_key(spec: Any) -> str | None:
    """A declaration's key: ``id`` (tools, formats) or ``ref`` (models, by hub id)."""
    for attr in ("id", "ref"):
        value = getattr(spec, attr, None)
        if isinstance(value, str):
            return value
    return None


def registration_hooks() -> tuple[str, ...]:
    """The hooks a plugin is asked once, when it loads: every ``vfm_register_<kind>`` spec."""
    return tuple(h for h in hookspecs.HOOK_NAMES if h.startswith(hookspecs.REGISTRATION_PREFIX))


@functools.cache
def _item_type(hook: str) -> type | None:
    """``X`` of the spec's ``-> list[X]`` annotation; None when it cannot be resolved (only ``.id`` is checked)."""
    try:
        hint = typing.get_type_hints(getattr(hookspecs, hook)).get("return")
    except Exception:  # noqa: BLE001 - an annotation only visible to type checkers
        return None
    args = typing.get_args(hint)
    return args[0] if args and isinstance(args[0], type) else None


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
