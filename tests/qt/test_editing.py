# ruff: noqa: F811  (the fixtures imported from edit_helpers are test parameters)
"""Labelling in the window: drawing and editing shapes with simulated mouse events, undo/redo,
classes, tags and captions, brushing masks, accepting predictions (pytest-qt, offscreen)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, Qt

sys.path.insert(0, str(Path(__file__).parent))
from edit_helpers import click, drag, edit_host, edit_window, key, open_image  # noqa: E402,F401

from vfmstudio.core.annotations import Box, Mask, Polygon  # noqa: E402


def anns(window):
    lab = window.labelling
    return lab.session.labels.annotations(lab.controller.image_key)


def test_draw_a_box_with_the_mouse_then_undo_and_redo(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)  # 64x48
    key(qtbot, w, Qt.Key.Key_B)
    assert w.labelling.controller.mode == "box"
    drag(qtbot, w, (10, 8), (30, 20))
    [a] = anns(w)
    assert isinstance(a.shape, Box)
    assert np.allclose(a.shape.xyxy, (10, 8, 30, 20), atol=0.6)
    assert a.provenance.source == "manual" and a.label == "object"
    assert w.labelling.controller.selected == [a.id]
    assert w.labelling.panel.ann_list.count() == 1
    w.labelling.undo_action.trigger()
    assert anns(w) == ()
    assert w.labelling.panel.ann_list.count() == 0
    key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert [x.id for x in anns(w)] == [a.id]
    key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert anns(w) == ()


def test_draw_a_polygon_by_clicking_vertices_and_closing_on_the_first(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    key(qtbot, w, Qt.Key.Key_P)
    for x, y in [(5, 5), (40, 6), (35, 30)]:
        click(qtbot, w, x, y)
    assert anns(w) == ()  # still drawing
    click(qtbot, w, 5.2, 5.1)  # on the first vertex: closes
    [a] = anns(w)
    assert isinstance(a.shape, Polygon)
    ext = np.asarray(a.shape.parts[0].exterior)
    assert ext.shape == (3, 2) and np.allclose(ext, [(5, 5), (40, 6), (35, 30)], atol=0.6)
    # Enter closes too; Esc while drawing drops the polygon and does not cancel jobs
    for x, y in [(50, 30), (60, 30), (55, 40)]:
        click(qtbot, w, x, y)
    key(qtbot, w, Qt.Key.Key_Escape)
    assert len(anns(w)) == 1
    for x, y in [(50, 30), (60, 30), (55, 40)]:
        click(qtbot, w, x, y)
    key(qtbot, w, Qt.Key.Key_Return)
    assert len(anns(w)) == 2
    w.labelling.undo_action.trigger()
    w.labelling.undo_action.trigger()
    assert anns(w) == ()


def test_move_and_resize_a_box_and_edit_a_polygon_vertex(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    ctl = w.labelling.controller
    box_id = ctl.add_shape(Box(10, 10, 20, 20))
    poly_id = ctl.add_shape(Polygon.simple([(40, 5), (60, 5), (50, 25)]))
    labels = w.labelling.session.labels
    key(qtbot, w, Qt.Key.Key_V)
    click(qtbot, w, 15, 15)  # select the box
    assert ctl.selected == [box_id]
    drag(qtbot, w, (15, 15), (20, 18))  # move by (5, 3)
    assert np.allclose(labels.get(box_id).shape.xyxy, (15, 13, 25, 23), atol=0.6)
    drag(qtbot, w, (25, 23), (30, 30))  # bottom-right handle
    assert np.allclose(labels.get(box_id).shape.xyxy, (15, 13, 30, 30), atol=0.6)
    click(qtbot, w, 50, 10)  # select the polygon
    assert ctl.selected == [poly_id]
    drag(qtbot, w, (50, 25), (52, 40))  # its third vertex
    ext = labels.get(poly_id).shape.parts[0].exterior
    assert np.allclose(ext[2], (52, 40), atol=0.6) and ext[:2] == ((40, 5), (60, 5))
    w.labelling.undo_action.trigger()
    assert labels.get(poly_id).shape.parts[0].exterior[2] == (50.0, 25.0)
    w.labelling.undo_action.trigger()
    w.labelling.undo_action.trigger()
    assert labels.get(box_id).shape.xyxy == (10, 10, 20, 20)
    assert w.labelling.session.stack.count() == 5  # two adds, move, resize, vertex: one step each


def test_delete_change_class_classes_tags_and_caption(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    lab, panel, ctl = w.labelling, w.labelling.panel, w.labelling.controller
    labels = lab.session.labels
    assert panel.add_class("cat", "#ff0000") and panel.add_class("dog")
    assert panel.current_class() == "dog"
    box_id = ctl.add_shape(Box(1, 1, 9, 9))
    assert labels.get(box_id).label == "dog"
    panel.select_class("cat")
    assert ctl.set_class_of_selected(panel.current_class())
    assert labels.get(box_id).label == "cat"
    assert panel.rename_class("cat", "kitty") and labels.get(box_id).label == "kitty"
    assert panel.recolor_class("kitty", "#00ff00") and labels.get_class("kitty").color == "#00ff00"
    panel.tags_edit.setText("indoor, blurry")
    assert panel.apply_tags()
    panel.caption_edit.setPlainText("a noisy picture")
    assert panel.apply_caption()
    key_ = ctl.image_key
    assert labels.tags[key_] == ("indoor", "blurry") and labels.captions[key_] == "a noisy picture"
    ctl.select([box_id])
    key(qtbot, w, Qt.Key.Key_Delete)
    assert box_id not in labels
    assert panel.delete_class("dog") and labels.get_class("dog") is None
    stack = lab.session.stack
    while stack.canUndo():
        stack.undo()
    assert labels.classes == [] and len(labels) == 0 and not labels.tags and not labels.captions
    while stack.canRedo():
        stack.redo()
    assert labels.class_names == ["kitty"] and len(labels) == 0
    assert labels.captions[key_] == "a noisy picture"


def test_brush_a_new_mask_paint_into_it_and_erase(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    w.labelling.panel.brush_size.setValue(3.0)
    key(qtbot, w, Qt.Key.Key_M)
    drag(qtbot, w, (10, 10), (30, 10))
    [a] = anns(w)
    assert isinstance(a.shape, Mask) and (a.shape.height, a.shape.width) == (48, 64)
    m = a.shape.to_array()
    assert m[10, 20] and m[10, 10] and not m[20, 20] and not m[10, 40]
    first = int(m.sum())
    drag(qtbot, w, (20, 20), (20, 30))  # the new mask is selected: this paints into it
    [a] = anns(w)
    assert a.shape.to_array()[25, 20] and a.shape.area > first
    key(qtbot, w, Qt.Key.Key_E)
    drag(qtbot, w, (20, 5), (20, 15))
    m = anns(w)[0].shape.to_array()
    assert not m[10, 20] and m[10, 10]
    assert w.labelling.session.stack.count() == 3
    w.labelling.undo_action.trigger()
    assert anns(w)[0].shape.to_array()[10, 20]


def test_accept_a_prediction_layer_as_annotations_in_one_undo_step(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    assert w.tools.select_tool("fake.all")
    w.run_current_tool()
    qtbot.waitUntil(lambda: not w.jobs and w.runner.runner.pending() == 0, timeout=10000)
    lab = w.labelling
    assert lab.accept_all("fake.all", masks_as_polygons=True, tolerance=0.5)
    got = anns(w)
    assert sorted(a.label for a in got) == ["left", "right", "thing"]
    kinds = {a.label: a.shape.kind for a in got}
    assert kinds == {"left": "polygon", "right": "polygon", "thing": "box"}
    thing = next(a for a in got if a.label == "thing")
    assert thing.provenance.source == "model" and thing.provenance.tool == "fake.all"
    assert thing.provenance.model == "fake/tiny" and abs(thing.provenance.score - 0.7) < 1e-6
    key_ = lab.controller.image_key
    assert lab.session.labels.tags[key_] == ("dog",)  # the top class of the classification
    assert lab.session.labels.captions[key_] == "a fake caption"
    assert lab.session.stack.count() == 1
    lab.undo_action.trigger()
    assert anns(w) == () and key_ not in lab.session.labels.tags and key_ not in lab.session.labels.captions
    # The dialog: only the checked items, masks kept as masks.
    from vfmstudio.qt.accept_dialog import AcceptDialog
    from vfmstudio.session.accepting import acceptable_items

    items = acceptable_items(lab.predictions_on_view(), w.current.id)
    dialog = AcceptDialog(items, w)
    for i, it in enumerate(items):
        if "mask" not in it.text:
            dialog.list.item(i).setCheckState(Qt.CheckState.Unchecked)
    assert lab.accept_items(dialog.chosen())
    assert sorted((a.label, a.shape.kind) for a in anns(w)) == [("left", "mask"), ("right", "mask")]
    # A layer on its own: the Detections layer of the run gives its box, with provenance.
    lab.undo_action.trigger()
    det = next(layer for layer in w.layer_store.layers(w.current.id) if layer.kind == "detections")
    assert lab.accept_layer(det.id)
    [box] = anns(w)
    assert box.label == "thing" and box.shape.kind == "box" and box.provenance.tool == "fake.all"


def test_unsaved_marker_follows_the_undo_stack(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    lab = w.labelling
    lab.session.autosave.setInterval(60_000)  # no autosave during this test
    assert "[*]" in w.windowTitle() and not w.isWindowModified()
    lab.controller.add_shape(Box(1, 1, 5, 5))
    assert w.isWindowModified()
    lab.undo_action.trigger()
    assert not w.isWindowModified()  # back at the saved state
    lab.redo_action.trigger()
    assert w.isWindowModified()
    assert lab.save()
    assert not w.isWindowModified()


def test_tool_keys_do_not_steal_typing_in_the_labels_dock(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    w.activateWindow()
    edit = w.labelling.panel.tags_edit
    edit.setFocus()
    qtbot.keyClicks(edit, "bpvme")
    assert edit.text() == "bpvme" and w.labelling.controller.mode == "view"
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert w.labelling.session.labels.tags[w.labelling.controller.image_key] == ("bpvme",)


def test_a_box_outside_the_image_is_clipped_and_a_click_is_not_a_box(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)  # 64x48
    key(qtbot, w, Qt.Key.Key_B)
    click(qtbot, w, 10, 10)
    assert anns(w) == ()
    drag(qtbot, w, (50, 40), (90, 70))
    [a] = anns(w)
    assert a.shape.x1 == 64 and a.shape.y1 == 48


def test_esc_drops_a_polygon_in_progress_without_cancelling_jobs_and_cancels_otherwise(
    qtbot, edit_window, image_folder
):
    w = edit_window
    open_image(qtbot, w, image_folder)
    assert w.tools.select_tool("fake.slow")
    w.tools.form.set_value("seconds", 5.0)
    job = w.run_current_tool()
    key(qtbot, w, Qt.Key.Key_P)
    click(qtbot, w, 5, 5)
    click(qtbot, w, 20, 5)
    key(qtbot, w, Qt.Key.Key_Escape)  # drops the two vertices
    assert w.labelling.controller._polygon == [] and job in w.jobs
    key(qtbot, w, Qt.Key.Key_Escape)  # nothing being drawn: Run > Cancel
    qtbot.waitUntil(lambda: job not in w.jobs, timeout=5000)
    assert any("cancelled" in t for t in w.messages.texts())


def _qt_calls_from_python(fn) -> int:
    """How many PySide6 methods Python code calls while ``fn`` runs (a profile hook on this thread)."""
    count = 0

    def hook(frame, event, arg):
        nonlocal count
        if event == "c_call" and type(getattr(arg, "__self__", None)).__module__.startswith("PySide6"):
            count += 1

    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def test_repainting_many_annotations_costs_no_python_qt_calls_per_shape(qtbot, edit_window, image_folder):
    """Shapes are C++ items, so a repaint must not call Qt from Python once per annotation (it used
    to: ~7 calls per shape per repaint). Every Qt method Python calls during the repaints is counted."""
    from PySide6.QtGui import QPen

    w = edit_window
    open_image(qtbot, w, image_folder)
    ctl = w.labelling.controller
    anns_ = [Box(i % 50, i % 40, i % 50 + 8, i % 40 + 6) for i in range(300)]
    from vfmstudio.core import commands as cmd
    from vfmstudio.core.annotations import Annotation

    w.labelling.session.push(cmd.AddAnnotations([Annotation(ctl.image_key, "x", b) for b in anns_]))
    ctl.select([anns(w)[0].id])
    viewport = w.canvas.viewport()
    viewport.repaint()
    pen = QPen()
    # The counter sees per-shape calls when Python makes them, so the bound below can fail.
    assert _qt_calls_from_python(lambda: [pen.setWidth(2) for _ in anns_]) == len(anns_)
    calls = _qt_calls_from_python(lambda: [viewport.repaint() for _ in range(20)])
    assert 20 <= calls < 20 * 60  # the repaints themselves and a few dozen calls each, not 300+


def test_middle_button_pans_while_an_editing_tool_is_active(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    w.canvas.zoom_by(4.0)
    key(qtbot, w, Qt.Key.Key_B)
    vp = w.canvas.viewport()
    centre = vp.rect().center()
    before = w.canvas.mapToScene(centre)
    qtbot.mousePress(vp, Qt.MouseButton.MiddleButton, pos=centre)
    qtbot.mouseMove(vp, centre + QPoint(40, 20))
    qtbot.mouseRelease(vp, Qt.MouseButton.MiddleButton, pos=centre + QPoint(40, 20))
    after = w.canvas.mapToScene(centre)
    s = w.canvas.scale_factor  # the image followed the mouse, pixel for pixel
    assert abs((before.x() - after.x()) * s - 40) < 1.5 and abs((before.y() - after.y()) * s - 20) < 1.5
    assert anns(w) == ()  # and nothing was drawn
