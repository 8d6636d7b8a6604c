"""core.from_predictions: batch predictions accepted into an in-memory project."""

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core.from_predictions import project_from_predictions
from vfmstudio.core.results import Classification, Masks, Prediction


def _masks(h, w):
    m = np.zeros((1, h, w), bool)
    m[0, 2:5, 3:7] = True
    return Masks(m, labels=("cat",), scores=np.array([0.9], np.float32), image_id="id-a")


def test_each_prediction_becomes_its_image_labels(tmp_path):
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "a.png", tmp_path / "sub" / "b.png"
    Image.new("RGB", (10, 8)).save(a)
    Image.new("RGB", (6, 4)).save(b)
    preds = [
        (Prediction("x.seg", None, ("id-a",), (_masks(8, 10),)), a),
        (
            Prediction(
                "x.cls",
                None,
                ("id-b",),
                (Classification(("dog", "cat"), np.array([0.8, 0.1]), image_id="id-b"),),
            ),
            b,
        ),
    ]
    project = project_from_predictions(preds, min_score=0.5)
    assert project.root == tmp_path
    assert {k: (r.width, r.height) for k, r in project.images.items()} == {
        "a.png": (10, 8),
        "sub/b.png": (6, 4),
    }
    anns = project.labels.annotations()
    assert [(x.image, x.label) for x in anns] == [("a.png", "cat")]
    assert project.labels.tags.get("sub/b.png") == ("dog",)


def test_a_missing_image_takes_its_size_from_the_masks(tmp_path):
    gone = tmp_path / "gone.png"
    project = project_from_predictions([(Prediction("x.seg", None, ("id-a",), (_masks(8, 10),)), gone)])
    assert (project.images["gone.png"].width, project.images["gone.png"].height) == (10, 8)


def test_nothing_to_build_from_is_refused():
    with pytest.raises(ValueError, match="no predictions"):
        project_from_predictions([])
