# ruff: noqa: F811  (the fixtures imported from edit_helpers are test parameters)
"""Rotated boxes, ellipses, polylines and keypoints in the window: drawn where they lie, selected
by a click, moved by a drag and deleted, each one undoable step."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

sys.path.insert(0, str(Path(__file__).parent))
from edit_helpers import click, drag, edit_host, edit_window, key, open_image  # noqa: E402,F401

from vfmstudio.core.annotations import Ellipse, Keypoints, Polyline, RotatedBox, Skeleton  # noqa: E402


def _item_rect(window, ann_id):
    """Bounds of the canvas item showing one annotation (the controller's AnnotationItem)."""
    _, qt_item = window.labelling.controller.item._items[ann_id]
    r = qt_item.path().boundingRect()
    return (r.left(), r.top(), r.right(), r.bottom())


def test_new_shapes_are_drawn_moved_and_deleted(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)  # 64x48
    ctl, labels = w.labelling.controller, w.labelling.session.labels
    labels.skeletons["object"] = Skeleton(("a", "b", "c"), ((0, 1), (1, 2)))
    turned = ctl.add_shape(RotatedBox(15, 12, 12, 6, 90))
    oval = ctl.add_shape(Ellipse(45, 12, 8, 4, 0))
    line = ctl.add_shape(Polyline(((5, 40), (30, 44))))
    pose = ctl.add_shape(Keypoints(((40, 30), (50, 35), (60, 30)), (2, 2, 0)))
    assert np.allclose(_item_rect(w, turned), (12, 6, 18, 18), atol=0.01)  # turned by 90 degrees
    assert np.allclose(_item_rect(w, oval), (37, 8, 53, 16), atol=0.01)
    assert np.allclose(_item_rect(w, line), (5, 40, 30, 44), atol=0.01)
    # the hidden third keypoint is not drawn: the outline spans the two labelled ones (dots of 2.5 px)
    assert np.allclose(_item_rect(w, pose), (37.5, 27.5, 52.5, 37.5), atol=0.01)
    key(qtbot, w, Qt.Key.Key_V)
    click(qtbot, w, 45, 12)  # inside the ellipse
    assert ctl.selected == [oval]
    drag(qtbot, w, (45, 12), (47, 15))
    moved = labels.get(oval).shape
    assert isinstance(moved, Ellipse) and np.allclose(
        (moved.cx, moved.cy, moved.rx, moved.ry), (47, 15, 8, 4), atol=0.6
    )
    click(qtbot, w, 15, 16)  # inside the turned box (outside it before turning)
    assert ctl.selected == [turned]
    click(qtbot, w, 17.5, 42)  # on the line
    assert ctl.selected == [line]
    key(qtbot, w, Qt.Key.Key_Delete)
    assert line not in labels and line not in w.labelling.controller.item._items
    w.labelling.undo_action.trigger()
    assert isinstance(labels.get(line).shape, Polyline)
    w.labelling.undo_action.trigger()  # the move
    assert labels.get(oval).shape == Ellipse(45, 12, 8, 4, 0)


def test_draw_an_ellipse_and_a_line_with_the_mouse(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)  # 64x48
    labels = w.labelling.session.labels
    key(qtbot, w, Qt.Key.Key_O)
    assert w.labelling.controller.mode == "ellipse"
    drag(qtbot, w, (10, 8), (30, 20))
    (oval,) = labels.annotations()
    assert isinstance(oval.shape, Ellipse)
    assert np.allclose(
        (oval.shape.cx, oval.shape.cy, oval.shape.rx, oval.shape.ry), (20, 14, 10, 6), atol=0.6
    )
    key(qtbot, w, Qt.Key.Key_L)
    for x, y in [(5, 40), (20, 44), (40, 40)]:
        click(qtbot, w, x, y)
    assert len(labels) == 1  # still drawing
    key(qtbot, w, Qt.Key.Key_Return)
    line = labels.annotations()[-1].shape
    assert isinstance(line, Polyline) and np.allclose(line.points, [(5, 40), (20, 44), (40, 40)], atol=0.6)
    w.labelling.undo_action.trigger()
    assert len(labels) == 1


def test_drag_a_point_of_a_line_and_a_keypoint(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    ctl, labels = w.labelling.controller, w.labelling.session.labels
    line = ctl.add_shape(Polyline(((5, 40), (30, 44))))
    pose = ctl.add_shape(Keypoints(((40, 10), (50, 12)), (2, 1)))
    key(qtbot, w, Qt.Key.Key_V)
    click(qtbot, w, 17.5, 42)
    assert ctl.selected == [line]
    drag(qtbot, w, (30, 44), (34, 30))  # its second point
    assert np.allclose(labels.get(line).shape.points, [(5, 40), (34, 30)], atol=0.6)
    click(qtbot, w, 40, 10)
    assert ctl.selected == [pose]
    drag(qtbot, w, (50, 12), (55, 20))
    moved = labels.get(pose).shape
    assert np.allclose(moved.points, [(40, 10), (55, 20)], atol=0.6) and moved.visibility == (2, 1)
    drag(qtbot, w, (45, 13), (46, 15))  # inside the pose, off its points: the whole pose moves
    assert np.allclose(labels.get(pose).shape.points, [(41, 12), (56, 22)], atol=0.6)
    w.labelling.undo_action.trigger()
    w.labelling.undo_action.trigger()
    assert labels.get(pose).shape.points == ((40, 10), (50, 12))
    assert w.labelling.undo_action.text().endswith("Move point")
