# ruff: noqa: F811  (the fixtures imported from edit_helpers are test parameters)
"""Drawing rotated boxes, circles and keypoints with the mouse, editing them with their handles
(corners, rotation, radii, keypoint visibility), each one undo step; masks accepted as rotated boxes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

sys.path.insert(0, str(Path(__file__).parent))
from edit_helpers import click, drag, edit_host, edit_window, key, open_image, view_pos  # noqa: E402,F401

from vfmstudio.core.annotations import Ellipse, Keypoints, RotatedBox, Skeleton  # noqa: E402
from vfmstudio.qt.annotation_item import handles_of  # noqa: E402

SHIFT = Qt.KeyboardModifier.ShiftModifier


def _shapes(w):
    return [a.shape for a in w.labelling.session.labels.annotations()]


def _handle(w, ann_id, kind, where=None):
    ctl = w.labelling.controller
    shape = ctl.session.labels.get(ann_id).shape
    for k, at, p in handles_of(shape, ctl.canvas.scale_factor):
        if k == kind and (where is None or at == where):
            return (p.x(), p.y())
    raise AssertionError(f"no {kind} handle {where}")


def _close(a, b, atol=0.6):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), atol=atol)


def test_rotated_box_by_three_clicks_or_a_drag_and_a_click(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)  # 64x48
    key(qtbot, w, Qt.Key.Key_R)
    assert w.labelling.controller.mode == "rotated"
    assert "two corners" in w.statusBar().currentMessage()
    click(qtbot, w, 10, 30)
    click(qtbot, w, 30, 10)  # one side: from (10, 30) up to (30, 10)
    assert _shapes(w) == []  # still drawing
    click(qtbot, w, 35, 25)  # the width: the far side goes through here
    [box] = _shapes(w)
    assert isinstance(box, RotatedBox)
    assert box.angle == pytest.approx(-45, abs=2) and box.w == pytest.approx(np.hypot(20, 20), abs=0.5)
    assert box.h == pytest.approx(20 / np.sqrt(2), abs=0.5)  # how far (35, 25) is from x + y = 40
    corners = np.asarray(box.corners())
    assert _close(corners[0], (10, 30)) and _close(corners[1], (30, 10))
    # The first side dragged, then the width clicked; Esc drops a box half drawn.
    drag(qtbot, w, (40, 40), (60, 40))
    click(qtbot, w, 50, 34)
    second = _shapes(w)[-1]
    assert _close((second.cx, second.cy, second.w, second.h, second.angle), (50, 37, 20, 6, 0))
    click(qtbot, w, 5, 5)
    click(qtbot, w, 25, 5)
    assert w.labelling.controller.item.preview is not None
    key(qtbot, w, Qt.Key.Key_Escape)
    assert w.labelling.controller.item.preview is None
    click(qtbot, w, 20, 20)  # a new first corner, not the third click of the dropped box
    assert len(_shapes(w)) == 2
    w.labelling.undo_action.trigger()
    assert _shapes(w) == [box]


def test_shift_drag_draws_a_circle(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    key(qtbot, w, Qt.Key.Key_O)
    vp = w.canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, SHIFT, view_pos(w, 10, 8))
    qtbot.mouseMove(vp, view_pos(w, 20, 14))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, SHIFT, view_pos(w, 30, 20))
    [circle] = _shapes(w)
    assert circle.is_circle and _close((circle.cx, circle.cy, circle.rx), (16, 14, 6))
    drag(qtbot, w, (10, 30), (30, 40))  # without Shift: an ellipse
    oval = _shapes(w)[-1]
    assert not oval.is_circle and _close((oval.rx, oval.ry), (10, 5))


def test_keypoints_follow_the_class_skeleton(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    ctl, labels = w.labelling.controller, w.labelling.session.labels
    labels.skeletons["person"] = Skeleton(("head", "hand", "foot"), ((0, 1), (0, 2)))
    ctl.current_class = "person"
    key(qtbot, w, Qt.Key.Key_K)
    assert "'head' (1/3)" in w.statusBar().currentMessage()
    click(qtbot, w, 20, 10)
    assert "'hand' (2/3)" in w.statusBar().currentMessage()
    click(qtbot, w, 30, 20, SHIFT)  # the hand is there but hidden
    assert _shapes(w) == []
    key(qtbot, w, Qt.Key.Key_N)  # no foot in this image: the third name ends the pose
    [pose] = _shapes(w)
    assert isinstance(pose, Keypoints) and pose.names == ("head", "hand", "foot")
    assert pose.visibility == (2, 1, 0) and _close(pose.points[:2], [(20, 10), (30, 20)])
    assert labels.annotations()[0].label == "person"
    # Backspace takes the last point back; Enter ends early (the rest not labelled).
    click(qtbot, w, 40, 10)
    click(qtbot, w, 45, 12)
    key(qtbot, w, Qt.Key.Key_Backspace)
    assert "'hand' (2/3)" in w.statusBar().currentMessage()
    key(qtbot, w, Qt.Key.Key_Return)
    second = _shapes(w)[-1]
    assert second.visibility == (2, 0, 0) and _close(second.points[0], (40, 10))
    w.labelling.undo_action.trigger()
    assert len(labels) == 1


def test_free_keypoints_without_a_skeleton(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    key(qtbot, w, Qt.Key.Key_K)
    for x, y in [(10, 10), (20, 12), (30, 14)]:
        click(qtbot, w, x, y)
    assert _shapes(w) == []
    key(qtbot, w, Qt.Key.Key_Enter)
    [pose] = _shapes(w)
    assert pose.names == () and pose.visibility == (2, 2, 2)
    assert _close(pose.points, [(10, 10), (20, 12), (30, 14)])


def test_rotated_box_corner_and_rotation_handles(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    ctl, labels = w.labelling.controller, w.labelling.session.labels
    ann = ctl.add_shape(RotatedBox(32, 24, 20, 10, 0))
    key(qtbot, w, Qt.Key.Key_V)
    assert ctl.selected == [ann]
    drag(qtbot, w, _handle(w, ann, "corner", (2,)), (46, 32))  # bottom-right corner out
    resized = labels.get(ann).shape
    assert _close((resized.cx, resized.cy, resized.w, resized.h, resized.angle), (34, 25.5, 24, 13, 0))
    assert _close(resized.corners()[0], (22, 19))  # the opposite corner stayed
    hx, hy = _handle(w, ann, "rotate")
    assert hy < resized.bbox()[1]  # above the box
    drag(qtbot, w, (hx, hy), (resized.cx + 10, resized.cy))  # the top turned to face right
    turned = labels.get(ann).shape
    assert turned.angle == pytest.approx(90, abs=3) and _close((turned.w, turned.h), (24, 13))
    assert w.labelling.undo_action.text().endswith("Rotate")
    w.labelling.undo_action.trigger()
    assert labels.get(ann).shape == resized
    w.labelling.undo_action.trigger()
    assert labels.get(ann).shape == RotatedBox(32, 24, 20, 10, 0)


def test_shift_snaps_the_rotation(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    ctl, labels = w.labelling.controller, w.labelling.session.labels
    ann = ctl.add_shape(Ellipse(32, 24, 12, 6, 0))
    key(qtbot, w, Qt.Key.Key_V)
    vp = w.canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, SHIFT, view_pos(w, *_handle(w, ann, "rotate")))
    qtbot.mouseMove(vp, view_pos(w, 40, 10))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, SHIFT, view_pos(w, 42, 10))  # 35.5 degrees
    assert labels.get(ann).shape.angle == pytest.approx(30)


def test_ellipse_and_circle_radius_handles(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    ctl, labels = w.labelling.controller, w.labelling.session.labels
    oval = ctl.add_shape(Ellipse(20, 20, 8, 4, 0))
    key(qtbot, w, Qt.Key.Key_V)
    drag(qtbot, w, _handle(w, oval, "radius", (0, 1)), (32, 21))  # the end of the rx axis, outward
    assert _close((lambda e: (e.cx, e.cy, e.rx, e.ry, e.angle))(labels.get(oval).shape), (20, 20, 12, 4, 0))
    drag(qtbot, w, _handle(w, oval, "radius", (1, -1)), (20, 13))  # the top of the ry axis
    assert _close(labels.get(oval).shape.ry, 7)
    assert w.labelling.undo_action.text().endswith("Change radius")
    circle = ctl.add_shape(Ellipse.circle(45, 25, 5))
    assert ctl.selected == [circle]
    assert [k for k, _, _ in handles_of(labels.get(circle).shape)].count("rotate") == 0
    drag(qtbot, w, _handle(w, circle, "radius", (1, 1)), (45, 33))
    grown = labels.get(circle).shape
    assert grown.is_circle and _close(grown.rx, 8)
    w.labelling.undo_action.trigger()
    assert labels.get(circle).shape == Ellipse.circle(45, 25, 5)


def test_double_click_on_a_keypoint_toggles_its_visibility(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    ctl, labels = w.labelling.controller, w.labelling.session.labels
    pose = ctl.add_shape(Keypoints(((20, 20), (40, 30)), (2, 2)))
    key(qtbot, w, Qt.Key.Key_V)
    qtbot.mouseDClick(w.canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_pos(w, 40, 30))
    assert labels.get(pose).shape.visibility == (2, 1)
    _, item = ctl.item._items[pose]  # a hidden keypoint is drawn as a cross (nothing to fill)
    assert item.path().contains(QPointF(20, 20)) and not item.path().contains(QPointF(40, 30))
    assert item.path().boundingRect().contains(QPointF(40, 30))
    assert labels.get(pose).shape.points == ((20, 20), (40, 30))  # not moved by the clicks
    assert w.labelling.undo_action.text().endswith("Mark keypoint hidden")
    w.labelling.undo_action.trigger()
    assert labels.get(pose).shape.visibility == (2, 2)


def test_accept_masks_as_rotated_boxes_in_the_dialog(qtbot, edit_window, image_folder):
    from vfmstudio.qt.accept_dialog import AcceptDialog
    from vfmstudio.session.accepting import acceptable_items

    w = edit_window
    open_image(qtbot, w, image_folder)
    assert w.tools.select_tool("fake.all")
    w.run_current_tool()
    qtbot.waitUntil(lambda: not w.jobs and w.runner.runner.pending() == 0, timeout=10000)
    lab = w.labelling
    items = acceptable_items(lab.predictions_on_view(), w.current.id)
    dialog = AcceptDialog(items, w)
    dialog.polygons.setChecked(True)
    dialog.rotated.setChecked(True)  # one or the other
    assert not dialog.polygons.isChecked()
    for i, it in enumerate(items):
        if "mask" not in it.text:
            dialog.list.item(i).setCheckState(Qt.CheckState.Unchecked)
    assert lab.accept_items(dialog.chosen(), **dialog.options())
    got = {a.label: a for a in lab.session.labels.annotations()}
    assert sorted(got) == ["left", "right"]
    masks = {
        r.labels[i]: r.masks[i]
        for p in lab.predictions_on_view()
        for r in p.results
        if r.kind == "masks"
        for i in range(len(r))
    }
    for label, ann in got.items():
        assert isinstance(ann.shape, RotatedBox)
        m = masks[label]
        ys, xs = np.nonzero(m)  # an upright mask's smallest box is its pixel bounding box
        assert ann.shape.area() <= (xs.max() + 1 - xs.min()) * (ys.max() + 1 - ys.min()) + 1e-6
        assert ann.shape.to_mask(*m.shape)[m].mean() > 0.97  # and it holds the mask
    assert lab.session.stack.count() == 1


def test_a_class_skeleton_set_in_the_labels_dock_drives_the_keypoint_tool(qtbot, edit_window, image_folder):
    from vfmstudio.qt.skeleton_dialog import SkeletonDialog

    w = edit_window
    open_image(qtbot, w, image_folder)
    lab = w.labelling
    assert lab.panel.add_class("cat")
    assert not lab.panel.edit_skeleton("cat", "ear, ear", "")  # refused in one line, nothing set
    assert "named twice" in w.messages.texts("warning")[-1] and "cat" not in lab.session.labels.skeletons
    assert lab.panel.edit_skeleton("cat", "ear, nose, tail", "ear-nose, nose-tail")
    dialog = SkeletonDialog("cat", lab.session.labels.skeletons["cat"], w)  # opens with what is set
    assert (dialog.names.text(), dialog.edges.text()) == ("ear, nose, tail", "ear-nose, nose-tail")
    key(qtbot, w, Qt.Key.Key_K)
    assert "'ear' (1/3)" in w.statusBar().currentMessage()
    assert lab.panel.add_class("dog")  # another class chosen: its (free) points are asked for
    assert "click keypoint 1" in w.statusBar().currentMessage()
    lab.panel.select_class("cat")
    assert "'ear' (1/3)" in w.statusBar().currentMessage()
    for x, y in [(10, 10), (20, 20), (30, 30)]:
        click(qtbot, w, x, y)
    [pose] = _shapes(w)
    assert pose.names == ("ear", "nose", "tail")
    for _ in range(3):  # the pose, the class dog, the skeleton
        lab.undo_action.trigger()
    assert "cat" not in lab.session.labels.skeletons
