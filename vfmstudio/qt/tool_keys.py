"""Single-letter tool keys (B, P, V, M, E, H, ...) work wherever focus is in the window, except
while the user types in a text field.

A list or tree with focus takes letters for its type-ahead search: it accepts the
ShortcutOverride event, and the shortcut never fires. This filter answers that event first for
plain letter keys outside text fields, so the window's shortcut wins.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)


def is_text_field(widget: QWidget | None) -> bool:
    if isinstance(widget, QLineEdit | QTextEdit | QPlainTextEdit | QAbstractSpinBox):
        return not (isinstance(widget, QTextEdit | QPlainTextEdit) and widget.isReadOnly())
    return isinstance(widget, QComboBox) and widget.isEditable()


class ToolKeys(QObject):
    def __init__(self, window: QWidget):
        super().__init__(window)
        self.window = window
        QApplication.instance().installEventFilter(self)  # Qt drops it when this object goes

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() != QEvent.Type.ShortcutOverride or not isinstance(obj, QWidget):
            return False
        text = event.text()
        plain = event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)
        if not (plain and len(text) == 1 and (text.isalnum())):
            return False
        if obj.window() is not self.window or is_text_field(obj) or is_text_field(obj.parentWidget()):
            return False
        event.ignore()  # not overridden: the window's shortcut for this key fires
        return True
