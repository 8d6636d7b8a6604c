"""Review mode in the window: pending predictions written by a real batch run into the project
(plan_into_project + run_local, the engine Run on All Images uses), then reviewed with the keys,
the score slider and the class map; the image list's review states and filters."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QObject, Qt, Signal

from tests.qt.conftest import build_window
from tests.qt.review_tools import LABELS, SCORES
from vfmstudio.qt.browser import STATE_COLOURS

HERE = Path(__file__).parent


def _load(name: str, monkeypatch):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture
def host(monkeypatch):
    from vfmstudio._plugin_host import PluginHost

    _load("fake_plugin", monkeypatch)
    monkeypatch.setitem(sys.modules, "fake", sys.modules["fake_plugin"])
    _load("review_tools", monkeypatch)
    monkeypatch.setitem(sys.modules, "review", sys.modules["review_tools"])  # the family is the module name
    return PluginHost(builtins=("fake", "review"), entry_points=False).load()


@pytest.fixture
def folder(tmp_path):
    """img0..img2 get predictions; img2 also has an annotation; img3 has nothing at all."""
    from vfmstudio.core.annotations import Annotation, Box
    from vfmstudio.core.project import open_project

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    project = open_project(folder / "vfmstudio.json", create=True)
    for i in range(4):
        project.add_image(folder / f"img{i}.png")
    project.labels.add(Annotation("img2.png", "zebra", Box(1, 1, 5, 5)))
    project.save()
    return folder


def predict(host, folder, keys, *, masks=False, nothing_on="", tags=False):
    """Fill the project's pending store the way Run on All Images does."""
    from vfmstudio.core.project import open_project
    from vfmstudio.engines.into_project import plan_into_project, sink_for
    from vfmstudio.engines.local import run_local
    from vfmstudio.engines.worker import RunSpec

    project = open_project(folder / "vfmstudio.json")
    tool = host.tool("review.detect")
    params = tool.resolve_params({"masks": masks, "nothing_on": nothing_on, "tags": tags})
    spec = RunSpec(tool=tool, params=params, model=None, out="")
    plan = plan_into_project(spec, project, keys)
    progress = run_local(plan, sink=sink_for(plan), workers=1)
    assert progress.failed == 0


@pytest.fixture
def window(qtbot, host, tmp_path):
    w = build_window(qtbot, host, tmp_path)
    yield w
    w.close()


def open_folder(qtbot, window, folder):
    window.open_paths([folder])
    qtbot.waitUntil(
        lambda: window.current is not None and bool(window.browser.review_state(window.current_path))
    )
    return window


def path_of(window, name):
    return next(p for p in window.browser.paths() if p.name == name)


def press(qtbot, window, key):
    window.activateWindow()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, key)


def show(qtbot, window, name):
    window.browser.select_path(path_of(window, name))
    qtbot.waitUntil(lambda: window.current_path is not None and window.current_path.name == name)
    qtbot.waitUntil(
        lambda: window.current is not None and window.image_id_of(window.current_path) == window.current.id
    )


def marker_colour(browser, name):
    """The colour at the centre of the row's review-state dot, as painted."""
    from vfmstudio.qt.browser import StateMarkerDelegate

    item = next(
        browser.list.item(i) for i in range(browser.list.count()) if browser.list.item(i).text() == name
    )
    browser.list.scrollToItem(item)
    rect = browser.list.visualItemRect(item)
    image = browser.list.viewport().grab().toImage()
    r = StateMarkerDelegate.RADIUS
    return image.pixelColor(rect.right() - 2 * r, rect.center().y()).name()


def review_rows(window):
    return [r.text(0) for r in window.review.panel.rows()]


def anns(window, key):
    return sorted(
        (a.label, a.shape.kind, None if a.score is None else round(a.score, 3))
        for a in window.labelling.session.labels.annotations(key)
    )


