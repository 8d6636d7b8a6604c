"""Issue 21, item 11: a run that had to differ from what was asked (a 300x3 strip scaled to fit the
DINOv2 patch limit) says so in the window's Messages, from the prediction's notes."""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from conftest import open_and_wait  # noqa: E402
from test_real_dinov2 import dinov2_window  # noqa: E402, F401 - the window fixture


def test_a_scaled_strip_is_noted_in_the_messages(qtbot, dinov2_window, tiny_model, tmp_path, monkeypatch):  # noqa: F811
    from vfmstudio_dinov2 import _features

    monkeypatch.setattr(_features, "MAX_TOKENS", 256)  # 300x3 at 56 px would need 1600 patches
    folder = tmp_path / "strips"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (3, 300, 3), np.uint8)).save(
        folder / "strip.png"
    )
    window = dinov2_window
    open_and_wait(qtbot, window, folder, 0)
    assert window.tools.select_tool("dinov2.pca")
    window.tools.set_model_ref(str(tiny_model("dinov2")))
    window.tools.form.set_value("resolution", 56)
    window.run_current_tool()
    qtbot.waitUntil(lambda: not window.jobs, timeout=60000)
    assert not window.messages.texts("error"), window.messages.texts("error")
    (warning,) = window.messages.texts("warning")
    assert warning.startswith("dino.pca: strip.png: resolution 56 would need 1600 patches (the limit is 256)")
