"""Keypoint skeletons typed as text, and the undoable commands that set, rename and remove them."""

from __future__ import annotations

import pytest

from vfmstudio.core import commands as cmd
from vfmstudio.core.annotations import AnnotationError, LabelSet, Skeleton
from vfmstudio.session.skeletons import parse_skeleton, skeleton_text


def test_names_and_edges_by_name_or_number():
    sk = parse_skeleton("nose, neck ,left-eye,\nright eye", "nose-neck, left-eye-nose, 4-1, neck-nose")
    assert sk == Skeleton(("nose", "neck", "left-eye", "right eye"), ((0, 1), (2, 0), (3, 0)))
    assert parse_skeleton(*skeleton_text(sk)) == sk
    assert parse_skeleton("  ", "") is None and skeleton_text(None) == ("", "")


@pytest.mark.parametrize(
    ("names", "edges", "message"),
    [
        ("a, b, a", "", "'a' named twice"),
        ("a, b", "a-c", "does not join two of the keypoints"),
        ("a, b", "a-a", "to itself"),
        ("a, b", "a-3", "does not join"),
        ("", "a-b", "edges need keypoint names"),
    ],
)
def test_bad_skeleton_text_is_one_clear_line(names, edges, message):
    with pytest.raises(AnnotationError, match=message):
        parse_skeleton(names, edges)


def test_set_rename_and_remove_carry_the_skeleton_with_undo():
    labels = LabelSet()
    labels.ensure_class("person")
    stack = cmd.UndoStack(labels)
    pose = Skeleton(("head", "hand"), ((0, 1),))
    stack.push(cmd.SetSkeleton("person", pose))
    assert labels.skeletons == {"person": pose}
    stack.push(cmd.EditClass("person", new_name="human"))
    assert labels.skeletons == {"human": pose}
    stack.push(cmd.RemoveClass("human"))
    assert labels.skeletons == {}
    stack.undo()
    assert labels.skeletons == {"human": pose}
    stack.undo()
    assert labels.skeletons == {"person": pose}
    stack.undo()
    assert labels.skeletons == {}
    with pytest.raises(AnnotationError):
        cmd.SetSkeleton("nobody", pose).do(labels)
    assert "nobody" not in labels.skeletons
