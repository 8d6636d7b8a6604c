"""Settings that stick: each tool's model, device, precision and parameters, the model last chosen
per family, and the last tool (docs/adr/0121).

Plain data in and out (:meth:`ToolSettings.to_json` / :meth:`ToolSettings.from_json`); the window
keeps the text in its QSettings, so it survives a restart and tests keep it in a temp dir.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vfmstudio.core.tools import ParamError, ParamType, ToolSpec

log = logging.getLogger(__name__)
VERSION = 1
# Points are clicks on one image: they mean nothing on the next start.
_NOT_KEPT = (ParamType.POINTS,)
MAX_KEPT_TEXT = 2000


@dataclass
class ToolChoice:
    """What a tool runs with. ``model`` None means the tool's (or its family's) default."""

    model: str | None = None
    device: str = "auto"
    precision: str = "auto"
    params: dict[str, Any] = field(default_factory=dict)


def _bulky(value: Any) -> bool:
    """Inline data (e.g. propagate's reference masks as JSON) is one run's input, not a setting."""
    return isinstance(value, str) and len(value) > MAX_KEPT_TEXT


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class ToolSettings:
    def __init__(self) -> None:
        self._tools: dict[str, dict[str, Any]] = {}
        self._family_models: dict[str, str] = {}
        self.last_tool: str | None = None

    # ------------------------------------------------------------------ remember
    def remember(
        self,
        tool: ToolSpec,
        *,
        model: str | None = None,
        device: str | None = None,
        precision: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Store what the user set for ``tool``; a model becomes its family's default too."""
        entry = self._tools.setdefault(tool.id, {})
        if model is not None:
            entry["model"] = model
            self._family_models[tool.family] = model
        if device is not None:
            entry["device"] = device
        if precision is not None:
            entry["precision"] = precision
        if params is not None:
            kept = {p.name for p in tool.params if p.type not in _NOT_KEPT}
            entry["params"] = {k: _plain(v) for k, v in params.items() if k in kept and not _bulky(v)}
        self.last_tool = tool.id

    # ------------------------------------------------------------------ recall
    def choice(self, tool: ToolSpec) -> ToolChoice:
        """What ``tool`` should show: the model chosen for it, else the model chosen last in its
        family, else its default. Parameters that no longer parse are dropped."""
        entry = self._tools.get(tool.id, {})
        takes_models = bool(tool.models) or tool.default_model is not None
        model = (entry.get("model") or self._family_models.get(tool.family)) if takes_models else None
        params: dict[str, Any] = {}
        for name, value in (entry.get("params") or {}).items():
            if name not in tool.param_names or tool.param(name).type in _NOT_KEPT:
                continue
            try:
                params[name] = tool.param(name).coerce(tuple(value) if isinstance(value, list) else value)
            except (ParamError, TypeError, ValueError) as exc:
                log.info("%s: stored %s=%r dropped: %s", tool.id, name, value, exc)
        return ToolChoice(
            model or tool.default_model,
            str(entry.get("device", "auto")),
            str(entry.get("precision", "auto")),
            params,
        )

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        return json.dumps(
            {
                "version": VERSION,
                "tools": self._tools,
                "family_models": self._family_models,
                "last_tool": self.last_tool,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> ToolSettings:
        """Settings from ``text``; anything unreadable gives the defaults (a log line, no error)."""
        out = cls()
        if not text:
            return out
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != VERSION:
                raise ValueError("not a version 1 settings object")
            tools = data.get("tools") or {}
            families = data.get("family_models") or {}
            if not isinstance(tools, dict) or not isinstance(families, dict):
                raise ValueError("tools and family_models must be objects")
            out._tools = {str(k): dict(v) for k, v in tools.items() if isinstance(v, dict)}
            out._family_models = {str(k): str(v) for k, v in families.items() if isinstance(v, str)}
            last = data.get("last_tool")
            out.last_tool = last if isinstance(last, str) else None
        except (ValueError, TypeError) as exc:
            log.warning("tool settings ignored: %s", exc)
            return cls()
        return out
