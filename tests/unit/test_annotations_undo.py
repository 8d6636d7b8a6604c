"""Undo/redo of every edit kind restores the exact previous state (property-based)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vfmstudio.core import commands as C
from vfmstudio.core.annotations import (
    Annotation,
    AnnotationError,
    Box,
    LabelSet,
    Mask,
    Points,
    Polygon,
    PolygonPart,
    accept_prediction,
)
from vfmstudio.core.results import Classification, Detections, Prediction, Text

H, W = 8, 10
IMAGES = ("a.png", "b.png")
NAMES = ("cat", "dog", "bird")

coord = st.floats(0, 10, allow_nan=False).map(lambda v: round(v, 2))


@st.composite
def shapes(draw):
    kind = draw(st.sampled_from(["box", "polygon", "mask", "points"]))
    if kind == "box":
        x0, x1 = sorted((draw(coord), draw(coord)))
        y0, y1 = sorted((draw(coord), draw(coord)))
        return Box(x0, y0, x1, y1)
    if kind == "polygon":
        ring = draw(st.lists(st.tuples(coord, coord), min_size=3, max_size=6))
        holes = draw(st.lists(st.lists(st.tuples(coord, coord), min_size=3, max_size=4), max_size=1))
        return Polygon((PolygonPart(ring, tuple(holes)),))
    if kind == "mask":
        bits = draw(st.lists(st.booleans(), min_size=H * W, max_size=H * W))
        return Mask.from_array(np.array(bits).reshape(H, W))
    return Points(tuple(draw(st.lists(st.tuples(coord, coord), min_size=1, max_size=3))))


@st.composite
def edits(draw, labels: LabelSet):
    """One random command for the current state (some of them are refused: that is tested too)."""
    ids = [a.id for a in labels.annotations()]
    kind = draw(
        st.sampled_from(
            [
                "add",
                "remove",
                "move",
                "reshape",
                "relabel",
                "paint",
                "tags",
                "caption",
                "add_class",
                "remove_class",
                "edit_class",
                "accept",
            ]
        )
    )
    if kind == "add" or not ids and kind in ("remove", "move", "reshape", "relabel", "paint"):
        anns = [
            Annotation(draw(st.sampled_from(IMAGES)), draw(st.sampled_from(NAMES)), draw(shapes()))
            for _ in range(draw(st.integers(1, 3)))
        ]
        return C.AddAnnotations(anns)
    if kind == "remove":
        return C.RemoveAnnotations(draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3)))
    if kind == "move":
        return C.move(
            labels, draw(st.lists(st.sampled_from(ids), min_size=1, max_size=2)), draw(coord), -draw(coord)
        )
    if kind == "reshape":
        ann = labels.get(draw(st.sampled_from(ids)))
        if isinstance(ann.shape, Polygon) and draw(st.booleans()):
            n = len(ann.shape.parts[0].exterior)
            return C.set_shape(
                labels,
                ann.id,
                ann.shape.with_vertex(0, 0, draw(st.integers(0, n - 1)), (draw(coord), draw(coord))),
            )
        return C.set_shape(labels, ann.id, draw(shapes()))
    if kind == "relabel":
        return C.change_label(
            labels,
            draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3)),
            draw(st.sampled_from(NAMES + ("fish",))),
        )
    if kind == "paint":
        masks = [i for i in ids if isinstance(labels.get(i).shape, Mask)]
        if not masks:
            return C.AddAnnotations([Annotation("a.png", "cat", Mask.from_array(np.eye(H, W, dtype=bool)))])
        stroke = C.brush_stroke(H, W, [(draw(coord), draw(coord)), (draw(coord), draw(coord))], 1.5)
        return C.paint_mask(labels, draw(st.sampled_from(masks)), stroke, erase=draw(st.booleans()))
    if kind == "tags":
        return C.SetTags(
            draw(st.sampled_from(IMAGES)), draw(st.lists(st.sampled_from(["x", "y", "z"]), max_size=3))
        )
    if kind == "caption":
        return C.SetCaption(draw(st.sampled_from(IMAGES)), draw(st.sampled_from(["", "a cat", "two dogs"])))
    if kind == "add_class":
        return C.AddClass(draw(st.sampled_from(NAMES + ("fish",))), index=draw(st.none() | st.integers(0, 2)))
    if kind == "remove_class":
        return C.RemoveClass(draw(st.sampled_from(NAMES + ("fish",))))
    if kind == "edit_class":
        return C.EditClass(
            draw(st.sampled_from(NAMES)),
            new_name=draw(st.sampled_from(NAMES + ("fish", "cow"))),
            color=draw(st.sampled_from([None, "#123456"])),
        )
    pred = Prediction(
        "t.x",
        "m",
        ("id",),
        (
            Detections(np.array([[0, 0, 2, 2], [1, 1, 3, 4]]), ("cat", "owl"), np.array([0.9, 0.4])),
            Classification(("indoor", "outdoor"), np.array([0.3, 0.6])),
            Text("caption from a model"),
        ),
    )
    accepted = accept_prediction(
        pred, draw(st.sampled_from(IMAGES)), min_score=draw(st.sampled_from([None, 0.5]))
    )
    return C.accept(accepted, labels)


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_random_edit_sequences_undo_and_redo_exactly(data):
    labels = LabelSet()
    labels.add(Annotation("a.png", "cat", Box(1, 1, 4, 4)))
    labels.add(Annotation("b.png", "dog", Mask.from_array(np.ones((H, W), dtype=bool))))
    stack = C.UndoStack(labels)
    history = [labels.to_json()]
    for _ in range(data.draw(st.integers(1, 25))):
        action = data.draw(st.sampled_from(["edit", "edit", "edit", "undo", "redo"]))
        if action == "undo":
            if stack.can_undo:
                stack.undo()
                assert labels.to_json() == history[stack.index]
            continue
        if action == "redo":
            if stack.can_redo:
                stack.redo()
                assert labels.to_json() == history[stack.index]
            continue
        before = labels.to_json()
        try:
            command = data.draw(edits(labels))
            stack.push(command)
        except AnnotationError:
            assert labels.to_json() == before  # a refused edit changes nothing
            continue
        del history[stack.index :]
        history.append(labels.to_json())
        assert len(history) == stack.index + 1
    # unwind everything, then replay everything
    while stack.can_undo:
        stack.undo()
        assert labels.to_json() == history[stack.index]
    while stack.can_redo:
        stack.redo()
        assert labels.to_json() == history[stack.index]


def test_clean_state_follows_the_stack():
    labels = LabelSet()
    changes = []
    stack = C.UndoStack(labels, on_changed=lambda: changes.append(stack.is_clean))
    assert stack.is_clean
    stack.push(C.AddClass("cat"))
    assert not stack.is_clean and stack.undo_text() == "Add class cat"
    stack.set_clean()
    stack.push(C.SetCaption("a.png", "x"))
    stack.undo()
    assert stack.is_clean
    stack.undo()
    assert not stack.is_clean
    stack.push(C.AddClass("dog"))  # the saved state is gone from the stack
    while stack.can_undo:
        stack.undo()
        assert not stack.is_clean
    assert changes[-1] is False


def test_refused_edits_raise_before_changing_anything():
    labels = LabelSet()
    a = labels.add(Annotation("a.png", "cat", Box(0, 0, 1, 1)))
    with pytest.raises(AnnotationError, match="no annotation"):
        C.RemoveAnnotations([a.id, "nope"]).do(labels)
    assert len(labels) == 1
    with pytest.raises(AnnotationError, match="already exists"):
        C.AddClass("cat").do(labels)
    with pytest.raises(AnnotationError, match="not a mask"):
        C.paint_mask(labels, a.id, np.zeros((2, 2), dtype=bool))
    labels.ensure_class("dog")
    with pytest.raises(AnnotationError, match="already exists"):
        C.EditClass("cat", new_name="dog").do(labels)
    macro = C.Macro([C.AddClass("fish"), C.AddClass("fish")], "twice")
    with pytest.raises(AnnotationError):
        macro.do(labels)
    assert labels.class_names == ["cat", "dog"]  # the half-done macro was rolled back
