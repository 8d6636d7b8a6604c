"""Shared helpers for the labelling tests: a window whose host also has the formats plugin, and
mouse gestures in image pixel coordinates."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt


@pytest.fixture
def edit_host(monkeypatch):
    from vfmstudio._plugin_host import PluginHost

    spec = importlib.util.spec_from_file_location("fake", Path(__file__).with_name("fake_plugin.py"))
    fake_plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake_plugin)
    monkeypatch.setitem(sys.modules, "fake", fake_plugin)
    return PluginHost(builtins=("fake", "vfmstudio_formats"), entry_points=False).load()


@pytest.fixture
def edit_window(qtbot, edit_host, tmp_path):
    from PySide6.QtCore import QSettings

    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.execution import Services
    from vfmstudio.qt.main_window import MainWindow

    services = Services(models=ByteLRUCache(1 << 28, name="models"), features=ByteLRUCache(1 << 28, name="features"))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(host=edit_host, services=services, settings=settings)
    w.labelling.session.autosave.setInterval(200)  # the 3 s of the real window, shortened for tests
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    qtbot.waitUntil(lambda: w.tools.tree.topLevelItemCount() > 0, timeout=5000)
    yield w
    w.close()
    assert w.runner.runner.pending() == 0


def open_image(qtbot, window, folder, index: int = 0):
    window.open_paths([folder])
    window.browser.list.setCurrentRow(index)
    path = window.browser.paths()[index]
    qtbot.waitUntil(lambda: window.current is not None and window.current_path == path, timeout=5000)
    return window.current


def view_pos(window, x: float, y: float) -> QPoint:
    return window.canvas.mapFromScene(x, y)


def drag(qtbot, window, start, end, steps: int = 4) -> None:
    vp = window.canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=view_pos(window, *start))
    for i in range(1, steps + 1):
        x = start[0] + (end[0] - start[0]) * i / steps
        y = start[1] + (end[1] - start[1]) * i / steps
        qtbot.mouseMove(vp, view_pos(window, x, y))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=view_pos(window, *end))


def click(qtbot, window, x, y, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, modifier, view_pos(window, x, y))


def key(qtbot, window, k, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    window.activateWindow()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, k, modifier)
