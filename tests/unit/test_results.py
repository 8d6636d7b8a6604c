"""Result types: validation on creation and JSON round trips (inline and sidecar .npy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vfmstudio.core import rle
from vfmstudio.core.results import (
    Classification,
    Correspondences,
    Detections,
    FeatureImage,
    Heatmap,
    Histogram,
    LayerMaps,
    Masks,
    Prediction,
    Ranking,
    ResultError,
    Table,
    Text,
    result_from_json,
)

rng = np.random.default_rng(0)


def examples():
    masks = rng.random((3, 20, 30)) > 0.6
    return [
        Classification(labels=("cat", "dog", "car"), scores=np.array([0.1, 0.7, 0.2]), image_id="a"),
        Detections(
            boxes_xyxy=[[1, 2, 10, 12], [0, 0, 5, 5]], labels=("cat", "dog"), scores=[0.9, 0.3], image_id="a"
        ),
        Detections(boxes_xyxy=np.zeros((0, 4)), labels=(), image_id="a"),
        Masks(masks=masks, labels=("a", "b", "c"), scores=[0.5, 0.6, 0.7], image_id="a"),
        Heatmap(values=rng.random((37, 50)), label="sim", extent=(0, 0, 700, 518), image_id="a"),
        Histogram(counts=[1, 5, 2], edges=[0.0, 0.5, 1.0, 1.5], threshold=0.7, label="pc1"),
        FeatureImage(
            rgb=rng.integers(0, 255, (8, 9, 3), dtype=np.uint8), foreground=rng.random((8, 9)) > 0.5
        ),
        Correspondences(
            source_xy=rng.random((4, 2)) * 100,
            target_xy=rng.random((4, 2)) * 100,
            scores=rng.random(4),
            source_image="a",
            target_image="b",
        ),
        LayerMaps(values=rng.random((13, 6, 7)), names=tuple(f"layer {i}" for i in range(13))),
        Table(columns=("layer", "median", "max"), rows=((0, 1.5, 3.0), (1, 2.0, 9.5)), title="norms"),
        Ranking(
            image_ids=("x", "y", "z"),
            scores=[0.1, 0.9, 0.5],
            names=("x.jpg", "y.jpg", "z.jpg"),
            query="a cat",
        ),
        Text(text="a cat on a sofa", prompt="caption en", image_id="a"),
    ]


@pytest.mark.parametrize("result", examples(), ids=lambda r: r.kind)
@pytest.mark.parametrize("sidecar", [False, True])
def test_json_round_trip(result, sidecar, tmp_path):
    folder = tmp_path if sidecar else None
    obj = json.loads(json.dumps(result.to_json(folder)))
    back = result_from_json(obj, folder)
    assert back.equals(result)


def test_large_arrays_go_to_sidecar_files(tmp_path):
    heat = Heatmap(values=rng.random((100, 100)))
    obj = heat.to_json(tmp_path)
    assert "npy" in obj["values"]
    assert (tmp_path / obj["values"]["npy"]).exists()
    obj["values"]["npy"] = "../escape.npy"
    with pytest.raises(ResultError, match="escapes"):
        result_from_json(obj, tmp_path)


def test_classification_sorted_high_to_low():
    c = Classification(labels=("a", "b", "c"), scores=[0.2, 0.5, 0.3])
    assert c.labels == ("b", "c", "a")
    assert c.top == ("b", pytest.approx(0.5))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Detections(boxes_xyxy=[[1, 2, 3]], labels=("a",)), "boxes_xyxy"),
        (lambda: Detections(boxes_xyxy=[[5, 5, 1, 1]], labels=("a",)), "x1 >= x0"),
        (lambda: Detections(boxes_xyxy=[[1, 1, 5, 5]], labels=("a", "b")), "expected 1 labels"),
        (lambda: Masks(masks=np.zeros((2, 4)), labels=("a", "b")), "3 dimensions"),
        (lambda: Heatmap(values=np.array([[np.nan, 1.0]])), "NaN"),
        (lambda: Heatmap(values=np.ones((2, 2)), extent=(5, 0, 1, 1)), "x1 > x0"),
        (lambda: FeatureImage(rgb=np.zeros((4, 4, 3), np.float32)), "uint8"),
        (lambda: FeatureImage(rgb=np.zeros((4, 4, 3), np.uint8), foreground=np.ones((3, 4))), "foreground"),
        (lambda: Histogram(counts=[1, 2], edges=[0, 1]), "edges"),
        (
            lambda: Correspondences(
                source_xy=np.zeros((3, 2)), target_xy=np.zeros((2, 2)), scores=np.zeros(3)
            ),
            "target_xy",
        ),
        (lambda: Table(columns=("a",), rows=((1, 2),)), "rows[0]"),
        (lambda: Text(text=5), "text"),
    ],
)
def test_validation_names_the_problem(build, message):
    with pytest.raises(ResultError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build()


def test_results_are_read_only():
    h = Heatmap(values=np.ones((2, 2)))
    with pytest.raises(ValueError):
        h.values[0, 0] = 5


def test_masks_derive_tight_boxes():
    m = np.zeros((1, 10, 10), bool)
    m[0, 2:5, 3:9] = True
    assert Masks(masks=m, labels=("x",)).boxes_xyxy.tolist() == [[3, 2, 9, 5]]


def test_prediction_round_trip_and_newer_schema_refused(tmp_path):
    pred = Prediction(
        tool="x.y",
        model="m",
        image_ids=("a",),
        results=tuple(examples()),
        params={"k": (1, 2)},
        image_paths=("a.jpg",),
        device="cpu",
        timings={"run_s": 0.5},
    )
    obj = json.loads(json.dumps(pred.to_json(tmp_path)))
    back = Prediction.from_json(obj, tmp_path)
    assert back.tool == "x.y" and back.params == {"k": [1, 2]}
    assert all(a.equals(b) for a, b in zip(back.results, pred.results))
    obj["schema"] = 99
    with pytest.raises(ResultError, match="newer"):
        Prediction.from_json(obj)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"type": "nope"},
        {"type": "masks", "size": [2, 2]},
        {"type": "masks", "size": [2, 2], "rle": [{"size": [2, 2], "counts": [1, 1]}], "labels": ["a"]},
    ],
)
def test_malformed_json_is_refused_cleanly(bad):
    with pytest.raises(ResultError):
        result_from_json(bad)


@settings(max_examples=150, deadline=None)
@given(arrays(bool, st.tuples(st.integers(0, 25), st.integers(0, 25))))
def test_rle_round_trip(mask):
    encoded = rle.encode(mask)
    assert np.array_equal(rle.decode(encoded), mask)
    assert rle.area(encoded) == int(mask.sum())
    counts = rle.mask_to_counts(mask)
    assert rle.string_to_counts(rle.counts_to_string(counts)) == counts
