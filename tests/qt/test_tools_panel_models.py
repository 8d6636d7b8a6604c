"""The window's model pickers come from the models plugins declare, a third-party plugin's included."""

from __future__ import annotations

import sys

import pytest

from vfmstudio._plugin_host import PluginHost

ACME = """
from vfmstudio.plugin_api import hookimpl, ModelSpec
@hookimpl
def vfm_register_models():
    return [ModelSpec("acme/dinov3-vitb16-retail", "dinov3", "DINOv3 B/16 retail", 86, "CC-BY-4.0")]
"""


@pytest.fixture
def panel(qtbot, tmp_path, monkeypatch):
    from vfmstudio.qt.tools_panel import ToolsPanel

    (tmp_path / "acme_models.py").write_text(ACME)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    host = PluginHost(builtins=("vfmstudio_dinov2", "acme_models"), entry_points=False).load()
    widget = ToolsPanel()
    qtbot.addWidget(widget)
    widget.set_tools(list(host.tools.values()))
    yield widget
    sys.modules.pop("acme_models", None)


def test_a_dino_tool_lists_declared_dinov2_dinov3_and_third_party_models(panel):
    assert panel.select_tool("dinov2.pca")  # the former id selects the tool
    assert panel.tool.id == "dino.pca"
    from vfmstudio.qt.model_picker import BROWSE

    combo = panel.model_combo
    refs = [combo.itemData(i) for i in range(combo.count()) if combo.itemData(i) != BROWSE]
    labels = {combo.itemData(i): combo.itemText(i) for i in range(combo.count())}
    assert refs[0] == "facebook/dinov2-small" and refs[-1] == "acme/dinov3-vitb16-retail"
    assert "facebook/dinov3-vits16-pretrain-lvd1689m" in refs
    assert "gated" in labels["facebook/dinov3-vitb16-pretrain-lvd1689m"]
    assert "gated" not in labels["facebook/dinov2-small"]
    assert labels["acme/dinov3-vitb16-retail"].startswith("DINOv3 B/16 retail")
    assert panel.model_ref() == "facebook/dinov2-small"  # the tool's default
    assert not panel.select_tool("dinov2.nothing")
