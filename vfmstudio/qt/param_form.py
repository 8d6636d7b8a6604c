"""A form built from a tool's parameter declarations (the same ones the CLI parses)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)

from vfmstudio.core.tools import Param, ParamType, ToolSpec

_BIG = 1_000_000_000


def _format(value: Any, param: Param) -> str:
    if value is None:
        return ""
    if param.type is ParamType.STRLIST:
        return f"{param.sep or ','} ".join(value)
    if param.type is ParamType.POINTS:
        return "; ".join(f"{x:g},{y:g}" for x, y in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"  # a dragged threshold is 0.4172, not 0.41723456789012345
    return str(value)


class ParamForm(QWidget):
    """One editor per :class:`Param`. ``values()`` gives what ``ToolSpec.resolve_params`` takes."""

    edited = Signal()

    def __init__(self, tool: ToolSpec, parent: QWidget | None = None):
        super().__init__(parent)
        self.tool = tool
        self.editors: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for p in tool.params:
            editor = self._editor(p)
            editor.setToolTip(p.help or p.label)
            editor.setObjectName(f"param_{p.name}")
            self.editors[p.name] = editor
            layout.addRow(p.label, editor)

    def _editor(self, p: Param) -> QWidget:
        numeric_without_words = p.type in (ParamType.INT, ParamType.FLOAT) and not p.special
        if p.type is ParamType.INT and numeric_without_words:
            w = QSpinBox(self)
            w.setRange(
                int(p.minimum) if p.minimum is not None else -_BIG,
                int(p.maximum) if p.maximum is not None else _BIG,
            )
            w.setValue(int(p.default) if p.default is not None else max(0, w.minimum()))
            w.valueChanged.connect(self.edited)
            return w
        if p.type is ParamType.FLOAT and numeric_without_words:
            w = QDoubleSpinBox(self)
            w.setDecimals(4)
            w.setRange(
                p.minimum if p.minimum is not None else -1e9, p.maximum if p.maximum is not None else 1e9
            )
            span = (p.maximum - p.minimum) if p.minimum is not None and p.maximum is not None else 1.0
            w.setSingleStep(span / 100 if span > 0 else 0.01)
            w.setValue(float(p.default) if p.default is not None else max(0.0, w.minimum()))
            w.valueChanged.connect(self.edited)
            return w
        if p.type is ParamType.BOOL and p.special:  # e.g. auto / true / false
            w = QComboBox(self)
            w.addItems([*p.special, "true", "false"])
            w.setCurrentText(_format(p.default, p))
            w.currentTextChanged.connect(self.edited)
            return w
        if p.type is ParamType.BOOL:
            w = QCheckBox(self)
            w.setChecked(bool(p.default))
            w.toggled.connect(self.edited)
            return w
        if p.type is ParamType.CHOICE:
            w = QComboBox(self)
            w.addItems(list(p.choices))
            if p.default is not None:
                w.setCurrentText(str(p.default))
            w.currentTextChanged.connect(self.edited)
            return w
        if p.type is ParamType.TEXT:
            w = QPlainTextEdit(self)
            w.setPlainText(_format(p.default, p))
            w.setFixedHeight(64)
            w.textChanged.connect(self.edited)
            return w
        w = QLineEdit(self)  # STR, STRLIST, POINTS, numbers that also accept words like "auto"
        w.setText(_format(p.default, p))
        if p.type is ParamType.POINTS:
            w.setPlaceholderText("click on the image, or type x,y; x,y")
        elif p.special:
            w.setPlaceholderText(" or ".join((*p.special, p.type.value)))
        w.textChanged.connect(self.edited)
        return w

    def values(self) -> dict[str, Any]:
        """Raw values: text for free-form fields (parsed by ``resolve_params(from_text=True)``)."""
        out: dict[str, Any] = {}
        for name, w in self.editors.items():
            p = self.tool.param(name)
            if isinstance(w, QSpinBox | QDoubleSpinBox):
                out[name] = w.value()
            elif isinstance(w, QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, QComboBox):
                out[name] = w.currentText()
            elif isinstance(w, QPlainTextEdit):
                out[name] = w.toPlainText()
            elif isinstance(w, QLineEdit):
                text = w.text().strip()
                if text or p.required:
                    out[name] = text
        return out

    def set_value(self, name: str, value: Any) -> None:
        """Set an editor from a Python value (the histogram threshold, a clicked point)."""
        w = self.editors[name]
        p = self.tool.param(name)
        w.blockSignals(True)
        try:
            if isinstance(w, QSpinBox):
                w.setValue(int(value))
            elif isinstance(w, QDoubleSpinBox):
                w.setValue(float(value))
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, QComboBox):
                w.setCurrentText(_format(value, p))
            elif isinstance(w, QPlainTextEdit):
                w.setPlainText(_format(value, p))
            elif isinstance(w, QLineEdit):
                w.setText(_format(value, p) if not isinstance(value, str) else value)
        finally:
            w.blockSignals(False)

    def resolved(self) -> dict[str, Any]:
        """Typed values; raises ``ParamError`` naming the bad parameter."""
        return self.tool.resolve_params(self.values(), from_text=True)