def test_states_markers_and_filters(qtbot, window, host, folder):
    predict(host, folder, ["img0.png", "img1.png", "img2.png"])
    open_folder(qtbot, window, folder)
    b = window.browser
    states = {p.name: b.review_state(p) for p in b.paths()}
    assert states == {
        "img0.png": "predicted",
        "img1.png": "predicted",
        "img2.png": "predicted",
        "img3.png": "unlabelled",
    }
    assert window.pending.keys() == ["img0.png", "img1.png", "img2.png"]
    # each row draws its state's coloured dot at its right end
    assert marker_colour(b, "img0.png") == STATE_COLOURS["predicted"]
    assert marker_colour(b, "img3.png") == STATE_COLOURS["unlabelled"]

    b.set_filters(state="unlabelled")
    assert [p.name for p in b.visible_paths()] == ["img3.png"]
    b.set_filters(state="", cls="zebra")  # an annotation's class
    assert [p.name for p in b.visible_paths()] == ["img2.png"]
    b.set_filters(cls="bird")  # a predicted label
    assert [p.name for p in b.visible_paths()] == ["img0.png", "img1.png", "img2.png"]
    b.filter_edit.setText("img1")  # combined with the name filter
    assert [p.name for p in b.visible_paths()] == ["img1.png"]
    b.filter_edit.setText("")
    b.set_filters(cls="")

    # reject everything on img2: its predictions are reviewed, it keeps its annotation
    window.review.set_mode(True)
    show(qtbot, window, "img2.png")
    window.review.panel.advance_check.setChecked(False)
    assert window.review.reject_all()
    assert b.review_state(path_of(window, "img2.png")) == "reviewed"
    assert marker_colour(b, "img2.png") == STATE_COLOURS["reviewed"]
    # and the class filter no longer finds "bird" there (rejected predictions are not classes)
    b.set_filters(cls="bird")
    assert [p.name for p in b.visible_paths()] == ["img0.png", "img1.png"]
    b.set_filters(cls="", state="reviewed")
    assert [p.name for p in b.visible_paths()] == ["img2.png"]
    # an undo brings it back to predicted (one row recomputed)
    window.labelling.undo_action.trigger()
    qtbot.waitUntil(lambda: b.review_state(path_of(window, "img2.png")) == "predicted")


def test_keys_accept_reject_undo_and_next(qtbot, window, host, folder):
    predict(host, folder, ["img0.png", "img1.png", "img2.png"])
    open_folder(qtbot, window, folder)
    review = window.review
    show(qtbot, window, "img0.png")
    review.mode_action.trigger()
    assert review.active and review.key == "img0.png"
    assert review.panel.tree.topLevelItemCount() == 1 and len(review.panel.rows()) == 4
    assert [d[2] for d in review.overlay.drawn] == list(LABELS)  # every item drawn at score 0

    press(qtbot, window, Qt.Key.Key_A)  # accept all shown -> 4 boxes, moves on to img1
    assert anns(window, "img0.png") == sorted((lab, "box", s) for lab, s in zip(LABELS, SCORES))
    qtbot.waitUntil(lambda: window.current_path.name == "img1.png")
    # the next image's pending boxes are drawn once it is on the canvas
    qtbot.waitUntil(lambda: window.image_id_of(window.current_path) == window.current.id)
    qtbot.waitUntil(lambda: len(review.overlay.drawn) == 4)
    assert len(review.overlay.items) == 1 and review.overlay.items[0].scene() is window.canvas.scene()
    assert window.browser.review_state(path_of(window, "img0.png")) == "reviewed"
    assert window.pending.state("img0.png") == "reviewed"

    press(qtbot, window, Qt.Key.Key_X)  # reject all on img1 -> nothing added, moves on to img2
    assert anns(window, "img1.png") == []
    qtbot.waitUntil(lambda: window.current_path.name == "img2.png")
    assert window.pending.state("img1.png") == "reviewed"

    # Ctrl+Z: img1's predictions are pending again, and img1 is back on view
    window.labelling.undo_action.trigger()
    qtbot.waitUntil(lambda: window.current_path.name == "img1.png")
    assert window.pending.state("img1.png") == "predicted"
    assert len(review.panel.rows()) == 4
    # a second undo removes img0's four annotations and reopens its items
    window.labelling.undo_action.trigger()
    qtbot.waitUntil(lambda: window.current_path.name == "img0.png")
    assert anns(window, "img0.png") == []
    assert window.browser.review_state(path_of(window, "img0.png")) == "predicted"

    # N / P walk the images still to review, wrapping, in the list's order
    press(qtbot, window, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: window.current_path.name == "img1.png")
    press(qtbot, window, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: window.current_path.name == "img2.png")
    press(qtbot, window, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: window.current_path.name == "img0.png")
    press(qtbot, window, Qt.Key.Key_P)
    qtbot.waitUntil(lambda: window.current_path.name == "img2.png")

    # Enter accepts the items selected in the list only; the image stays open
    show(qtbot, window, "img1.png")
    dog = next(r for r in review.panel.rows() if "dog" in r.text(0))
    review.panel.tree.setCurrentItem(dog)
    press(qtbot, window, Qt.Key.Key_Return)
    assert anns(window, "img1.png") == [("dog", "box", 0.7)]
    assert window.pending.state("img1.png") == "predicted"
    assert sorted(r.text(0) for r in review.panel.rows()) == ["box: bird", "box: cat", "box: cat"]
    assert window.current_path.name == "img1.png"


