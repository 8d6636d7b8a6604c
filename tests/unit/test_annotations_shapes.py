"""The rotated box, ellipse, polyline and keypoint shapes: geometry against closed forms, JSON and
project round trips, validation, hit tests and undoable edits."""

from __future__ import annotations

import numpy as np
import pytest

from vfmstudio.core import commands
from vfmstudio.core.annotations import (
    Annotation,
    AnnotationError,
    Ellipse,
    Keypoints,
    LabelSet,
    Polyline,
    RotatedBox,
    Skeleton,
    annotations_at,
    shape_area,
    shape_from_json,
)
from vfmstudio.core.exchange import LossReport, noun
from vfmstudio.core.project import open_project


def test_rotated_box_corners_bbox_and_area_match_the_closed_form():
    b = RotatedBox(10, 20, 8, 4, 90)
    assert np.allclose(b.corners(), [(12, 16), (12, 24), (8, 24), (8, 16)])
    assert b.bbox() == pytest.approx((8, 16, 12, 24))
    big = RotatedBox(50, 50, 40, 20, 30)
    assert shape_area(big, 100, 100) == pytest.approx(800, rel=0.03)  # rasterised vs w*h
    again = RotatedBox.from_corners(big.corners())
    assert (again.cx, again.cy, again.w, again.h, again.angle) == pytest.approx((50, 50, 40, 20, 30))
    assert RotatedBox(0, 0, 1, 1, 270).angle == -90 and RotatedBox(0, 0, 1, 1, 180).is_axis_aligned
    with pytest.raises(AnnotationError, match="w >= 0"):
        RotatedBox(0, 0, -1, 1)
    with pytest.raises(AnnotationError, match="4 finite corner points"):
        RotatedBox.from_corners([(0, 0), (1, 0), (1, 1)])


def test_ellipse_bbox_area_and_inside_test():
    e = Ellipse(50, 40, 20, 10, 90)  # turned upright: 20 wide, 40 tall
    assert e.bbox() == pytest.approx((40, 20, 60, 60))
    assert shape_area(e, 100, 100) == pytest.approx(np.pi * 200, rel=0.02)
    assert e.contains(50, 58) and e.contains(58, 40) and not e.contains(61, 40) and not e.contains(50, 61)
    assert Ellipse.circle(1, 2, 3).is_circle and not e.is_circle


def test_polyline_and_keypoints_validate_and_cover_no_area():
    line = Polyline(((0, 0), (10, 0), (10, 10)))
    assert line.distance(5, 2) == pytest.approx(2) and shape_area(line, 20, 20) == 0
    with pytest.raises(AnnotationError, match="at least 2 points"):
        Polyline(((0, 0),))
    kp = Keypoints(((1, 2), (3, 4), (0, 0)), (2, 1, 0), ("a", "b", "c"))
    assert kp.labelled == 2 and kp.bbox() == (1, 2, 3, 4)  # the unlabelled point is not part of it
    assert Keypoints(((1, 2),)).visibility == (2,)
    with pytest.raises(AnnotationError, match="visibility"):
        Keypoints(((1, 2),), (3,))
    with pytest.raises(AnnotationError, match="names"):
        Keypoints(((1, 2),), (2,), ("a", "b"))
    with pytest.raises(AnnotationError, match="outside"):
        Skeleton(("a",), ((0, 1),))


@pytest.mark.parametrize(
    "shape",
    [
        RotatedBox(5, 6, 7, 8, 9),
        Ellipse(1, 2, 3, 4, 5),
        Polyline(((0, 0), (1, 1))),
        Keypoints(((1, 1), (2, 2)), (2, 0), ("x", "y")),
    ],
)
def test_new_shapes_survive_json_and_a_project_file(tmp_path, shape):
    assert shape_from_json(shape.to_json()) == shape
    project = open_project(tmp_path / "p.json", create=True)
    project.labels.add(Annotation("a.png", "thing", shape))
    project.labels.skeletons["thing"] = Skeleton(("x", "y"), ((0, 1),))
    project.save()
    back = open_project(tmp_path / "p.json").labels
    assert back.annotations("a.png")[0].shape == shape and back.skeletons == project.labels.skeletons


def test_hits_moves_and_undo_of_new_shapes():
    labels = LabelSet()
    turned = labels.add(Annotation("a", "x", RotatedBox(10, 10, 20, 2, 90)))
    line = labels.add(Annotation("a", "x", Polyline(((30, 0), (30, 20)))))
    assert annotations_at(labels, "a", 10, 18) == [turned.id]  # inside only once turned
    assert annotations_at(labels, "a", 18, 10) == []
    assert annotations_at(labels, "a", 31, 10) == [line.id]
    stack = commands.UndoStack(labels)
    stack.push(commands.move(labels, [turned.id, line.id], 5, 1))
    assert labels.get(turned.id).shape == RotatedBox(15, 11, 20, 2, 90)
    assert labels.get(line.id).shape.points == ((35, 1), (35, 21))
    stack.undo()
    assert labels.get(turned.id).shape == RotatedBox(10, 10, 20, 2, 90)


def test_loss_report_words():
    r = LossReport()
    r.kept["rotated_box"] = 3
    r.kept["keypoints"] = 1
    r.converted[("circle", "polygon")] = 2
    r.dropped[("polyline", "COCO cannot hold them")] = 1
    assert r.summary() == (
        "kept 1 keypoint set, 3 rotated boxes; converted 2 circles to polygons; "
        "dropped 1 polyline (COCO cannot hold them)"
    )
    assert noun("box", 2) == "2 boxes" and noun("odd_kind", 1) == "1 odd kind"


def test_moving_one_point_keeps_the_others_and_labels_a_placed_keypoint():
    kp = Keypoints(((1, 1), (0, 0)), (2, 0))
    moved = kp.with_point(1, (5, 6))
    assert moved.points == ((1, 1), (5, 6)) and moved.visibility == (2, 2)
    assert Polyline(((0, 0), (1, 1))).with_point(0, (2, 3)).points == ((2, 3), (1, 1))
