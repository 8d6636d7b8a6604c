"""Window prefetch: after a run, the next images' features are computed in the background, so a run on
the next image needs no forward pass; the ``prefetch/enabled`` setting turns it off."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

sys.path.insert(0, str(Path(__file__).parent))
from conftest import open_and_wait  # noqa: E402


def _window(qtbot, tmp_path, enabled: bool):
    from vfmstudio._plugin_host import PluginHost
    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.execution import Services
    from vfmstudio.qt.main_window import MainWindow

    host = PluginHost(builtins=("vfmstudio_dinov2",), entry_points=False).load()
    services = Services(
        models=ByteLRUCache(1 << 29, name="models"), features=ByteLRUCache(1 << 28, name="features")
    )
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings.setValue("prefetch/enabled", enabled)
    w = MainWindow(host=host, services=services, settings=settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.tools.tree.topLevelItemCount() > 0, timeout=5000)
    return w


@pytest.mark.parametrize("enabled", [True, False])
def test_stepping_to_the_next_image_after_a_run(
    qtbot, tmp_path, tiny_model, image_folder, monkeypatch, enabled
):
    import transformers.models.dinov2.modeling_dinov2 as modeling

    calls = {"n": 0}
    forward = modeling.Dinov2Model.forward

    def counting_forward(self, *args, **kwargs):
        calls["n"] += 1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(modeling.Dinov2Model, "forward", counting_forward)
    window = _window(qtbot, tmp_path, enabled)
    try:
        assert window.prefetcher.enabled is enabled
        open_and_wait(qtbot, window, image_folder, 0)
        assert window.tools.select_tool("dinov2.pca")
        window.tools.set_model_ref(str(tiny_model("dinov2")))
        window.tools.form.set_value("resolution", 56)
        window.run_current_tool()
        qtbot.waitUntil(lambda: not window.jobs and not window.prefetcher.pending(), timeout=60000)
        assert not window.messages.texts("error"), window.messages.texts("error")
        after_first = calls["n"]
        assert after_first == (3 if enabled else 1)  # the run, then images 1 and 2 (the folder has 3)

        window.browser.step(+1)
        qtbot.waitUntil(
            lambda: window.current is not None and window.current_path == window.browser.paths()[1],
            timeout=5000,
        )
        window.run_current_tool()
        qtbot.waitUntil(lambda: not window.jobs and not window.prefetcher.pending(), timeout=60000)
        assert not window.messages.texts("error"), window.messages.texts("error")
        kinds = {layer.kind for layer in window.layer_store.layers(window.current.id)}
        assert "feature_image" in kinds
        assert calls["n"] == (after_first if enabled else after_first + 1)
    finally:
        window.close()


def test_cancel_stops_prefetch_until_the_next_run(qtbot, tmp_path, tiny_model, image_folder):
    window = _window(qtbot, tmp_path, True)
    try:
        open_and_wait(qtbot, window, image_folder, 0)
        assert window.tools.select_tool("dinov2.pca")
        window.tools.set_model_ref(str(tiny_model("dinov2")))
        window.tools.form.set_value("resolution", 56)
        window.run_current_tool()
        assert window.prefetcher.pending()  # queued behind the run
        window.cancel_jobs()
        assert window.prefetcher.pending() == []
        qtbot.waitUntil(lambda: not window.jobs, timeout=60000)
        window.browser.step(+1)
        qtbot.waitUntil(lambda: window.current_path == window.browser.paths()[1], timeout=5000)
        assert window.prefetcher.pending() == []  # stepping after a cancel prefetches nothing
    finally:
        window.close()
