"""The messages dock: errors, warnings and notes, newest last, never a modal dialog."""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QListWidget, QListWidgetItem, QStyle, QWidget

MAX_MESSAGES = 2000
_LEVEL_ICON = {
    "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
    "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
    "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
}


class MessagesPanel(QListWidget):
    """A bounded log list; the detail (a traceback) sits in the tooltip."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setAlternatingRowColors(True)

    def post(self, level: str, text: str, detail: str = "") -> None:
        level = level if level in _LEVEL_ICON else "info"
        item = QListWidgetItem(f"{time.strftime('%H:%M:%S')}  {text}")
        item.setIcon(QApplication.style().standardIcon(_LEVEL_ICON[level]))
        item.setData(Qt.ItemDataRole.UserRole, level)
        if detail:
            item.setToolTip(detail[-4000:])
        if level == "error":
            item.setForeground(QColor(220, 80, 70))
        self.addItem(item)
        while self.count() > MAX_MESSAGES:
            self.takeItem(0)
        self.scrollToBottom()

    def texts(self, level: str | None = None) -> list[str]:
        out = []
        for i in range(self.count()):
            item = self.item(i)
            if level is None or item.data(Qt.ItemDataRole.UserRole) == level:
                out.append(item.text().split("  ", 1)[1])
        return out


class _Relay(QObject):
    record = Signal(str, str, str)


class LogHandler(logging.Handler):
    """Forwards warnings from any thread (plugin host, jobs) into the panel via a queued signal."""

    def __init__(self, panel: MessagesPanel):
        super().__init__(logging.WARNING)
        self._relay = _Relay()
        self._relay.record.connect(panel.post, Qt.ConnectionType.QueuedConnection)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "vfmstudio.core.jobs":
            return  # the window reports every failed job itself, with its plugin named
        try:
            level = "error" if record.levelno >= logging.ERROR else "warning"
            self._relay.record.emit(level, record.getMessage(), "")
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)