def test_keys_are_lent_and_given_back(qtbot, window, host, folder):
    predict(host, folder, ["img0.png", "img1.png"])
    open_folder(qtbot, window, folder)
    previous = window.menus.actions["previous"]
    polygon = window.labelling.tool_actions["polygon"]
    assert "A" in [s.toString() for s in previous.shortcuts()]
    window.review.set_mode(True)
    assert "A" not in [s.toString() for s in previous.shortcuts()]
    assert "P" not in [s.toString() for s in polygon.shortcuts()]
    window.review.set_mode(False)
    assert [s.toString() for s in previous.shortcuts()] == ["A"]
    assert [s.toString() for s in polygon.shortcuts()] == ["P", "Shift+P"]
    # out of review mode A is "previous image" again and accepts nothing
    show(qtbot, window, "img1.png")
    press(qtbot, window, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: window.current_path.name == "img0.png")
    assert window.labelling.session.labels.annotations("img1.png") == ()
    assert window.review.overlay.drawn == []


def test_score_slider_filters_drawn_and_accepted(qtbot, window, host, folder):
    predict(host, folder, ["img0.png", "img1.png"])
    open_folder(qtbot, window, folder)
    review = window.review
    review.set_mode(True)
    show(qtbot, window, "img0.png")
    review.panel.set_min_score(0.5)
    assert sorted(d[3] for d in review.overlay.drawn) == pytest.approx([0.70, 0.95])
    review.panel.set_min_score(0.3)
    assert sorted(d[3] for d in review.overlay.drawn) == pytest.approx([0.40, 0.70, 0.95])
    # unchecking one item hides it too
    cat = next(r for r in review.panel.rows() if r.text(2) == "0.40")
    cat.setCheckState(0, Qt.CheckState.Unchecked)
    assert sorted(d[3] for d in review.overlay.drawn) == pytest.approx([0.70, 0.95])
    review.panel.set_min_score(0.5)
    assert review.accept_shown()
    assert anns(window, "img0.png") == [
        ("cat", "box", 0.95),
        ("dog", "box", 0.7),
    ]
    # the two below the slider were rejected: nothing of img0 is open
    assert window.pending.state("img0.png") == "reviewed"
    assert window.pending.open_entries("img0.png") == []
    # the slider is remembered
    assert float(window.settings.value("review/min_score")) == pytest.approx(0.5)


