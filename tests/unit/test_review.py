"""Pending predictions and their review, Qt-free: the items a prediction offers, decisions that
accept and reject (undoable, saved, merged), the class map, the sidecar store and its recovery."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vfmstudio.core.commands import UndoStack
from vfmstudio.core.pending import INDEX, PendingStore, entry_for, run_id_for, store_root
from vfmstudio.core.project import Project, open_project
from vfmstudio.core.project_merge import merge_from_disk
from vfmstudio.core.results import Classification, Detections, Masks, Prediction, Text
from vfmstudio.core.review import (
    LABELLED,
    PREDICTED,
    REVIEWED,
    UNLABELLED,
    SetClassMap,
    accept_all,
    image_state,
    items_of,
    open_items,
    parse_class_map,
    reject_all,
    review_command,
)
from vfmstudio.engines.into_project import PendingRunOutput
from vfmstudio.engines.outputs import SourceStat
from vfmstudio.engines.sources import Item, image_key
from vfmstudio.session.pending import PendingView

RUN = "det-0123456789"


def detections(scores=(0.9, 0.3), labels=("cat", "dog")) -> Prediction:
    boxes = np.array([[1, 2, 10, 12], [5, 5, 20, 25]][: len(scores)], dtype=np.float32)
    return Prediction("t.detect", "org/m", ("id0",), (Detections(boxes, labels, np.array(scores)),), {"k": 1})


def mixed() -> Prediction:
    masks = np.zeros((2, 80, 80), dtype=bool)  # over the 4 KiB inlined in JSON
    masks[0, 2:40, 2:40] = True
    masks[1, 38:74, 1:75] = True
    return Prediction(
        "t.all",
        None,
        ("id0",),
        (
            Masks(masks, ("cat", "dog"), scores=np.array([0.8, 0.4])),
            Classification(("indoor", "outdoor"), np.array([0.3, 0.7])),
            Text("a cat on a mat"),
        ),
    )


def project_with(tmp_path, *keys: str) -> Project:
    p = Project(tmp_path / "p.json")
    from vfmstudio.core.project import ImageRecord

    for k in keys:
        p.images[k] = ImageRecord(k, k, "", 16, 16)
    return p


def store_prediction(project: Project, image: str, pred: Prediction, run: str = RUN) -> None:
    store = PendingStore(project.path)
    out = PendingRunOutput(store, run)
    out.predictions.mkdir(parents=True, exist_ok=True)
    (out.root / "manifest.json").write_text(
        json.dumps({"tool": pred.tool, "model": pred.model, "params": {}})
    )
    out.write_prediction(Item(str(project.root / image), image, image_key(image)), pred, SourceStat(1, 1))


# ---------------------------------------------------------------------- items and decisions


def test_items_of_offers_each_box_mask_tag_and_the_caption():
    items = items_of(mixed())
    assert [(it.kind, it.label, it.default) for it in items] == [
        ("mask", "cat", True),
        ("mask", "dog", True),
        ("tag", "outdoor", True),  # a classification lists its labels best first
        ("tag", "indoor", False),  # not the top label: "accept all" leaves it
        ("caption", "a cat on a mat", True),
    ]
    assert items[0].score == pytest.approx(0.8)


def test_a_detector_that_found_nothing_offers_no_caption():
    pred = Prediction(
        "t", None, (), (Detections(np.zeros((0, 4)), (), np.zeros(0)), Text("no objects found"))
    )
    assert items_of(pred) == ()


def test_accept_all_takes_items_at_or_above_the_score_and_rejects_the_rest(tmp_path):
    project = project_with(tmp_path, "a.png")
    pred = detections()
    entry = entry_for(RUN, "k", "a.png", pred)
    labels = project.labels
    stack = UndoStack(labels)
    plan = accept_all(labels, "a.png", entry, pred, min_score=0.5)
    assert (plan.accepted, plan.rejected, plan.annotations) == (1, 1, 1)
    stack.push(plan.command)
    [ann] = labels.annotations("a.png")
    assert ann.label == "cat"
    assert ann.provenance.source == "model" and ann.provenance.tool == "t.detect"
    assert ann.provenance.model == "org/m" and ann.provenance.score == pytest.approx(0.9)
    assert open_items(entry, labels, "a.png") == ()
    assert image_state("a.png", [entry], labels) == REVIEWED
    stack.undo()  # one step restores the pending items and removes the annotation and its class
    assert labels.annotations("a.png") == ()
    assert labels.class_names == []
    assert len(open_items(entry, labels, "a.png")) == 2
    assert image_state("a.png", [entry], labels) == PREDICTED
    stack.redo()
    assert [a.label for a in labels.annotations("a.png")] == ["cat"]


def test_accept_one_leaves_the_others_pending(tmp_path):
    project = project_with(tmp_path, "a.png")
    pred = detections()
    entry = entry_for(RUN, "k", "a.png", pred)
    stack = UndoStack(project.labels)
    stack.push(review_command(project.labels, "a.png", entry, pred, accept=[(0, 1)]).command)
    assert [a.label for a in project.labels.annotations("a.png")] == ["dog"]
    assert [it.label for it in open_items(entry, project.labels, "a.png")] == ["cat"]
    assert image_state("a.png", [entry], project.labels) == PREDICTED


def test_reject_all_drops_everything_and_marks_the_image_reviewed(tmp_path):
    project = project_with(tmp_path, "a.png")
    pred = detections()
    entry = entry_for(RUN, "k", "a.png", pred)
    stack = UndoStack(project.labels)
    stack.push(reject_all(project.labels, "a.png", entry).command)
    assert project.labels.annotations("a.png") == ()
    assert image_state("a.png", [entry], project.labels) == REVIEWED
    stack.undo()
    assert project.labels.decisions == {}


def test_states_without_predictions(tmp_path):
    project = project_with(tmp_path, "a.png", "b.png")
    project.labels.set_tags("b.png", ["x"])
    assert image_state("a.png", [], project.labels) == UNLABELLED
    assert image_state("b.png", [], project.labels) == LABELLED


def test_masks_accepted_as_polygons_tags_and_caption(tmp_path):
    project = project_with(tmp_path, "a.png")
    pred = mixed()
    entry = entry_for(RUN, "k", "a.png", pred)
    stack = UndoStack(project.labels)
    plan = accept_all(project.labels, "a.png", entry, pred, masks_as_polygons=True)
    assert (plan.annotations, plan.tags, plan.captions) == (2, 1, 1)
    stack.push(plan.command)
    kinds = sorted(type(a.shape).__name__ for a in project.labels.annotations("a.png"))
    assert kinds == ["Polygon", "Polygon"]
    assert project.labels.tags["a.png"] == ("outdoor",)
    assert project.labels.captions["a.png"] == "a cat on a mat"


# ---------------------------------------------------------------------- the class map


def test_class_map_renames_drops_and_is_undoable(tmp_path):
    project = project_with(tmp_path, "a.png")
    labels = project.labels
    stack = UndoStack(labels)
    stack.push(SetClassMap("t.detect", parse_class_map("cat=feline, dog=")))
    assert labels.class_maps == {"t.detect": {"cat": "feline", "dog": ""}}
    pred = detections()
    entry = entry_for(RUN, "k", "a.png", pred)
    plan = accept_all(labels, "a.png", entry, pred)
    assert plan.new_classes == ["feline"]
    stack.push(plan.command)
    assert [a.label for a in labels.annotations("a.png")] == ["feline"]
    assert (plan.accepted, plan.rejected) == (1, 1)  # the dropped label counts as rejected
    assert labels.get_class("feline") is not None
    stack.undo()
    stack.undo()
    assert labels.class_maps == {}


def test_parse_class_map_names_the_bad_part():
    with pytest.raises(ValueError, match="'cat' is not from=to"):
        parse_class_map("dog=canine,cat")


# ---------------------------------------------------------------------- saved with the project


def test_decisions_and_class_maps_survive_save_and_reopen(tmp_path):
    project = project_with(tmp_path, "a.png")
    pred = detections()
    store_prediction(project, "a.png", pred)
    view = PendingView(project)
    stack = UndoStack(project.labels)
    stack.push(SetClassMap("t.detect", {"cat": "feline"}))
    for plan in view.accept_all("a.png", min_score=0.5):
        stack.push(plan.command)
    project.save()
    again = open_project(project.path)
    view2 = PendingView(again)
    assert view2.state("a.png") == REVIEWED
    assert again.labels.class_maps == {"t.detect": {"cat": "feline"}}
    assert again.labels.decisions == project.labels.decisions
    assert [a.label for a in again.labels.annotations("a.png")] == ["feline"]


def test_a_second_writer_s_decisions_are_merged(tmp_path):
    project = project_with(tmp_path, "a.png", "b.png")
    for k in ("a.png", "b.png"):
        store_prediction(project, k, detections())
    project.save()
    other = open_project(project.path)
    other_view = PendingView(other)
    UndoStack(other.labels).push(other_view.reject_all("b.png")[0].command)
    UndoStack(other.labels).push(SetClassMap("t.detect", {"dog": "canine"}))
    other.save()
    view = PendingView(project)
    UndoStack(project.labels).push(view.accept_all("a.png")[0].command)
    merge_from_disk(project)
    assert view.state("a.png") == REVIEWED and view.state("b.png") == REVIEWED
    assert project.labels.class_maps == {"t.detect": {"dog": "canine"}}


# ---------------------------------------------------------------------- the store


def test_store_sits_next_to_the_project_and_run_ids_follow_the_settings(tmp_path):
    assert store_root(tmp_path / "cats.json") == tmp_path / "cats.pending"
    a = run_id_for("t.detect", "m", {"x": 1})
    assert a == run_id_for("t.detect", "m", {"x": 1})
    assert a != run_id_for("t.detect", "m", {"x": 2}) != run_id_for("t.detect", "m2", {"x": 1})
    assert a.startswith("t.detect-")


def test_predictions_live_in_the_sidecar_store_not_in_the_project_file(tmp_path):
    from vfmstudio.core.results import Heatmap

    project = project_with(tmp_path, "a.png")
    pred = mixed()
    heat = Heatmap(np.random.default_rng(0).random((90, 90)).astype(np.float32), label="heat")
    pred = Prediction(pred.tool, pred.model, pred.image_ids, (*pred.results, heat))
    store_prediction(project, "a.png", pred)
    project.save()
    assert "rle" not in project.path.read_text() and len(project.path.read_bytes()) < 1000
    run_dir = PendingStore(project.path).run_dir(RUN)
    assert [p.suffix for p in (run_dir / "arrays").rglob("*") if p.is_file()] == [".npy"]  # the heatmap
    view = PendingView(open_project(project.path))
    [entry] = view.entries("a.png")
    loaded = view.prediction(entry, "a.png")
    assert np.array_equal(loaded.results[0].masks, pred.results[0].masks)
    assert np.array_equal(loaded.results[3].values, heat.values)


def test_index_lost_to_a_crash_is_rebuilt_from_the_prediction_files(tmp_path):
    project = project_with(tmp_path, "a.png", "b.png")
    store_prediction(project, "a.png", detections())
    store_prediction(project, "b.png", detections(scores=(0.5,), labels=("bird",)))
    index = PendingStore(project.path).run_dir(RUN) / INDEX
    lines = index.read_text().splitlines()
    index.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # b's line cut by a kill
    view = PendingView(project)
    assert view.classes("b.png") == {"bird"}
    assert view.state("b.png") == PREDICTED
    assert len(PendingView(project).entries("b.png")) == 1  # appended once, found once


def test_view_filters_by_state_and_class_and_finds_the_next_open_image(tmp_path):
    project = project_with(tmp_path, "a.png", "b.png", "c.png", "d.png")
    store_prediction(project, "a.png", detections())
    store_prediction(project, "c.png", detections(scores=(0.4,), labels=("bird",)))
    project.labels.set_tags("d.png", ["bird"])
    view = PendingView(project)
    order = list(project.images)
    assert view.filter(order, state=PREDICTED) == ["a.png", "c.png"]
    assert view.filter(order, cls="bird") == ["c.png", "d.png"]
    assert view.filter(order, state=UNLABELLED) == ["b.png"]
    assert view.next_open(order, "a.png") == "c.png"
    assert view.next_open(order, "c.png") == "a.png"  # wraps
    assert view.next_open(order, "c.png", -1) == "a.png"
    UndoStack(project.labels).push(view.reject_all("c.png")[0].command)
    assert view.next_open(order, "a.png") is None
    assert view.filter(order, cls="bird") == ["d.png"]  # rejected predictions no longer count


def test_predictions_of_images_no_longer_in_the_project_are_ignored(tmp_path):
    project = project_with(tmp_path, "a.png", "gone.png")
    store_prediction(project, "gone.png", detections())
    del project.images["gone.png"]
    assert PendingView(project).keys() == []


def test_a_hostile_run_folder_name_is_refused(tmp_path):
    from vfmstudio.core.pending import PendingStoreError

    with pytest.raises(PendingStoreError, match="not a run id"):
        PendingStore(tmp_path / "p.json").run_dir("../../etc")


def test_save_as_elsewhere_takes_the_pending_predictions_along(tmp_path):
    from vfmstudio.core.pending import copy_store

    (tmp_path / "imgs").mkdir()
    project = project_with(tmp_path, "imgs/a.png")
    store_prediction(project, "imgs/a.png", detections())
    old_index = (PendingStore(project.path).run_dir(RUN) / INDEX).read_text()
    same = tmp_path / "copy.json"
    assert copy_store(project.path, same)
    moved = tmp_path / "imgs" / "p2.json"
    assert copy_store(project.path, moved)
    assert not copy_store(project.path, moved)  # an existing store is never overwritten

    p2 = Project(moved)
    from vfmstudio.core.project import ImageRecord

    p2.images["a.png"] = ImageRecord("a.png", "a.png", "", 16, 16)  # the path as seen from imgs/
    view = PendingView(p2)
    assert view.state("a.png") == PREDICTED
    assert view.prediction(view.entries("a.png")[0], "a.png").results[0].labels == ("cat", "dog")
    p3 = Project(same)
    p3.images["imgs/a.png"] = ImageRecord("imgs/a.png", "imgs/a.png", "", 16, 16)
    assert PendingView(p3).state("imgs/a.png") == PREDICTED
    assert (PendingStore(project.path).run_dir(RUN) / INDEX).read_text() == old_index  # untouched
