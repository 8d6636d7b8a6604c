"""The minimum-area rotated rectangle of the core (numpy) against OpenCV's ``cv2.minAreaRect`` (the
reference implementation), and accepting masks as rotated boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vfmstudio.core.annotations import RotatedBox, accept_prediction
from vfmstudio.core.geometry import point_in_ring
from vfmstudio.core.results import Masks, Prediction
from vfmstudio.core.rotated_rect import convex_hull, mask_min_area_rect, mask_outline_points, min_area_rect

point_sets = st.lists(st.tuples(st.integers(-500, 500), st.integers(-500, 500)), min_size=3, max_size=60).map(
    lambda pts: np.asarray(pts, dtype=np.float64)
)


def _holds_every_point(rect, points: np.ndarray, slack: float) -> bool:
    box = RotatedBox(*rect)
    grown = RotatedBox(box.cx, box.cy, box.w + 2 * slack, box.h + 2 * slack, box.angle)
    ring = np.asarray(grown.corners())
    return all(point_in_ring(x, y, ring) for x, y in points)


@settings(max_examples=200, deadline=None)
@given(point_sets)
def test_min_area_rect_matches_opencv_and_holds_every_point(points):
    ours = min_area_rect(points)
    (_, _), (w, h), _ = cv2.minAreaRect(points.astype(np.float32))
    assert ours is not None
    assert ours[2] * ours[3] == pytest.approx(w * h, rel=1e-4, abs=1e-3)
    assert -45.0 <= ours[4] < 45.0
    assert _holds_every_point(ours, points, slack=1e-6)


@settings(max_examples=100, deadline=None)
@given(point_sets)
def test_convex_hull_matches_opencv(points):
    ours = convex_hull(points)
    theirs = cv2.convexHull(points.astype(np.float32))
    if len(ours) >= 3:
        assert cv2.contourArea(ours.astype(np.float32)) == pytest.approx(cv2.contourArea(theirs), abs=1e-3)


def test_a_turned_rectangle_mask_gives_its_box_back():
    truth = RotatedBox(50.0, 40.0, 60.0, 24.0, 30.0)
    mask = truth.to_mask(90, 100)
    rect = mask_min_area_rect(mask)
    assert rect is not None
    cx, cy, w, h, angle = rect
    # Rasterising adds up to a pixel around the edges; the angle and the centre stay close.
    assert (cx, cy) == pytest.approx((50.0, 40.0), abs=0.6)
    assert (w, h) == pytest.approx((60.0, 24.0), abs=1.5) and angle == pytest.approx(30.0, abs=2.0)
    # Same points, OpenCV's answer: the same area.
    (_, _), (cw, ch), _ = cv2.minAreaRect(mask_outline_points(mask).astype(np.float32))
    assert w * h == pytest.approx(cw * ch, rel=1e-4)


def test_pixel_squares_not_centres_and_degenerate_sets():
    m = np.zeros((10, 10), bool)
    m[2:5, 3:9] = True  # rows 2..4, columns 3..8: pixel edges x 3..9, y 2..5
    assert mask_min_area_rect(m) == pytest.approx((6.0, 3.5, 6.0, 3.0, 0.0))
    one = np.zeros((4, 4), bool)
    one[1, 2] = True
    assert mask_min_area_rect(one) == pytest.approx((2.5, 1.5, 1.0, 1.0, 0.0))
    assert mask_min_area_rect(np.zeros((5, 5), bool)) is None
    assert min_area_rect(np.zeros((0, 2))) is None
    assert min_area_rect(np.array([[3.0, 4.0]])) == (3.0, 4.0, 0.0, 0.0, 0.0)
    cx, cy, w, h, _ = min_area_rect(np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]))  # on one line
    assert (cx, cy, max(w, h), min(w, h)) == pytest.approx((3.0, 4.0, 10.0, 0.0), abs=1e-9)


def test_a_large_hull_stays_exact():
    t = np.linspace(0, 2 * np.pi, 3000, endpoint=False)  # > the chunk of directions tried at once
    ellipse = np.stack([400 + 300 * np.cos(t), 300 + 120 * np.sin(t)], axis=1)
    turned = (ellipse - (400, 300)) @ np.array([[np.cos(0.4), np.sin(0.4)], [-np.sin(0.4), np.cos(0.4)]])
    ours = min_area_rect(turned)
    (_, _), (w, h), _ = cv2.minAreaRect(turned.astype(np.float32))
    assert ours[2] * ours[3] == pytest.approx(w * h, rel=1e-4)


def test_accept_masks_as_rotated_boxes():
    truth = RotatedBox(30.0, 20.0, 30.0, 10.0, -20.0)
    masks = np.stack([truth.to_mask(40, 60), np.zeros((40, 60), bool)])
    pred = Prediction(
        tool="fake.seg",
        model="m",
        image_ids=("img",),
        results=(Masks(masks=masks, labels=("ship", "empty"), image_id="img"),),
    )
    acc = accept_prediction(pred, "a.png", masks_as_rotated_boxes=True)
    [ann] = acc.annotations  # the empty mask gives nothing
    assert ann.label == "ship" and isinstance(ann.shape, RotatedBox)
    assert ann.shape == RotatedBox(*mask_min_area_rect(masks[0]))
    assert ann.provenance.tool == "fake.seg"
    assert ann.shape.angle == pytest.approx(-20.0, abs=2.0)
