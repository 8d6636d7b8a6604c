"""One real run in the window: dinov2.pca on a tiny random DINOv2 checkpoint, loaded through the same
``from_pretrained`` path users hit; then the threshold drag reruns on cached features."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt

from vfmstudio.core.results import FeatureImage, Masks

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from conftest import open_and_wait  # noqa: E402


@pytest.fixture
def dinov2_window(qtbot, tmp_path):
    from vfmstudio._plugin_host import PluginHost
    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.execution import Services
    from vfmstudio.qt.main_window import MainWindow

    host = PluginHost(builtins=("vfmstudio_dinov2",), entry_points=False).load()
    if "dinov2.pca" not in host.tools:
        pytest.fail(f"the dinov2 plugin did not load: {host.statuses['dinov2'].error}")
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


@pytest.fixture
def forward_calls(monkeypatch):
    """Counts DINOv2 forward passes: interaction must rerun on cached features, never the model."""
    import transformers.models.dinov2.modeling_dinov2 as modeling

    calls = {"n": 0}
    forward = modeling.Dinov2Model.forward

    def counting_forward(self, *args, **kwargs):
        calls["n"] += 1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(modeling.Dinov2Model, "forward", counting_forward)
    return calls


def test_dinov2_pca_in_the_window_and_live_threshold(
    qtbot, dinov2_window, tiny_model, image_folder, forward_calls
):
    calls = forward_calls
    window = dinov2_window
    image = open_and_wait(qtbot, window, image_folder, 1)
    assert window.tools.select_tool("dinov2.pca")
    window.tools.set_model_ref(str(tiny_model("dinov2")))
    window.tools.form.set_value("resolution", 56)
    window.run_current_tool()
    qtbot.waitUntil(lambda: not window.jobs, timeout=60000)
    assert not window.messages.texts("error"), window.messages.texts("error")
    kinds = {layer.kind for layer in window.layer_store.layers(image.id)}
    assert {"feature_image", "masks"} <= kinds
    assert calls["n"] == 1
    assert window.tools.device_label.text().startswith("device: cpu · fp32")
    assert window.layers.histogram_box.isVisible()

    hist = window.layers.histogram
    y = hist.height() // 2
    x0, x1 = int(hist.x_of(hist.histogram.edges[0])) + 2, int(hist.x_of(hist.histogram.edges[-1])) - 2
    masks_seen = []
    for x in (x0, (x0 + x1) // 2, x1):
        qtbot.mousePress(hist, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
        qtbot.mouseRelease(hist, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
        qtbot.waitUntil(lambda: not window.jobs, timeout=30000)
        layers = window.layer_store.layers(image.id)
        masks_seen.append(next(la.result for la in layers if isinstance(la.result, Masks)).masks[0].sum())
        assert any(isinstance(la.result, FeatureImage) for la in layers)
    assert not window.messages.texts("error"), window.messages.texts("error")
    assert calls["n"] == 1  # three threshold changes, no new forward pass
    assert masks_seen[0] >= masks_seen[1] >= masks_seen[2] or masks_seen[0] <= masks_seen[1] <= masks_seen[2]
    assert len(set(np.asarray(masks_seen).tolist())) > 1  # the cut moved


def test_dinov2_norms_layer_scrub_reruns_without_a_forward_pass(
    qtbot, dinov2_window, tiny_model, image_folder, forward_calls
):
    calls = forward_calls
    window = dinov2_window
    image = open_and_wait(qtbot, window, image_folder, 0)
    assert window.tools.select_tool("dinov2.norms")
    window.tools.set_model_ref(str(tiny_model("dinov2")))
    window.tools.form.set_value("resolution", 56)
    window.run_current_tool()
    qtbot.waitUntil(lambda: not window.jobs, timeout=60000)
    assert not window.messages.texts("error"), window.messages.texts("error")
    panel = window.layers
    names = [panel.list.item(i).text() for i in range(panel.list.count())]
    panel.list.setCurrentRow(next(i for i, n in enumerate(names) if "layer_maps" in n))
    stack = panel.selected_layer().result
    panel.layer_slider.setValue(1)
    qtbot.waitUntil(lambda: not window.jobs, timeout=30000)
    assert not window.messages.texts("error"), window.messages.texts("error")
    assert window.session.prediction(image.id, "dino.norms").params["layer"] == 1
    assert panel.layer_name.text() == stack.names[1]
    assert calls["n"] == 1
