"""What the window keeps between sessions: geometry, dock layout, recent folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtWidgets import QDockWidget

MAX_RECENT = 8


class WindowState:
    def __init__(self, window: Any, settings: Any):
        self.w = window
        self.settings = settings

    # ---------------------------------------------------------------- recent folders
    def remember_recent(self, folder: Path) -> None:
        path = str(folder.resolve())
        recent = [path] + [p for p in self.recent() if p != path]
        self.settings.setValue("recent_folders", recent[:MAX_RECENT])
        self.refresh_recent_menu()

    def recent(self) -> list[str]:
        value = self.settings.value("recent_folders", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def refresh_recent_menu(self) -> None:
        menu = self.w.menus.recent
        menu.clear()
        for folder in self.recent():
            action = menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.w.open_paths([f]))
        menu.setEnabled(bool(self.recent()))

    # ---------------------------------------------------------------- geometry and docks
    def restore_geometry(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray | bytes):
            self.w.restoreGeometry(geometry)

    def restore_docks(self) -> None:
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray | bytes):
            self.w.restoreState(state)
            # A layout saved on another screen can squeeze the canvas to a sliver: shrink the docks
            # back rather than hide the image the user came to see.
            QTimer.singleShot(0, self.unsqueeze_canvas)

    def save(self) -> None:
        self.settings.setValue("window/geometry", self.w.saveGeometry())
        self.settings.setValue("window/state", self.w.saveState())

    def unsqueeze_canvas(self) -> None:
        w = self.w
        central = w.centralWidget()
        if central is None or not w.isVisible():
            return
        area = Qt.DockWidgetArea
        docks = [d for d in w.findChildren(QDockWidget) if d.isVisible() and not d.isFloating()]
        narrow, low = central.width() < 0.4 * w.width(), central.height() < 0.35 * w.height()
        if narrow:
            side = [
                d for d in docks if w.dockWidgetArea(d) in (area.LeftDockWidgetArea, area.RightDockWidgetArea)
            ]
            w.resizeDocks(side, [min(340, int(0.2 * w.width()))] * len(side), Qt.Orientation.Horizontal)
        if low:
            bottom = [d for d in docks if w.dockWidgetArea(d) == area.BottomDockWidgetArea]
            w.resizeDocks(bottom, [int(0.2 * w.height())] * len(bottom), Qt.Orientation.Vertical)
        if narrow or low:
            QTimer.singleShot(0, w.canvas.fit)
