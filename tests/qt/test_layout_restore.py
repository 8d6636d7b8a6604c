"""A window layout saved on another screen must not squeeze the canvas to a sliver."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDockWidget

from vfmstudio.qt.main_window import MainWindow


def test_a_squeezing_saved_layout_is_unsqueezed(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.show()
    qtbot.waitExposed(first)
    side = [
        d
        for d in first.findChildren(QDockWidget)
        if first.dockWidgetArea(d) == Qt.DockWidgetArea.LeftDockWidgetArea and d.isVisible()
    ]
    first.resizeDocks(side, [first.width()], Qt.Orientation.Horizontal)  # a dock as wide as it can be
    qtbot.wait(50)
    assert first.centralWidget().width() < 0.35 * first.width()
    settings.setValue("window/state", first.saveState())
    first.close()

    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    second.show()
    qtbot.waitExposed(second)
    second.state.restore_docks()
    qtbot.waitUntil(lambda: second.centralWidget().width() >= 0.35 * second.width(), timeout=3000)
