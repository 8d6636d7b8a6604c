"""The session model and its rerun rules, driven without Qt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vfmstudio.core.results import Classification, Correspondences, Heatmap, Histogram, Prediction, Text
from vfmstudio.core.tools import InputKind, ModelChoice, Param, ParamType, ToolSpec
from vfmstudio.session.model import Session, placement_of, points_param
from vfmstudio.session.requests import Refusal, RunRequest

SIMILARITY = ToolSpec(
    "fake.similarity",
    "Similarity",
    "x:y",
    inputs=InputKind.SET,
    params=(Param("points", ParamType.POINTS), Param("threshold", ParamType.FLOAT, 0.5)),
    models=(ModelChoice("org/small"), ModelChoice("org/big")),
)
PCA = ToolSpec(
    "fake.pca",
    "PCA",
    "x:y",
    params=(Param("threshold", ParamType.FLOAT, 0.5), Param("layer", ParamType.INT, -1)),
)
PAIR = ToolSpec("fake.pair", "Pair", "x:y", inputs=InputKind.PAIR)
CAPTION = ToolSpec("fake.caption", "Caption", "x:y", params=(Param("question", ParamType.TEXT, ""),))

A, B, C = Path("/imgs/a.png"), Path("/imgs/b.png"), Path("/imgs/c.png")
IDS = {"ida": A, "idb": B, "idc": C}


def heat(image_id: str) -> Heatmap:
    return Heatmap(np.zeros((2, 2), np.float32), image_id=image_id)


def hist(image_id: str | None = None, threshold: float = 0.5) -> Histogram:
    return Histogram(np.ones(4), np.linspace(0, 1, 5), threshold=threshold, image_id=image_id)


@pytest.fixture
def session() -> Session:
    s = Session(path_of=IDS.get)
    s.set_tools([SIMILARITY, PCA, PAIR, CAPTION])
    s.open([Path("/imgs")], [A, B, C])
    s.show(A, "ida")
    return s


def test_run_request_takes_the_image_on_view_first_then_the_selection(session):
    session.select([B, A])
    req = session.run_request(SIMILARITY, {"threshold": 0.5}, "org/small")
    assert isinstance(req, RunRequest) and req.paths == (A, B) and not req.live
    assert req.key == f"run:{A}:fake.similarity"
    assert session.run_request(PCA, {}, None).paths == (A,)


def test_missing_inputs_are_refused_with_what_is_missing(session):
    assert session.run_request(None, {}, None) == Refusal("pick a tool first")
    session.select([B])
    refusal = session.run_request(PAIR, {}, None)
    assert (
        isinstance(refusal, Refusal)
        and "two selected images" in refusal.message
        and "1 selected" in refusal.message
    )
    session.show(None)
    session.select([])
    assert session.run_request(PCA, {}, None) == Refusal("open an image first")


def test_a_click_runs_the_tool_before_any_run_and_stays_on_its_tab(session):
    req = session.click_request(SIMILARITY, {"points": ((3.0, 4.0),)}, "org/small", view="image")
    assert isinstance(req, RunRequest) and not req.live and req.origin == "image"
    session.record(Prediction("fake.similarity", "org/small", ("ida", "idb"), (heat("ida"), heat("idb"))))
    again = session.click_request(SIMILARITY, {"points": ((5.0, 4.0),)}, "org/small", view="image")
    assert again.live and again.params["points"] == ((5.0, 4.0),) and again.origin == "image"
    assert (
        placement_of(Prediction("fake.similarity", None, ("ida", "idb"), (heat("ida"),)), "image").view
        == "image"
    )


def test_a_click_on_the_set_tab_runs_on_the_images_it_shows(session):
    req = session.click_request(SIMILARITY, {}, None, view="set", image_ids=("idb", "idc"))
    assert req.paths == (B, C) and req.origin == "set"
    gone = session.click_request(SIMILARITY, {}, None, view="set", image_ids=("idb", "unknown"))
    assert isinstance(gone, Refusal)


def test_a_click_without_a_tool_says_so_and_a_tool_without_points_ignores_it(session):
    assert isinstance(session.click_request(None, {}, None, view="image"), Refusal)
    assert session.click_request(PCA, {}, None, view="image") is None
    assert points_param(SIMILARITY) == "points" and points_param(PCA) is None


def test_threshold_drag_reruns_the_tool_that_drew_the_histogram(session):
    assert session.threshold_request(0.7) is None  # nothing ran yet
    session.record(Prediction("fake.pca", "m", ("ida",), (hist(),), params={"threshold": 0.5, "layer": -1}))
    req = session.threshold_request(0.7)
    assert req.live and req.tool is PCA and req.params == {"threshold": 0.7, "layer": -1} and req.model == "m"
    assert req.key == f"live:{A}:fake.pca"
    session.show(B, "idb")
    assert session.threshold_request(0.7) is None  # the histogram belongs to another image


def test_layer_scrub_reruns_only_tools_with_a_layer_parameter_and_only_for_a_new_layer(session):
    pca = Prediction("fake.pca", None, ("ida",), (heat("ida"),), params={"layer": 2})
    assert session.scrub_request(pca, 2) is None
    req = session.scrub_request(pca, 5)
    assert req.params["layer"] == 5 and req.live and req.paths == (A,)
    pair = Prediction("fake.pair", None, ("ida", "idb"), ())
    assert session.scrub_request(pair, 1) is None


def test_edits_rerun_only_after_the_tool_ran_on_the_image_on_view(session):
    assert session.edit_request(PCA, {"threshold": 0.2}, None) is None
    session.record(Prediction("fake.pca", None, ("ida",), (heat("ida"),)))
    assert session.edit_request(PCA, {"threshold": 0.2}, None).live


def test_questions_need_a_tool_with_a_text_field(session):
    assert isinstance(session.question_request(PCA, {}, None), Refusal)
    assert session.question_request(CAPTION, {"question": "what?"}, None).params == {"question": "what?"}


def test_forgotten_predictions_are_gone_and_come_back_on_restore(session):
    pred = Prediction("fake.pca", None, ("ida",), (heat("ida"),))
    session.record(pred)
    assert session.forget("ida", [pred]) == [pred]
    assert session.predictions_on("ida") == [] and not session.has_run("fake.pca", "ida")
    session.restore("ida", [pred])
    assert session.predictions_on("ida") == [pred]


@pytest.mark.parametrize(
    ("results", "ids", "view"),
    [
        ((heat("a"), heat("b")), ("a", "b"), "set"),
        ((Correspondences(np.zeros((1, 2)), np.zeros((1, 2)), np.ones(1)),), ("a", "b"), "pair"),
        ((heat("a"),), ("a",), "image"),
        ((Classification(("cat",), np.ones(1)),), ("a",), None),
        ((Text("hi"),), ("a",), None),
    ],
)
def test_a_new_result_brings_its_view_forward(results, ids, view):
    assert placement_of(Prediction("t.x", None, ids, results)).view == view


def test_labels_anchored_at_one_corner_stack_instead_of_overlapping():
    from vfmstudio.session.label_layout import place_labels

    wanted = [
        (0.0, 0.0, 40.0, 10.0),
        (0.0, 0.0, 30.0, 10.0),
        (5.0, 3.0, 20.0, 10.0),
        (200.0, 0.0, 10.0, 10.0),
    ]
    got = place_labels(wanted)
    rects = [(x, y, w[2], w[3]) for (x, y), w in zip(got, wanted)]
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert not (
                a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
            )
    assert got[0] == (0.0, 0.0) and got[3] == (200.0, 0.0)  # labels that fit stay where they were
    assert all(y >= w[1] for (_, y), w in zip(got, wanted))


def test_propagate_takes_the_annotations_on_view_as_its_reference_with_class_names(session):
    import json

    from vfmstudio.core.annotations import Annotation, Box, Points
    from vfmstudio.core.results import result_from_json
    from vfmstudio.session.propagate import masks_of_annotations, propagate_request

    tool = ToolSpec(
        "dinov2.propagate",
        "Propagate",
        "x:y",
        inputs=InputKind.SET,
        params=(Param("masks", ParamType.STR, required=True), Param("k", ParamType.INT, 5)),
    )
    anns = [
        Annotation("a.png", "cat", Box(0, 0, 4, 4)),
        Annotation("a.png", "cat", Box(6, 6, 8, 8)),
        Annotation("a.png", "dog", Box(4, 0, 8, 2)),
        Annotation("a.png", "dot", Points(((1.0, 1.0),))),
    ]
    ref = masks_of_annotations(anns, 10, 10)
    assert ref.labels == ("cat", "dog") and ref.masks[0].sum() == 16 + 4 and ref.masks[1].sum() == 8
    assert isinstance(propagate_request(session, tool, ref, {"k": 5}, None), Refusal)  # no target selected
    session.select([A, B, C])
    req = propagate_request(session, tool, ref, {"k": 5}, "m")
    assert req.paths == (A, B, C) and req.params["k"] == 5 and req.model == "m"
    back = result_from_json(json.loads(req.params["masks"]))
    assert back.labels == ("cat", "dog") and (back.masks == ref.masks).all()
    assert isinstance(
        propagate_request(session, tool, masks_of_annotations(anns[3:], 10, 10), {}, None), Refusal
    )


def test_a_former_tool_id_finds_the_renamed_tool():
    renamed = ToolSpec(id="new.pca", title="PCA", run="m:f", aliases=("old.pca",))
    s = Session(path_of=IDS.get)
    s.set_tools([renamed])
    assert s.tools.get("old.pca") is renamed and "old.pca" in s.tools
    assert list(s.tools) == ["new.pca"]
