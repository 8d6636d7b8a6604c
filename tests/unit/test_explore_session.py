"""What the Explore map asks of the project: points matched to project images (also when the project
file lives above the explored folder), categories by class, tag and review state, and which copies of
each duplicate group are removed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core.annotations import Annotation, Box
from vfmstudio.core.project import Project
from vfmstudio.session.explore import (
    NO_CLASS,
    NO_TAG,
    class_categories,
    copies_to_remove,
    project_keys,
    review_categories,
    tag_categories,
)


@pytest.fixture
def project(tmp_path):
    """A project at tmp_path whose images sit in tmp_path/photos (and one outside it)."""
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    proj = Project(tmp_path / "vfmstudio.json")
    for rel in ("photos/a.png", "photos/sub/b.png", "photos/c.png", "elsewhere.png"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / rel)
        proj.add_image(tmp_path / rel, key=f"k-{rel}")
    return proj


def test_points_of_a_subfolder_map_to_the_project_keys(project, tmp_path):
    rels = ["a.png", "sub/b.png", "not-added.png", "c.png"]
    assert project_keys(project, tmp_path / "photos", rels) == [
        "k-photos/a.png",
        "k-photos/sub/b.png",
        None,
        "k-photos/c.png",
    ]
    assert project_keys(project, tmp_path, ["elsewhere.png", "photos/a.png"]) == [
        "k-elsewhere.png",
        "k-photos/a.png",
    ]


def test_class_colour_is_the_most_frequent_class_of_an_image(project):
    labels = project.labels
    labels.ensure_class("dog")
    labels.ensure_class("cat")
    for key, label in (("k-photos/a.png", "cat"), ("k-photos/a.png", "cat"), ("k-photos/a.png", "dog")):
        labels.add(Annotation(key, label, Box(0, 0, 1, 1)))
    labels.add(Annotation("k-photos/sub/b.png", "cat", Box(0, 0, 1, 1)))
    labels.add(Annotation("k-photos/sub/b.png", "dog", Box(0, 0, 1, 1)))  # a tie: the earlier class
    keys = ["k-photos/a.png", "k-photos/sub/b.png", "k-photos/c.png", None]
    cats = class_categories(project, keys)
    assert cats.names == ["dog", "cat", NO_CLASS]  # the project's class order, then the unlabelled
    assert [cats.names[c] for c in cats.codes] == ["cat", "dog", NO_CLASS, NO_CLASS]
    assert cats.counts == [1, 1, 2]


def test_tag_colour_is_the_first_tag_and_categories_are_ordered_by_size(project):
    project.labels.set_tags("k-photos/a.png", ["night", "blurry"])
    project.labels.set_tags("k-photos/c.png", ["night"])
    project.labels.set_tags("k-photos/sub/b.png", ["blurry"])
    keys = ["k-photos/a.png", "k-photos/sub/b.png", "k-photos/c.png", "k-elsewhere.png"]
    cats = tag_categories(project, keys)
    assert cats.names == ["night", "blurry", NO_TAG]
    assert [cats.names[c] for c in cats.codes] == ["night", "blurry", "night", NO_TAG]
    assert cats.counts == [2, 1, 1]


def test_review_colour_uses_the_states_and_files_outside_the_project_are_unlabelled():
    states = {"a": "predicted", "b": "reviewed", "c": "labelled"}
    cats = review_categories(states, ["b", "a", None, "c", "a"])
    assert cats.names == ["unlabelled", "labelled", "predicted", "reviewed"]  # core.review.STATES order
    assert [cats.names[c] for c in cats.codes] == [
        "reviewed",
        "predicted",
        "unlabelled",
        "labelled",
        "predicted",
    ]
    assert cats.counts == [1, 1, 2, 1]


def test_copies_to_remove_keeps_one_per_group():
    groups = [["a.png", "a copy.png", "a again.png"], ["b.png", "b2.png"]]
    assert copies_to_remove(groups, "first") == [["a copy.png", "a again.png"], ["b2.png"]]
    pixels = {"a.png": 100, "a copy.png": 400, "a again.png": 400, "b.png": 10, "b2.png": 5}
    assert copies_to_remove(groups, "largest", pixels.__getitem__) == [["a.png", "a again.png"], ["b2.png"]]


def test_a_file_in_two_groups_kept_by_one_is_kept_by_both_so_no_group_loses_every_file():
    # An exact pair (x, x copy) is also inside a near group with y, which has more pixels.
    groups = [["x.png", "x copy.png"], ["x.png", "x copy.png", "y.png"]]
    pixels = {"x.png": 100, "x copy.png": 100, "y.png": 900}
    for keep in ("first", "largest"):
        plan = copies_to_remove(groups, keep, pixels.__getitem__)
        gone = {f for g in plan for f in g}
        assert all(set(g) - gone for g in groups), (keep, plan)
    assert copies_to_remove(groups, "first") == [["x copy.png"], ["x copy.png", "y.png"]]
    with pytest.raises(ValueError, match="keep must be one of"):
        copies_to_remove(groups, "newest")
