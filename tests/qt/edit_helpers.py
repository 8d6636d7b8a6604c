"""Shared helpers for the labelling tests: a window whose host also has the formats plugin, and
mouse gestures in image pixel coordinates."""

from __future__ import annotations

import pytest
from conftest import build_window, fake_plugin_host, open_and_wait
from PySide6.QtCore import QPoint, Qt


@pytest.fixture
def edit_host(monkeypatch):
    return fake_plugin_host(monkeypatch, "vfmstudio_formats")


@pytest.fixture
def edit_window(qtbot, edit_host, tmp_path):
    w = build_window(qtbot, edit_host, tmp_path, size=(900, 700))
    w.labelling.session.autosave.setInterval(200)  # the 3 s of the real window, shortened for tests
    yield w
    w.close()
    assert w.runner.runner.pending() == 0


open_image = open_and_wait


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
