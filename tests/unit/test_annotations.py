"""Annotations: shapes, exact mask <-> polygon geometry, label sets and accepting predictions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vfmstudio.core import geometry
from vfmstudio.core.annotations import (
    Annotation,
    AnnotationError,
    Box,
    LabelClass,
    LabelSet,
    Mask,
    Points,
    Polygon,
    PolygonPart,
    accept_prediction,
)
from vfmstudio.core.results import Classification, Detections, Heatmap, Masks, Prediction, Text

masks_2d = st.integers(1, 24).flatmap(
    lambda h: st.integers(1, 24).flatmap(lambda w: arrays(np.bool_, (h, w)))
)


@settings(max_examples=300, deadline=None)
@given(masks_2d)
def test_mask_to_polygons_rasterises_back_exactly(mask):
    parts = geometry.mask_to_parts(mask)
    assert np.array_equal(geometry.rasterize_parts(parts, *mask.shape), mask)
    assert (
        sum(geometry.ring_area(e) - sum(-geometry.ring_area(h) for h in hs) for e, hs in parts) == mask.sum()
    )


def test_holes_and_parts_are_found():
    m = np.zeros((12, 12), dtype=bool)
    m[1:9, 1:9] = True
    m[3:6, 3:6] = False  # a hole
    m[4, 4] = True  # an island inside the hole: its own part
    m[10, 10] = True  # a separate part
    m[9, 9] = True  # touches (10, 10) only at a corner: 4-connectivity keeps them apart
    parts = geometry.mask_to_parts(m)
    assert [len(h) for _, h in parts] == [1, 0, 0, 0]
    assert parts[0][0].tolist() == [[1, 1], [9, 1], [9, 9], [1, 9]]
    polygon = Mask.from_array(m).to_polygon(tolerance=0)
    assert polygon.has_holes and len(polygon.parts) == 4
    assert np.array_equal(polygon.to_mask(12, 12), m)


def test_simplification_bounds_the_deviation():
    yy, xx = np.mgrid[0:200, 0:200]
    disk = (yy - 100) ** 2 + (xx - 100) ** 2 < 70**2
    exact = geometry.mask_to_parts(disk)[0][0]
    simple = geometry.mask_to_parts(disk, tolerance=1.0)[0][0]
    assert len(simple) < len(exact) / 5
    back = geometry.rasterize_rings([simple], 200, 200)
    assert (back ^ disk).sum() / disk.sum() < 0.02


def test_rasterize_follows_pixel_centres():
    m = geometry.rasterize_rings([[(0.6, 0), (2.6, 0), (2.6, 1), (0.6, 1)]], 2, 4)
    assert m.tolist() == [[False, True, True, False], [False, False, False, False]]
    assert Box(0, 0, 2, 2).to_mask(3, 3).sum() == 4


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Box(5, 0, 1, 1), "x1 >= x0"),
        (lambda: Box(0, 0, float("nan"), 1), "finite"),
        (lambda: Polygon.simple([(0, 0), (1, 1)]), "at least 3 points"),
        (lambda: Polygon(()), "at least one part"),
        (lambda: Points(()), "at least one point"),
        (lambda: Mask(2, 2, (1, 1)), "do not cover"),
        (lambda: LabelClass("x", "red"), "#rrggbb"),
        (lambda: Annotation("im", "", Box(0, 0, 1, 1)), "class label"),
    ],
)
def test_invalid_shapes_are_refused_with_a_reason(make, message):
    with pytest.raises(AnnotationError, match=message):
        make()


def test_shapes_move_and_edit():
    assert Box(1, 2, 3, 4).translated(1, -1) == Box(2, 1, 4, 3)
    poly = Polygon((PolygonPart([(0, 0), (4, 0), (4, 4)], ([(1, 1), (2, 1), (2, 2)],)),))
    moved = poly.with_vertex(0, 1, 2, (3, 3))
    assert moved.parts[0].holes[0][2] == (3.0, 3.0) and poly.parts[0].holes[0][2] == (2.0, 2.0)
    m = np.zeros((5, 5), dtype=bool)
    m[0, 0] = True
    assert Mask.from_array(m).translated(2, 1).to_array()[1, 2]
    assert poly.area() == pytest.approx(8 - 0.5)


def _labels() -> LabelSet:
    labels = LabelSet()
    labels.add(Annotation("a.png", "cat", Box(0, 0, 2, 2)))
    labels.add(Annotation("a.png", "dog", Polygon.simple([(0, 0), (3, 0), (0, 3)]), attributes={"note": "x"}))
    m = np.zeros((4, 5), dtype=bool)
    m[1:3, 2:4] = True
    labels.add(Annotation("b.png", "cat", Mask.from_array(m)))
    labels.add(Annotation("b.png", "cat", Points(((1, 1),))))
    labels.set_tags("a.png", ["indoor", "indoor", " "])
    labels.set_caption("b.png", "two cats")
    return labels


def test_label_set_json_round_trip():
    labels = _labels()
    again = LabelSet.from_json(labels.to_json())
    assert again == labels
    assert again.tags["a.png"] == ("indoor",)
    assert again.class_names == ["cat", "dog"] and again.color_of("cat").startswith("#")
    assert [a.id for a in again.annotations("b.png")] == [a.id for a in labels.annotations("b.png")]


def _prediction() -> Prediction:
    masks = np.zeros((2, 6, 8), dtype=bool)
    masks[0, 1:4, 1:4] = True
    masks[1, 2:6, 4:8] = True
    masks[1, 3:5, 5:7] = False  # a hole
    return Prediction(
        "dinov2.segment",
        "facebook/dinov2-small",
        ("img-id",),
        (
            Detections(np.array([[0, 0, 2, 2], [1, 1, 5, 5]]), ("cat", "dog"), np.array([0.9, 0.3])),
            Masks(masks, ("cat", "dog"), np.array([0.8, 0.6])),
            Classification(("indoor", "outdoor"), np.array([0.2, 0.7])),
            Text("a cat and a dog"),
            Heatmap(np.zeros((2, 2))),  # not acceptable: ignored
        ),
        params={"threshold": 0.5},
    )


def test_accept_all_keeps_provenance():
    got = accept_prediction(_prediction(), "a.png")
    assert [a.shape.kind for a in got.annotations] == ["box", "box", "mask", "mask"]
    first = got.annotations[0]
    assert first.provenance.source == "model" and first.provenance.tool == "dinov2.segment"
    assert first.provenance.model == "facebook/dinov2-small" and first.provenance.params == {"threshold": 0.5}
    assert first.score == pytest.approx(0.9)
    assert got.tags == {"a.png": ["outdoor"]} and got.captions == {"a.png": "a cat and a dog"}
    assert got.labels == ["cat", "dog"]


def test_accept_selected_items_above_a_score_as_polygons():
    got = accept_prediction(
        _prediction(),
        "a.png",
        select=[(1, 1), (0, 0), (0, 1), (2, 0)],
        min_score=0.5,
        masks_as_polygons=True,
        tolerance=0,
    )
    assert [(a.label, a.shape.kind) for a in got.annotations] == [("cat", "box"), ("dog", "polygon")]
    poly = got.annotations[1].shape
    assert poly.has_holes and np.array_equal(poly.to_mask(6, 8), _prediction().results[1].masks[1])
    assert got.tags == {"a.png": ["outdoor"]} and got.captions == {}  # labels sorted by score: 0 = outdoor


def test_accept_maps_image_ids_to_keys():
    pred = Prediction("x.y", None, ("id1",), (Detections(np.array([[0, 0, 1, 1]]), ("a",), image_id="id1"),))
    assert accept_prediction(pred, {"id1": "dir/one.png"}).annotations[0].image == "dir/one.png"
    with pytest.raises(AnnotationError, match="no matching project image"):
        accept_prediction(pred, {"other": "x.png"})


def test_annotations_at_a_point_topmost_first():
    from vfmstudio.core.annotations import annotations_at

    labels = LabelSet()
    box = labels.add(Annotation("a.png", "cat", Box(0, 0, 10, 10)))
    ring = labels.add(
        Annotation(
            "a.png",
            "dog",
            Polygon((PolygonPart([(2, 2), (8, 2), (8, 8), (2, 8)], ([(4, 4), (6, 4), (6, 6), (4, 6)],)),)),
        )
    )
    m = np.zeros((12, 12), dtype=bool)
    m[5, 5] = True
    mask = labels.add(Annotation("a.png", "cat", Mask.from_array(m)))
    pt = labels.add(Annotation("a.png", "cat", Points(((9, 9),))))
    assert annotations_at(labels, "a.png", 3, 3) == [ring.id, box.id]
    assert annotations_at(labels, "a.png", 5.5, 5.5) == [mask.id, box.id]  # inside the hole of the polygon
    assert annotations_at(labels, "a.png", 9.5, 8) == [pt.id, box.id]
    assert annotations_at(labels, "a.png", 30, 30) == [] and annotations_at(labels, "b.png", 3, 3) == []
