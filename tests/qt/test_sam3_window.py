"""sam.text appears in the Tools panel through the sam plugin and runs from the window on a tiny SAM 3."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QSettings

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from conftest import open_and_wait  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    from vfmstudio._plugin_host import PluginHost
    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.execution import Services
    from vfmstudio.qt.main_window import MainWindow

    host = PluginHost(builtins=("vfmstudio_sam",), entry_points=False).load()
    services = Services(
        models=ByteLRUCache(1 << 29, name="models"), features=ByteLRUCache(1 << 28, name="features")
    )
    w = MainWindow(
        host=host, services=services, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    )
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.tools.tree.topLevelItemCount() > 0, timeout=5000)
    yield w
    w.close()


def test_sam_text_runs_from_the_tools_panel(qtbot, window, tiny_model, image_folder):
    from vfmstudio.core.results import Masks

    image = open_and_wait(qtbot, window, image_folder, 2)
    assert window.tools.select_tool("sam.text")
    window.tools.set_model_ref(str(tiny_model("sam3")))
    window.tools.form.set_value("text", "red car")
    window.tools.form.set_value("threshold", 0.0)  # random weights: keep every query
    window.run_current_tool()
    qtbot.waitUntil(lambda: not window.jobs, timeout=60000)
    assert not window.messages.texts("error"), window.messages.texts("error")
    (layer,) = [layer for layer in window.layer_store.layers(image.id) if isinstance(layer.result, Masks)]
    assert len(layer.result) > 0 and set(layer.result.labels) == {"red car"}
    assert layer.result.masks.shape[1:] == (image.height, image.width)
