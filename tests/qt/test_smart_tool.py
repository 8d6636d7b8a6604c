"""The Smart tool (key S) in the window with a tiny random SAM checkpoint: clicks and boxes preview
masks computed on one cached embedding; Enter adds the mask as an annotation, Esc drops it."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import transformers
from PySide6.QtCore import QPointF, QSettings, Qt

from vfmstudio.core.annotations import Mask, Polygon

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from conftest import open_and_wait  # noqa: E402


@pytest.fixture
def sam_window(qtbot, tmp_path, tiny_model):
    from vfmstudio._plugin_host import PluginHost
    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.execution import Services
    from vfmstudio.qt.main_window import MainWindow

    host = PluginHost(builtins=("vfmstudio_sam",), entry_points=False).load()
    assert "sam.segment" in host.tools, host.statuses["sam"].error
    services = Services(
        models=ByteLRUCache(1 << 29, name="models"), features=ByteLRUCache(1 << 28, name="features")
    )
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings.setValue("smart/model", str(tiny_model("sam")))
    w = MainWindow(host=host, services=services, settings=settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.tools.tree.topLevelItemCount() > 0, timeout=5000)
    yield w
    w.close()


@pytest.fixture
def encoder_calls(monkeypatch):
    calls = {"n": 0}
    cls = transformers.models.sam.modeling_sam.SamVisionEncoder
    forward = cls.forward

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(cls, "forward", counting)
    return calls


def view_point(window, x: float, y: float):
    return window.canvas.mapFromScene(QPointF(x, y))


def click(qtbot, window, x, y, button=Qt.MouseButton.LeftButton):
    qtbot.mouseClick(window.canvas.viewport(), button, pos=view_point(window, x, y))


def reference_mask(window, tiny_model, image, **params):
    from vfmstudio.execution import run_tool

    prediction = run_tool(
        window.host.tools["sam.segment"],
        [image],
        params,
        model=str(tiny_model("sam")),
        device="cpu",
        services=window.controller.services,
    )
    return prediction.results[0].masks[0]


def test_smart_tool_previews_clicks_on_one_embedding_and_accepts_with_enter(
    qtbot, sam_window, tiny_model, image_folder, encoder_calls
):
    window = sam_window
    image = open_and_wait(qtbot, window, image_folder, 1)  # 80 x 60
    smart = window.smart_tool
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_S)
    assert smart.active and smart.action.isChecked()
    from PySide6.QtWidgets import QToolButton

    buttons = [b.defaultAction() for b in window.labelling.panel.findChildren(QToolButton)]
    assert smart.action in buttons  # next to the edit tools in the Labels dock
    qtbot.waitUntil(lambda: encoder_calls["n"] == 1, timeout=30000)  # switching on warms the embedding

    with qtbot.waitSignal(smart.preview_changed, timeout=30000):
        click(qtbot, window, 30.2, 20.4)
    ((x, y, positive),) = smart.points
    assert positive and abs(x - 30.2) < 1 and abs(y - 20.4) < 1
    assert smart.mask.shape == (60, 80)
    assert (smart.mask == reference_mask(window, tiny_model, image, points=((x, y),))).all()

    with qtbot.waitSignal(smart.preview_changed, timeout=30000):
        click(qtbot, window, 70, 50, Qt.MouseButton.RightButton)
    assert [p for *_, p in smart.points] == [True, False]
    nx, ny, _ = smart.points[1]
    expected = reference_mask(window, tiny_model, image, points=((x, y),), negative=((nx, ny),))
    assert (smart.mask == expected).all()

    qtbot.keyClick(window.canvas, Qt.Key.Key_Escape)  # drop: nothing added
    assert smart.points == [] and smart.mask is None
    assert len(window.labelling.session.labels) == 0

    with qtbot.waitSignal(smart.preview_changed, timeout=30000):
        click(qtbot, window, 40, 30)
    shown = smart.mask.copy()
    window.labelling.controller.current_class = "cat"
    qtbot.keyClick(window.canvas, Qt.Key.Key_Return)
    labels = window.labelling.session.labels
    (ann_id,) = window.labelling.controller.selected
    ann = labels.get(ann_id)
    assert ann.label == "cat" and isinstance(ann.shape, Mask) and (ann.shape.to_array() == shown).all()
    assert smart.mask is None and smart.points == []
    assert encoder_calls["n"] == 1  # every prompt ran on the cached embedding


def test_smart_tool_drag_draws_a_box_and_accepts_a_polygon(qtbot, sam_window, tiny_model, image_folder):
    window = sam_window
    image = open_and_wait(qtbot, window, image_folder, 0)  # 64 x 48
    smart = window.smart_tool
    smart.activate()
    smart.as_polygon = True
    viewport = window.canvas.viewport()
    with qtbot.waitSignal(smart.preview_changed, timeout=30000):
        qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=view_point(window, 5, 6))
        qtbot.mouseMove(viewport, view_point(window, 30, 20))
        qtbot.mouseMove(viewport, view_point(window, 50, 40))
        qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=view_point(window, 50, 40))
    assert smart.points == [] and smart.box is not None
    x0, y0, x1, y1 = smart.box
    assert abs(x0 - 5) < 1 and abs(y0 - 6) < 1 and abs(x1 - 50) < 1 and abs(y1 - 40) < 1
    boxes = ",".join(f"{v:.2f}" for v in smart.box)
    assert (smart.mask == reference_mask(window, tiny_model, image, boxes=boxes)).all()
    if not smart.mask.any():
        pytest.fail("the tiny model gave an empty mask for this box; pick another box")
    assert smart.accept() is not None
    (ann_id,) = window.labelling.controller.selected
    assert isinstance(window.labelling.session.labels.get(ann_id).shape, Polygon)


def test_choosing_another_edit_tool_turns_the_smart_tool_off(qtbot, sam_window, image_folder):
    window = sam_window
    open_and_wait(qtbot, window, image_folder, 0)
    smart = window.smart_tool
    smart.activate()
    window.labelling.tool_actions["box"].trigger()
    assert not smart.active and not smart.action.isChecked()
    assert window.labelling.controller.mode == "box"
    n = len(window.labelling.session.labels)
    click(qtbot, window, 10, 10)  # the box tool has the mouse again: a click adds no SAM prompt
    assert smart.points == [] and len(window.labelling.session.labels) == n
    np.testing.assert_equal(smart.mask, None)


def test_refine_with_sam_in_the_accept_dialog_turns_boxes_into_masks(
    qtbot, sam_window, tiny_model, image_folder, monkeypatch
):
    from vfmstudio.core.results import Detections, Prediction, Text
    from vfmstudio.execution import run_tool
    from vfmstudio.qt.accept_dialog import AcceptDialog

    window = sam_window
    image = open_and_wait(qtbot, window, image_folder, 1)  # 80 x 60
    boxes = np.array([[5, 5, 40, 30], [20, 10, 78, 58]], np.float32)
    detect = Prediction(
        tool="paligemma.detect",
        model="x",
        image_ids=(image.id,),
        results=(Detections(boxes_xyxy=boxes, labels=("cat", "dog"), image_id=image.id),),
    )
    caption = Prediction(
        tool="paligemma.caption",
        model="x",
        image_ids=(image.id,),
        results=(Text(text="two animals", image_id=image.id),),
    )
    window.session.record(detect)
    window.session.record(caption)
    shown = {}

    def accept_with_refine(dialog):
        shown["visible"] = not dialog.refine.isHidden()
        dialog.refine.setChecked(True)
        return AcceptDialog.DialogCode.Accepted

    monkeypatch.setattr(AcceptDialog, "exec", accept_with_refine)
    with qtbot.waitSignal(window.smart_tool.refined, timeout=30000):
        window.labelling.accept_dialog()
    assert shown["visible"]
    labels = window.labelling.session.labels
    key = window.labelling.controller.image_key
    masks = [a for a in labels.annotations(key) if isinstance(a.shape, Mask)]
    assert [a.label for a in masks] == ["cat", "dog"]  # the boxes became masks with their classes
    assert not any(type(a.shape).__name__ == "Box" for a in labels.annotations(key))
    expected = run_tool(
        window.host.tools["sam.refine"],
        [image],
        {"boxes": "5,5,40,30; 20,10,78,58"},
        model=str(tiny_model("sam")),
        device="cpu",
        services=window.controller.services,
    ).results[0]
    for ann, mask in zip(masks, expected.masks):
        assert (ann.shape.to_array() == mask).all()


def test_sam_segment_from_the_tools_panel_reruns_on_each_canvas_click(
    qtbot, sam_window, tiny_model, image_folder, encoder_calls
):
    from vfmstudio.core.results import Masks

    window = sam_window
    image = open_and_wait(qtbot, window, image_folder, 2)  # 40 x 40
    assert window.tools.select_tool("sam.segment")
    window.tools.set_model_ref(str(tiny_model("sam")))
    window.tools.form.set_value("points", ((10.0, 12.0),))
    window.run_current_tool()
    qtbot.waitUntil(lambda: not window.jobs, timeout=60000)
    assert not window.messages.texts("error"), window.messages.texts("error")
    assert window.session.prediction(image.id, "sam.segment").params["points"] == ((10.0, 12.0),)
    click(qtbot, window, 30, 25)  # H mode: a click feeds the tool's points and reruns it live
    qtbot.waitUntil(
        lambda: window.session.prediction(image.id, "sam.segment").params["points"] != ((10.0, 12.0),),
        timeout=60000,
    )
    qtbot.waitUntil(lambda: not window.jobs, timeout=60000)
    ((x, y),) = window.session.prediction(image.id, "sam.segment").params["points"]
    assert abs(x - 30) < 1 and abs(y - 25) < 1
    assert any(isinstance(layer.result, Masks) for layer in window.layer_store.layers(image.id))
    assert encoder_calls["n"] == 1