def test_class_map_applied_and_remembered(qtbot, window, host, folder, tmp_path):
    predict(host, folder, ["img0.png", "img1.png"])
    open_folder(qtbot, window, folder)
    review = window.review
    review.set_mode(True)
    show(qtbot, window, "img0.png")
    table = review.panel.class_map
    assert sorted(table._rows) == [
        ("review.detect", "bird"),
        ("review.detect", "cat"),
        ("review.detect", "dog"),
    ]
    # "New class…" asks for a name and creates it; "(drop)" drops a label
    table.ask_class_name = lambda label: "feline"
    combo = table.combo("review.detect", "cat")
    combo.setCurrentIndex(combo.findData("\x00new"))
    combo.activated.emit(combo.currentIndex())
    assert window.labelling.session.labels.get_class("feline") is not None
    assert table.choose("review.detect", "bird", "")
    assert sorted(r.text(1) for r in review.panel.rows()) == ["(drop)", "dog", "feline", "feline"]
    assert review.accept_shown()
    assert [a[0] for a in anns(window, "img0.png")] == ["dog", "feline", "feline"]
    window.labelling.session.save()

    # reopen the project in a new window: the map is still there and applies on img1
    window.close()
    w2 = build_window(qtbot, host, tmp_path)
    try:
        open_folder(qtbot, w2, folder)
        assert w2.labelling.session.labels.class_maps == {"review.detect": {"cat": "feline", "bird": ""}}
        w2.review.set_mode(True)
        show(qtbot, w2, "img1.png")
        combo = w2.review.panel.class_map.combo("review.detect", "cat")
        assert combo.currentData() == "feline"
        assert w2.review.accept_shown()
        assert [a[0] for a in anns(w2, "img1.png")] == ["dog", "feline", "feline"]
        # the class filter offers the mapped class, not the dropped label
        assert "bird" not in [
            w2.browser.class_combo.itemData(i) for i in range(w2.browser.class_combo.count())
        ]
    finally:
        w2.close()


def test_masks_as_polygons(qtbot, window, host, folder):
    predict(host, folder, ["img0.png", "img1.png", "img2.png"], masks=True)
    open_folder(qtbot, window, folder)
    review = window.review
    review.set_mode(True)
    review.panel.advance_check.setChecked(False)
    show(qtbot, window, "img0.png")
    assert [d[1] for d in review.overlay.drawn] == ["mask"] * 4
    assert review.masks_as_polygons is False
    assert review.accept_shown()
    assert {a[1] for a in anns(window, "img0.png")} == {"mask"}
    review.panel.masks_combo.setCurrentIndex(1)
    show(qtbot, window, "img1.png")
    assert review.accept_shown()
    kinds = {a[1] for a in anns(window, "img1.png")}
    assert kinds == {"polygon"}
    # a quadrant mask becomes its rectangle as a polygon
    ann = next(a for a in window.labelling.session.labels.annotations("img1.png") if a.label == "dog")
    xs = [x for part in ann.shape.parts for x, _ in part.exterior]
    assert min(xs) == pytest.approx(30, abs=1) and max(xs) == pytest.approx(60, abs=1)
    # the choice is remembered
    assert str(window.settings.value("review/masks_as_polygons")).lower() == "true"
    review.panel.masks_combo.setCurrentIndex(2)  # rotated boxes
    show(qtbot, window, "img2.png")
    assert review.accept_shown()
    labels = window.labelling.session.labels
    shapes = [a.shape for a in labels.annotations("img2.png") if a.provenance.source == "model"]
    assert [type(s).__name__ for s in shapes] == ["RotatedBox"] * 4
    assert sorted((s.cx, s.cy, s.w, s.h) for s in shapes)[0] == pytest.approx((15, 10, 30, 20), abs=1)
    assert str(window.settings.value("review/masks_as_rotated_boxes")).lower() == "true"


def test_run_side_predictions_update_the_row(qtbot, window, host, folder):
    """What Run on All Images emits per finished image (AutoLabel.predicted) updates that row."""
    from vfmstudio.core.pending import PendingStore

    open_folder(qtbot, window, folder)
    assert window.browser.review_state(path_of(window, "img3.png")) == "unlabelled"
    predict(host, folder, ["img3.png"])
    entry = PendingStore(folder / "vfmstudio.json").load_index()["img3.png"][0]

    class AutoLabel(QObject):  # the run side's object, as the helpers agreed: window.auto_label
        predicted = Signal(str, object)

    window.auto_label = AutoLabel(window)
    window.review.connect_auto_label()
    window.review.set_mode(True)
    show(qtbot, window, "img3.png")
    assert review_rows(window) == []
    window.auto_label.predicted.emit("img3.png", entry)
    assert window.browser.review_state(path_of(window, "img3.png")) == "predicted"
    assert window.pending.entries("img3.png") == [entry]
    assert len(review_rows(window)) == 4  # the image on view lists its new items at once
    assert window.browser.review_state(path_of(window, "img0.png")) == "unlabelled"


