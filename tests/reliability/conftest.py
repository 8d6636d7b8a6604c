"""Reliability fixtures: the hostile image corpus, written once per session."""

from __future__ import annotations

import pytest

from vfmstudio.testing.hostile import CASES, build_corpus


@pytest.fixture(scope="session")
def hostile_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    build_corpus(root)
    return root


def case_ids():
    return [c.name for c in CASES]


@pytest.fixture
def faulty_host(monkeypatch):
    """A plugin host with the faulty plugin and DINOv2, installed as the process-wide host too."""
    import importlib.util
    import sys
    from pathlib import Path

    from vfmstudio import _plugin_host

    spec = importlib.util.spec_from_file_location("faulty", Path(__file__).with_name("faulty_plugin.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "faulty", module)
    host = _plugin_host.PluginHost(builtins=("faulty", "vfmstudio_dinov2"), entry_points=False).load()
    monkeypatch.setattr(_plugin_host, "_HOST", host)
    yield host
    module.HANG.set()  # let an abandoned hanging tool return
    module.LEAK.clear()


@pytest.fixture
def small_png(tmp_path):
    import numpy as np
    from PIL import Image

    def make(name="small.png", w=24, h=16, seed=0):
        path = tmp_path / name
        Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8)).save(path)
        return path

    return make


@pytest.fixture
def faulty_window(qtbot, faulty_host, tmp_path):
    """The studio window on the faulty plugin, with small caches and its own settings file."""
    from PySide6.QtCore import QSettings

    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.execution import Services
    from vfmstudio.qt.main_window import MainWindow

    services = Services(
        models=ByteLRUCache(1 << 28, name="models"), features=ByteLRUCache(1 << 22, name="features")
    )
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("prefetch/enabled", False)  # runs only what each test asks for
    w = MainWindow(host=faulty_host, services=services, settings=settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.tools.tree.topLevelItemCount() > 0, timeout=5000)
    yield w
    w.close()
