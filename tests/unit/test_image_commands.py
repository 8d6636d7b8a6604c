"""Removing images from a project is one undoable step: records and every label of the images go, and
undo brings back exactly what was there (order included); files on disk are never touched."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core.annotations import Annotation, AnnotationError, Box
from vfmstudio.core.commands import UndoStack
from vfmstudio.core.image_commands import RemoveImages
from vfmstudio.core.project import Project
from vfmstudio.core.review import Decision


@pytest.fixture
def project(tmp_path):
    proj = Project(tmp_path / "vfmstudio.json")
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((8, 10, 3), i * 40, np.uint8)).save(path)
        proj.add_image(path)
    labels = proj.labels
    for key, label in (("0.png", "cat"), ("1.png", "dog"), ("1.png", "cat"), ("2.png", "dog")):
        labels.add(Annotation(key, label, Box(0, 0, 4, 4)))
    labels.set_tags("1.png", ["blurry", "night"])
    labels.set_caption("1.png", "two animals")
    labels.set_tags("3.png", ["keep"])
    labels.extras["1.png"] = {"coco_id": 7}
    labels.decisions["1.png"] = {"run1": Decision(frozenset({(0, 0)}), frozenset({(0, 1)}))}
    return proj


def snapshot(proj: Project) -> str:
    """Everything saved, plus the in-memory orders a save would not show."""
    labels = proj.labels
    return json.dumps(
        {
            "project": proj.to_json(),
            "orders": [
                list(proj.images),
                list(labels._by_image),
                [a.id for a in labels.annotations()],
                list(labels.tags),
                list(labels.decisions),
            ],
        },
        sort_keys=True,
        default=str,
    )


def test_removing_images_drops_their_records_and_labels_and_undo_restores_everything(project, tmp_path):
    before = snapshot(project)
    stack = UndoStack(project.labels)
    stack.push(RemoveImages(project, ["1.png", "3.png"]))
    assert list(project.images) == ["0.png", "2.png"]
    labels = project.labels
    assert {a.image for a in labels.annotations()} == {"0.png", "2.png"}
    assert "1.png" not in labels.tags and "3.png" not in labels.tags
    assert "1.png" not in labels.captions and "1.png" not in labels.extras and "1.png" not in labels.decisions
    assert labels.class_names == ["cat", "dog"]  # classes belong to the project, not to images
    assert (tmp_path / "1.png").exists() and (tmp_path / "3.png").exists()
    after = snapshot(project)
    stack.undo()
    assert snapshot(project) == before
    stack.redo()
    assert snapshot(project) == after


def test_removal_is_refused_for_an_unknown_image_or_another_projects_labels(project, tmp_path):
    before = snapshot(project)
    with pytest.raises(AnnotationError, match="gone.png: not an image of the project"):
        RemoveImages(project, ["0.png", "gone.png"]).do(project.labels)
    other = Project(tmp_path / "other.json")
    with pytest.raises(AnnotationError, match="another project"):
        RemoveImages(project, ["0.png"]).do(other.labels)
    assert snapshot(project) == before


def test_the_removal_is_saved_and_the_saved_file_no_longer_lists_the_images(project, tmp_path):
    from vfmstudio.core.project import open_project

    project.save()
    stack = UndoStack(project.labels)
    stack.push(RemoveImages(project, ["2.png"]))
    project.save()
    again = open_project(tmp_path / "vfmstudio.json")
    assert list(again.images) == ["0.png", "1.png", "3.png"]
    assert [a.label for a in again.labels.annotations("2.png")] == []