def test_delete_key_deletes_a_selected_annotation_else_rejects(qtbot, window, host, folder):
    predict(host, folder, ["img2.png"])
    open_folder(qtbot, window, folder)
    review = window.review
    review.panel.advance_check.setChecked(False)
    review.set_mode(True)
    show(qtbot, window, "img2.png")
    zebra = window.labelling.session.labels.annotations("img2.png")[0]
    window.labelling.controller.select([zebra.id])
    press(qtbot, window, Qt.Key.Key_Delete)  # the selected annotation goes, the predictions stay
    assert window.labelling.session.labels.annotations("img2.png") == ()
    assert window.pending.state("img2.png") == "predicted"
    press(qtbot, window, Qt.Key.Key_Delete)  # nothing selected: reject all
    assert window.pending.state("img2.png") == "reviewed"
    assert window.labelling.session.labels.annotations("img2.png") == ()


def test_a_run_that_found_nothing_is_reviewed_by_a_look(qtbot, window, host, folder):
    predict(host, folder, ["img0.png", "img1.png"], nothing_on="img0")
    open_folder(qtbot, window, folder)
    review = window.review
    review.panel.advance_check.setChecked(False)
    review.set_mode(True)
    show(qtbot, window, "img0.png")
    assert window.pending.state("img0.png") == "predicted"  # waits for a look
    assert review.panel.rows() == [] and review.overlay.drawn == []
    assert review.accept_shown()
    assert window.pending.state("img0.png") == "reviewed"
    assert anns(window, "img0.png") == []
    # Enter with nothing selected does nothing (and says so)
    show(qtbot, window, "img1.png")
    assert not review.accept_selected()
    assert window.pending.state("img1.png") == "predicted"


def test_new_class_from_the_map_is_one_undo_step(qtbot, window, host, folder):
    predict(host, folder, ["img0.png"])
    open_folder(qtbot, window, folder)
    review = window.review
    review.set_mode(True)
    show(qtbot, window, "img0.png")
    table = review.panel.class_map
    labels = window.labelling.session.labels
    table.ask_class_name = lambda label: None  # the dialog cancelled: nothing changes
    combo = table.combo("review.detect", "dog")
    combo.setCurrentIndex(combo.findData("\x00new"))
    combo.activated.emit(combo.currentIndex())
    assert labels.class_maps == {} and labels.get_class("canine") is None
    assert table.combo("review.detect", "dog").currentData() == "\x00keep"
    table.ask_class_name = lambda label: "canine"
    combo = table.combo("review.detect", "dog")
    combo.setCurrentIndex(combo.findData("\x00new"))
    combo.activated.emit(combo.currentIndex())
    assert labels.class_maps == {"review.detect": {"dog": "canine"}}
    assert labels.get_class("canine") is not None
    assert "canine" in [r.text(1) for r in review.panel.rows()]
    window.labelling.undo_action.trigger()
    assert labels.class_maps == {} and labels.get_class("canine") is None
    qtbot.waitUntil(lambda: "dog" in [r.text(1) for r in review.panel.rows()])


@pytest.mark.parametrize("size", [(1280, 720), (1024, 640)], ids=["1280x720", "1024x640"])
def test_review_dock_and_list_fit_a_laptop(size, qtbot, host, folder, tmp_path):
    from tests.qt.test_layout_fits import layout_problems

    predict(host, folder, ["img0.png", "img1.png"], masks=True)
    w = build_window(qtbot, host, tmp_path, size=size)
    try:
        open_folder(qtbot, w, folder)
        w.review.set_mode(True)
        qtbot.waitUntil(lambda: bool(w.review.overlay.drawn))
        qtbot.wait(50)
        assert (w.width(), w.height()) == size
        assert w.review.dock.isVisible() and not w.review.dock.visibleRegion().isEmpty()
        problems = layout_problems(w.review.dock) + layout_problems(w.dock_browser)
        assert not problems, "\n".join(problems)
    finally:
        w.close()


