"""Settings that stick, wired to the Tools dock: what the user sets for a tool is stored (in the
window's QSettings, as :class:`~vfmstudio.session.tool_settings.ToolSettings` JSON) and put back
when the tool is picked again, also after a restart (docs/adr/0121)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject

from vfmstudio.core.tools import ParamError, ToolSpec
from vfmstudio.session.tool_settings import ToolSettings

SETTINGS_KEY = "tools/choices"


class ToolMemory(QObject):
    def __init__(self, panel: Any, settings: Any, parent: QObject | None = None):
        super().__init__(parent)
        self.panel = panel
        self.settings = settings
        self.store = ToolSettings.from_json(_text(settings.value(SETTINGS_KEY)))
        self._applying = False
        panel.tool_changed.connect(self.apply)
        panel.model_combo.currentTextChanged.connect(lambda _t: self._remember(model=True))
        panel.device_combo.currentTextChanged.connect(lambda _t: self._remember())
        panel.precision_combo.currentTextChanged.connect(lambda _t: self._remember())
        panel.params_edited.connect(lambda: self._remember(params=True))

    def apply(self, tool: ToolSpec | None) -> None:
        """Show what ``tool`` was last set to (or its family's model, or its defaults)."""
        if tool is None:
            return
        choice = self.store.choice(tool)
        self._applying = True
        try:
            if choice.model:
                self.panel.set_model_ref(choice.model)
            for combo, value in (
                (self.panel.device_combo, choice.device),
                (self.panel.precision_combo, choice.precision),
            ):
                if combo.findText(value) >= 0:
                    combo.setCurrentText(value)
            if self.panel.form is not None:
                for name, value in choice.params.items():
                    self.panel.form.set_value(name, value)
        finally:
            self._applying = False
        self.store.last_tool = tool.id
        self.save()

    def restore_last_tool(self) -> bool:
        last = self.store.last_tool
        return bool(last) and self.panel.select_tool(last)

    def remember_run(self, request: Any) -> None:
        """A run keeps what it ran with (the model also becomes its family's default)."""
        self.store.remember(
            request.tool,
            model=request.model,
            device=request.device,
            precision=request.precision,
            params=request.params,
        )
        self.save()

    def _remember(self, *, model: bool = False, params: bool = False) -> None:
        tool = self.panel.tool
        if self._applying or tool is None:
            return
        values = None
        if params and self.panel.form is not None:
            try:
                values = self.panel.form.resolved()
            except ParamError:
                return  # half-typed: the last good values stay
        self.store.remember(
            tool,
            model=self.panel.model_ref() if model else None,
            device=self.panel.device_combo.currentText(),
            precision=self.panel.precision_combo.currentText(),
            params=values,
        )
        self.save()

    def save(self) -> None:
        self.settings.setValue(SETTINGS_KEY, self.store.to_json())


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
