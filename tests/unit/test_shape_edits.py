"""The geometry behind drawing and editing rotated boxes, ellipses and keypoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vfmstudio.core.annotations import AnnotationError, Ellipse, Keypoints, RotatedBox
from vfmstudio.core.shape_edits import (
    corner_moved,
    ellipse_in_drag,
    radius_moved,
    rotated_box_from_edge,
    rotated_toward,
    rotation_handle,
    visibility_toggled,
)

coords = st.floats(-200, 200, allow_nan=False)


def test_three_clicks_make_a_rotated_box_on_either_side_of_the_edge():
    assert rotated_box_from_edge((10, 10), (30, 10), (25, 20)) == RotatedBox(20, 15, 20, 10, 0)
    above = rotated_box_from_edge((10, 10), (30, 10), (12, 4))
    assert above == RotatedBox(20, 7, 20, 6, 0)
    turned = rotated_box_from_edge((0, 0), (30, 40), (-8, 6))  # 10 px off the edge, to its left
    assert (turned.w, turned.h) == pytest.approx((50, 10)) and turned.angle == pytest.approx(
        math.degrees(math.atan2(40, 30))
    )
    corners = np.asarray(turned.corners())
    assert np.allclose(corners[0], (0, 0)) and np.allclose(corners[1], (30, 40))
    with pytest.raises(AnnotationError):
        rotated_box_from_edge((5, 5), (5, 5), (9, 9))


@settings(max_examples=100, deadline=None)
@given(
    coords,
    coords,
    st.floats(1, 100),
    st.floats(1, 100),
    st.floats(-180, 180),
    st.integers(0, 3),
    st.floats(0.2, 1.5),
    st.floats(0.2, 1.5),
)
def test_a_dragged_corner_lands_on_the_mouse_and_the_opposite_corner_stays(cx, cy, w, h, angle, i, s, t):
    box = RotatedBox(cx, cy, w, h, angle)
    before = np.asarray(box.corners())
    opp = before[(i + 2) % 4]
    # anywhere on the same side of both edges through the opposite corner (no flip)
    target = opp + s * (before[(i + 1) % 4] - opp) + t * (before[(i + 3) % 4] - opp)
    moved = corner_moved(box, i, *target)
    after = np.asarray(moved.corners())
    assert moved.angle == box.angle
    assert np.allclose(after[(i + 2) % 4], opp, atol=1e-6)
    assert np.allclose(after[i], target, atol=1e-6)


def test_rotation_handle_follows_the_mouse_and_snaps():
    box = RotatedBox(50, 50, 40, 20, 0)
    assert rotation_handle(box, 5) == pytest.approx((50, 35))  # above the top side (y down)
    right = rotated_toward(box, 80, 50)  # top now faces right: turned 90 degrees clockwise
    assert right.angle == pytest.approx(90) and (right.cx, right.cy, right.w, right.h) == (50, 50, 40, 20)
    hx, hy = rotation_handle(right, 5)
    assert (hx, hy) == pytest.approx((65, 50))
    assert rotated_toward(box, 60, 30, snap=15).angle == pytest.approx(30)  # 26.6 degrees -> 30
    assert rotated_toward(box, 50, 50) is box
    oval = rotated_toward(Ellipse(0, 0, 10, 4), -1, 1)  # ellipses turn the same way
    assert oval.angle == pytest.approx(-135) and (oval.rx, oval.ry) == (10, 4)


def test_radius_handles_keep_the_centre_and_circles_round():
    oval = Ellipse(20, 20, 10, 5, 90)  # the rx axis points down
    assert radius_moved(oval, 0, 20, 34) == Ellipse(20, 20, 14, 5, 90)
    assert radius_moved(oval, 1, 12, 25) == Ellipse(20, 20, 10, 8, 90)  # projected on the ry axis
    round_ = Ellipse.circle(0, 0, 3)
    assert radius_moved(round_, 1, 0, -7) == Ellipse.circle(0, 0, 7)


def test_ellipse_in_drag_and_circle_with_shift():
    assert ellipse_in_drag((10, 8), (30, 20)) == Ellipse(20, 14, 10, 6)
    assert ellipse_in_drag((30, 20), (10, 8), circle=True) == Ellipse.circle(24, 14, 6)  # from the start
    assert ellipse_in_drag((10, 8), (30, 20), circle=True).is_circle


def test_visibility_toggle():
    pose = Keypoints(((1, 1), (2, 2), (3, 3)), (2, 1, 0))
    assert visibility_toggled(pose, 0).visibility == (1, 1, 0)
    assert visibility_toggled(pose, 1).visibility == (2, 2, 0)
    assert visibility_toggled(pose, 2).visibility == (2, 1, 2)