def test_tags_are_accepted_like_boxes(qtbot, window, host, folder):
    predict(host, folder, ["img0.png"], tags=True)
    open_folder(qtbot, window, folder)
    review = window.review
    review.set_mode(True)
    show(qtbot, window, "img0.png")
    rows = {r.text(0): r.checkState(0) == Qt.CheckState.Checked for r in review.panel.rows()}
    assert rows["tag: indoor"] is True and rows["tag: outdoor"] is False  # only the top one by default
    assert [d[2] for d in review.overlay.drawn] == list(LABELS)  # tags are listed, not drawn
    assert review.accept_shown()
    assert window.labelling.session.labels.tags.get("img0.png") == ("indoor",)
    assert window.pending.state("img0.png") == "reviewed"


def test_an_unreadable_prediction_is_said_once_and_can_be_rejected(qtbot, window, host, folder):
    from vfmstudio.core.pending import PendingStore

    predict(host, folder, ["img0.png", "img1.png"])
    store = PendingStore(folder / "vfmstudio.json")
    entry = store.load_index()["img0.png"][0]
    (store.run_dir(entry.run) / "predictions" / f"{entry.file_key}.json").write_text("{not json")
    open_folder(qtbot, window, folder)
    review = window.review
    review.panel.advance_check.setChecked(False)
    review.set_mode(True)
    show(qtbot, window, "img0.png")
    assert len(review.panel.rows()) == 4  # the index still lists its items
    assert review.overlay.drawn == []
    errors = [e for e in window.messages.texts("error") if "unreadable prediction" in e]
    assert len(errors) == 1 and f"{entry.file_key}.json" in errors[0]
    assert not review.accept_shown()  # nothing can be accepted from it
    assert window.pending.state("img0.png") == "predicted"
    assert review.reject_all()
    assert window.pending.state("img0.png") == "reviewed"


def test_slider_back_and_forth_colours_each_mask_subset_once(qtbot, window, host, folder, monkeypatch):
    from vfmstudio.qt import overlays

    predict(host, folder, ["img0.png"], masks=True)
    open_folder(qtbot, window, folder)
    review = window.review
    review.set_mode(True)
    show(qtbot, window, "img0.png")
    rendered = []
    real = overlays.render_masks
    monkeypatch.setattr(overlays, "render_masks", lambda masks: rendered.append(len(masks)) or real(masks))
    for value in (0.5, 0.3, 0.5, 0.3, 0.9):
        review.panel.set_min_score(value)
    assert rendered == [2, 3, 1]  # 0.5 and 0.3 once each, then 0.9
    assert [d[3] for d in review.overlay.drawn] == pytest.approx([0.95])


def test_touched_keys_names_the_images_an_edit_changes():
    from vfmstudio.core import commands as cmd
    from vfmstudio.core.annotations import Annotation, Box, LabelSet
    from vfmstudio.core.review import SetClassMap, SetDecision
    from vfmstudio.qt.review_states import touched_keys

    labels = LabelSet()
    a = Annotation("a.png", "cat", Box(0, 0, 2, 2))
    b = Annotation("b.png", "dog", Box(0, 0, 2, 2))
    add = cmd.AddAnnotations([a, b])
    add.do(labels)
    assert touched_keys(add) == {"a.png", "b.png"}
    assert touched_keys(cmd.SetTags("c.png", ["x"])) == {"c.png"}
    assert touched_keys(cmd.change_label(labels, [a.id], "lynx")) == {"a.png"}
    remove = cmd.RemoveAnnotations([b.id])
    remove.do(labels)  # which image it touched is known once done (undo and redo come after)
    assert touched_keys(remove) == {"b.png"}
    review = cmd.Macro([SetDecision("d.png", "run", [(0, 0)], []), cmd.SetCaption("e.png", "hi")], "r")
    assert touched_keys(review) == {"d.png", "e.png"}
    # class edits and class maps change what every image's classes are: all rows
    assert touched_keys(cmd.AddClass("bird")) is None
    assert touched_keys(cmd.Macro([cmd.AddClass("bird"), SetClassMap("t", {"a": "b"})], "m")) is None
