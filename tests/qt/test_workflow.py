"""The window as one workflow: the defects of issue 13, each driven as a user would."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from vfmstudio.core.results import Classification, Masks, Prediction, Ranking

sys.path.insert(0, str(Path(__file__).parent))
from conftest import build_window, open_and_wait  # noqa: E402


def wait_idle(qtbot, window, timeout=10000):
    qtbot.waitUntil(lambda: not window.jobs and window.runner.runner.pending() == 0, timeout=timeout)


def run(qtbot, window, tool_id, **params):
    assert window.tools.select_tool(tool_id)
    for name, value in params.items():
        window.tools.form.set_value(name, value)
    job = window.run_current_tool()
    assert job is not None
    wait_idle(qtbot, window)
    return job


def select_rows(window, rows):
    lst = window.browser.list
    lst.clearSelection()
    for r in rows:
        lst.item(r).setSelected(True)


# ------------------------------------------------------------------------------ clicks and tabs


def test_a_click_before_any_run_runs_the_point_tool(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    assert window.tools.select_tool("fake.point")
    window.canvas.clicked.emit(3.0, 4.0)
    wait_idle(qtbot, window)
    pred = window.session.prediction(image.id, "fake.point")
    assert pred is not None and pred.params["points"] == ((3.0, 4.0),)
    assert window.central_tabs.currentWidget() is window.canvas


def test_a_click_on_the_image_tab_after_a_set_run_stays_on_the_image_tab(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    select_rows(window, [0, 1])
    run(qtbot, window, "fake.setsim", points=((2.0, 2.0),))
    assert window.central_tabs.currentWidget() is window.grid_view  # a set run shows its set
    window.central_tabs.setCurrentWidget(window.canvas)
    window.canvas.clicked.emit(5.0, 6.0)
    wait_idle(qtbot, window)
    assert window.central_tabs.currentWidget() is window.canvas
    assert window.session.prediction(image.id, "fake.setsim").params["points"] == ((5.0, 6.0),)


def test_a_click_without_a_point_tool_says_what_is_missing(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    window.tools.tree.setCurrentItem(None)
    window.canvas.clicked.emit(1.0, 1.0)
    assert any("pick a tool first" in t for t in window.messages.texts("warning"))
    assert not window.jobs


def test_an_image_result_comes_forward_from_the_pair_tab(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    select_rows(window, [0, 1])
    run(qtbot, window, "fake.pair")
    assert window.central_tabs.currentWidget() is window.pair_view
    run(qtbot, window, "fake.norms")
    assert window.central_tabs.currentWidget() is window.canvas


def test_scores_come_forward_over_messages_and_name_their_image(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    window.dock_messages.raise_()
    qtbot.waitUntil(lambda: window.dock_results.visibleRegion().isEmpty())
    run(qtbot, window, "fake.all")
    qtbot.waitUntil(lambda: not window.dock_results.visibleRegion().isEmpty())
    assert window.results.currentWidget() in (
        window.results.scores,
        window.results.text_page,
        window.results.table,
    )
    assert image.name in window.results.scores.caption and "fake.all" in window.results.scores.caption


def test_siglip_bars_are_not_stretched_to_the_top_score(qtbot):
    from vfmstudio.qt.results_panel import ScoreBars

    bars = ScoreBars()
    qtbot.addWidget(bars)
    bars.set_result(Classification(("cat", "dog"), np.array([0.02, 0.01]), multi_label=True))
    assert bars.fraction(0.02) == 0.02 and bars.fraction(0.01) == 0.01
    bars.set_result(Classification(("cat", "dog"), np.array([0.7, 0.3])))
    assert bars.fraction(0.7) == 0.7


# ------------------------------------------------------------------------------ keys


def test_tool_keys_work_from_a_list_also_as_capitals_but_type_in_a_text_field(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    window.activateWindow()
    lab = window.labelling
    shift = Qt.KeyboardModifier.ShiftModifier
    for widget, key, mode in (
        (window.browser.list, Qt.Key.Key_B, "box"),
        (window.layers.list, Qt.Key.Key_P, "polygon"),
        (window.messages, Qt.Key.Key_M, "brush"),
        (window.tools.tree, Qt.Key.Key_E, "erase"),
    ):
        lab.set_mode("view")
        widget.setFocus()
        qtbot.waitUntil(widget.hasFocus)
        qtbot.keyClick(widget, key, shift)  # "B", as typed with Shift (a list's type-ahead took it)
        assert lab.tool_actions[mode].isChecked(), (type(widget).__name__, mode)
    lab.set_mode("view")
    edit = window.browser.filter_edit
    edit.setFocus()
    qtbot.waitUntil(edit.hasFocus)
    qtbot.keyClicks(edit, "Vb")
    assert edit.text() == "Vb" and lab.tool_actions["view"].isChecked()


# ------------------------------------------------------------------------------ canvas labels


def test_labels_on_the_canvas_never_overlap(qtbot, window, image_folder):
    from vfmstudio.qt.painters import canvas_labels

    image = open_and_wait(qtbot, window, image_folder)
    h, w = image.height, image.width
    masks = np.zeros((4, h, w), bool)
    masks[:, :5, :5] = True
    pred = Prediction(
        "fake.x",
        None,
        (image.id,),
        (
            Masks(
                masks,
                ("cat", "dog", "bird", "fish"),
                boxes_xyxy=np.zeros((4, 4), np.float32),
                image_id=image.id,
            ),
        ),
    )
    for zoom in (1.0, 4.0):
        window.add_prediction(pred)
        window.canvas.zoom_by(zoom)
        labels = canvas_labels([window.canvas.image_item])
        assert len(labels) == 4
        # Labels keep their screen size: their place on screen is their scene position, their size
        # is their own bounding rectangle in pixels.
        view = [
            label.boundingRect().translated(window.canvas.mapFromScene(label.scenePos()).toPointF())
            for label in labels
        ]
        assert all(not a.intersects(b) for i, a in enumerate(view) for b in view[i + 1 :]), view


# ------------------------------------------------------------------------------ layers and accept


def test_clearing_layers_is_undoable_and_cleared_predictions_leave_accept(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    run(qtbot, window, "fake.all")
    before = len(window.layer_store.layers(image.id))
    assert before and window.labelling.predictions_on_view()
    window.layers.clear_button.click()
    assert window.layer_store.layers(image.id) == []
    assert window.labelling.predictions_on_view() == []
    assert not window.labelling.accept_all()
    window.layers.undo_action.trigger()
    assert len(window.layer_store.layers(image.id)) == before
    assert [p.tool for p in window.labelling.predictions_on_view()] == ["fake.all"]


# ------------------------------------------------------------------------------ browser, menus, rankings


def test_unreadable_files_keep_the_rows_of_the_image_list_the_same_height(qtbot, window, image_folder):
    lst = window.browser.list

    def row_heights() -> set[int]:
        qtbot.waitUntil(
            lambda: all(
                window.browser.has_thumbnail(p) for p in window.browser.paths() if p.name != "a-broken.png"
            ),
            timeout=5000,
        )
        return {lst.visualItemRect(lst.item(i)).height() for i in range(lst.count())}

    window.open_paths([image_folder])
    healthy = row_heights()
    (image_folder / "a-broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # listed first
    window.open_paths([image_folder])
    assert row_heights() == healthy and len(healthy) == 1
    assert window.browser.thumbnail(image_folder / "a-broken.png") is None


def test_labels_and_history_docks_are_in_the_view_menu(window):
    actions = window.menus.view.actions()
    for dock in (
        window.labelling.dock,
        window.labelling.dock_history,
        window.dock_tools,
        window.dock_messages,
    ):
        assert dock.toggleViewAction() in actions


def test_a_ranking_row_opens_its_image_on_double_click(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    paths = window.browser.paths()
    third = window.images.load(paths[2])
    window.add_prediction(
        Prediction(
            "fake.search",
            None,
            (third.id,),
            (Ranking((third.id,), np.array([0.9]), (paths[2].name,), "cat"),),
        )
    )
    ranking = window.results.ranking
    row = ranking.item(ranking.count() - 1)
    where = ranking.visualItemRect(row).center()
    qtbot.mouseClick(ranking.viewport(), Qt.MouseButton.LeftButton, pos=where)
    qtbot.mouseDClick(ranking.viewport(), Qt.MouseButton.LeftButton, pos=where)
    qtbot.waitUntil(lambda: window.current is not None and window.current.id == third.id, timeout=5000)


def test_the_set_tab_drops_a_set_once_the_selection_changes(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    select_rows(window, [0, 1])
    run(qtbot, window, "fake.setsim", points=((2.0, 2.0),))
    assert len(window.grid_view.image_ids) == 2
    for p in window.browser.paths():
        window.images.load(p)
    select_rows(window, [0, 2])
    assert window.grid_view.image_ids == []


# ------------------------------------------------------------------------------ runs and messages


def test_the_progress_bar_names_its_image_and_a_single_result_is_one_result(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    assert window.tools.select_tool("fake.slow")
    window.tools.form.set_value("seconds", 0.3)
    window.run_current_tool()
    assert "img0.png" in window.tools.progress.format()
    wait_idle(qtbot, window)
    done = [t for t in window.messages.texts("info") if t.startswith("fake.slow on img0.png")]
    assert done and ": 1 result in" in done[-1]


def test_cancelling_a_stream_keeps_the_text_generated_so_far(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    assert window.tools.select_tool("fake.stream")
    window.tools.form.set_value("words", 100)
    window.run_current_tool()
    qtbot.waitUntil(lambda: "word2" in window.results.text.current_text(), timeout=10000)
    window.cancel_jobs()
    wait_idle(qtbot, window)
    text = window.results.text.current_text()
    assert "word0 word1 word2" in text and "(cancelled)" in text


def test_a_failed_run_gives_one_message(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    run(qtbot, window, "fake.boom")
    QApplication.processEvents()
    errors = window.messages.texts("error")
    assert len(errors) == 1 and window.prefetcher.pending() == []


def test_the_threshold_field_shows_a_short_number(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    run(qtbot, window, "fake.pca")
    window.controller.threshold_moved(0.123456789012345)
    wait_idle(qtbot, window)
    assert window.tools.form.editors["threshold"].text() == "0.1235"


def test_a_missing_model_goes_to_the_model_manager_seam(qtbot, window, image_folder):
    from vfmstudio.ml.errors import PULL_COMMAND

    open_and_wait(qtbot, window, image_folder)
    asked = []
    window.controller.on_model_missing = lambda request, message: (
        asked.append((request.tool.id, message)) or True
    )
    fake = sys.modules["fake"]
    original = fake.boom

    def missing(ctx, images, params):
        raise RuntimeError(f"model 'x' is not in the local cache; fetch it with: {PULL_COMMAND} x")

    fake.boom = missing
    try:
        run(qtbot, window, "fake.boom")
    finally:
        fake.boom = original
    assert asked and asked[0][0] == "fake.boom" and not window.messages.texts("error")


def test_settings_stick_per_tool_across_tools_and_restarts(qtbot, fake_host, tmp_path):
    w = build_window(qtbot, fake_host, tmp_path)
    assert w.tools.select_tool("fake.pca")
    w.tools.set_model_ref("/models/mine")
    w.tools.device_combo.setCurrentText("cpu")
    w.tools.form.set_value("threshold", 0.25)
    w.tools.form.edited.emit()
    assert w.tools.select_tool("fake.slow")
    assert w.tools.model_ref() == "/models/mine"  # a model chosen in the family is its default
    assert w.tools.select_tool("fake.pca")
    assert w.tools.form.resolved()["threshold"] == 0.25 and w.tools.device_combo.currentText() == "cpu"
    w.close()
    again = build_window(qtbot, fake_host, tmp_path)
    qtbot.waitUntil(lambda: again.tools.tool is not None and again.tools.tool.id == "fake.pca", timeout=5000)
    assert again.tools.model_ref() == "/models/mine" and again.tools.form.resolved()["threshold"] == 0.25
    again.close()


def test_propagate_takes_the_annotations_on_view_from_the_labels_dock(
    qtbot, monkeypatch, tmp_path, image_folder
):
    import json

    from conftest import fake_plugin_host

    from vfmstudio.core.annotations import Box
    from vfmstudio.core.results import result_from_json

    w = build_window(qtbot, fake_plugin_host(monkeypatch, "vfmstudio_dinov2"), tmp_path)
    try:
        open_and_wait(qtbot, w, image_folder)
        lab = w.labelling
        qtbot.waitUntil(lambda: lab.controller.image_key is not None, timeout=5000)
        submitted = []
        monkeypatch.setattr(w.controller, "submit", lambda request: submitted.append(request) or 1)
        lab.panel.add_class("cat", "#e6194b")
        lab.panel.select_class("cat")
        lab.controller.add_shape(Box(2, 2, 20, 20))
        lab.propagate_button.click()
        assert not submitted and any("select the images to label" in t for t in w.messages.texts("warning"))
        select_rows(w, [0, 1, 2])
        lab.propagate_button.click()
        (request,) = submitted
        assert request.tool.id == "dino.propagate" and [p.name for p in request.paths] == [
            "img0.png",
            "img1.png",
            "img2.png",
        ]
        reference = result_from_json(json.loads(request.params["masks"]))
        assert reference.labels == ("cat",) and reference.masks[0].sum() == 18 * 18
    finally:
        w.close()


def test_propagate_takes_a_selected_masks_layer_of_the_image_on_view(
    qtbot, monkeypatch, tmp_path, image_folder
):
    import json

    from conftest import fake_plugin_host

    from vfmstudio.core.results import result_from_json

    w = build_window(qtbot, fake_plugin_host(monkeypatch, "vfmstudio_dinov2"), tmp_path)
    try:
        image = open_and_wait(qtbot, w, image_folder)
        submitted = []
        monkeypatch.setattr(w.controller, "submit", lambda request: submitted.append(request) or 1)
        masks = np.zeros((1, image.height, image.width), bool)
        masks[0, 3:9, 4:10] = True
        w.add_prediction(
            Prediction("fake.seg", None, (image.id,), (Masks(masks, ("sofa",), image_id=image.id),))
        )
        w.layers.list.setCurrentRow(0)
        assert isinstance(w.layers.selected_layer().result, Masks)
        select_rows(w, [0, 1])
        w.labelling.propagate_action.trigger()
        (request,) = submitted
        reference = result_from_json(json.loads(request.params["masks"]))
        assert reference.labels == ("sofa",) and (reference.masks == masks).all()
        assert request.paths[0] == w.current_path and len(request.paths) == 2
    finally:
        w.close()
