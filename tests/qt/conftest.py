"""Window fixtures: a plugin host with only the fake plugin, a folder of images, a window."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _no_prefetch(monkeypatch):
    """Window tests count forward passes per run: background prefetch (on by default) would add the
    next images' ones. test_prefetch_window turns it on through the window setting."""
    monkeypatch.setenv("VFMSTUDIO_PREFETCH", "0")


def fake_plugin_host(monkeypatch, *builtins: str):
    """A host with the fake plugin (tests/qt/fake_plugin.py) and the given built-ins only."""
    from vfmstudio._plugin_host import PluginHost

    spec = importlib.util.spec_from_file_location("fake", Path(__file__).with_name("fake_plugin.py"))
    fake_plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake_plugin)
    monkeypatch.setitem(sys.modules, "fake", fake_plugin)
    return PluginHost(builtins=("fake", *builtins), entry_points=False).load()


def build_window(qtbot, host, tmp_path, size=None):
    """A shown window on ``host`` with small caches and settings in ``tmp_path``."""
    from PySide6.QtCore import QSettings

    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.execution import Services
    from vfmstudio.qt.main_window import MainWindow

    services = Services(
        models=ByteLRUCache(1 << 28, name="models"), features=ByteLRUCache(1 << 28, name="features")
    )
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(host=host, services=services, settings=settings)
    qtbot.addWidget(w)
    if size is not None:
        w.resize(*size)
    w.show()
    qtbot.waitUntil(lambda: w.tools.tree.topLevelItemCount() > 0, timeout=5000)
    return w


@pytest.fixture
def fake_host(monkeypatch):
    return fake_plugin_host(monkeypatch)


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(64, 48), (80, 60), (40, 40)]):
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        pixels[0, 0] = (i, 100, 200)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def window(qtbot, fake_host, tmp_path):
    w = build_window(qtbot, fake_host, tmp_path)
    yield w
    w.close()
    assert w.runner.runner.pending() == 0


def open_and_wait(qtbot, window, folder, index: int = 0):
    window.open_paths([folder])
    window.browser.list.setCurrentRow(index)
    path = window.browser.paths()[index]
    qtbot.waitUntil(lambda: window.current is not None and window.current_path == path, timeout=5000)
    return window.current
