"""The studio window, driven with pytest-qt (offscreen) against a fake plugin."""

from __future__ import annotations

import sys

import numpy as np
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QImage

from vfmstudio.core.results import Masks
from vfmstudio.qt.imaging import array_from_qimage
from vfmstudio.qt.painters import export_layer_png

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from conftest import open_and_wait  # noqa: E402


def select_and_run(qtbot, window, tool_id, **params):
    assert window.tools.select_tool(tool_id)
    for name, value in params.items():
        window.tools.form.set_value(name, value)
    job_id = window.run_current_tool()
    assert job_id is not None
    return job_id


def wait_idle(qtbot, window, timeout=10000):
    qtbot.waitUntil(lambda: not window.jobs and window.runner.runner.pending() == 0, timeout=timeout)


def layer_items(window):
    item = window.canvas.image_item
    return [] if item is None else item.childItems()


# ------------------------------------------------------------------------------ browsing


def test_open_folder_lists_images_with_thumbnails_and_shows_the_first(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    names = [p.name for p in window.browser.paths()]
    assert names == ["img0.png", "img1.png", "img2.png"]  # the .txt is not listed
    assert (image.width, image.height) == (64, 48)
    qtbot.waitUntil(
        lambda: all(window.browser.has_thumbnail(p) for p in window.browser.paths()), timeout=5000
    )
    assert "images" in window.windowTitle()
    assert window.recent_folders()[0].endswith("images")


def test_filter_and_next_previous_keys(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    window.activateWindow()
    qtbot.keyClick(window.canvas, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: window.current_path is not None and window.current_path.name == "img1.png")
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: window.current_path.name == "img0.png")
    window.browser.filter_edit.setText("img2")
    assert [window.browser.list.item(i).isHidden() for i in range(3)] == [True, True, False]
    window.browser.step(+1)  # skips hidden rows
    qtbot.waitUntil(lambda: window.current_path.name == "img2.png")


def test_zoom_fit_one_to_one_and_pixel_value_in_status_bar(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    canvas = window.canvas
    canvas.actual_size()
    assert canvas.scale_factor == 1.0
    canvas.zoom_by(2.0)
    assert abs(canvas.scale_factor - 2.0) < 1e-9
    canvas.zoom_by(1e6)  # clamped
    assert canvas.scale_factor <= 64.0
    canvas.fit()
    assert canvas.scale_factor > 1.0  # 64x48 fitted into a big view
    # Hover pixel (5, 7): the status bar shows its coordinates and RGB value.
    view_pt = canvas.mapFromScene(5.5, 7.5)
    qtbot.mouseMove(canvas.viewport(), view_pt)
    r, g, b = image.pixels[7, 5]
    qtbot.waitUntil(lambda: f"x 5  y 7   RGB {r} {g} {b}" in window.pixel_label.text())


def test_wheel_zoom_keeps_the_point_under_the_cursor(qtbot, window, image_folder):
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent

    open_and_wait(qtbot, window, image_folder)
    canvas = window.canvas
    pos = QPoint(canvas.viewport().width() // 3, canvas.viewport().height() // 3)
    before = canvas.mapToScene(pos)
    event = QWheelEvent(
        QPointF(pos),
        QPointF(canvas.viewport().mapToGlobal(pos)),
        QPoint(0, 0),
        QPoint(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    scale = canvas.scale_factor
    canvas.wheelEvent(event)
    assert canvas.scale_factor > scale * 1.3
    after = canvas.mapToScene(pos)
    assert abs(after.x() - before.x()) < 1.0 and abs(after.y() - before.y()) < 1.0


# ------------------------------------------------------------------------------ running tools


def test_run_tool_adds_layers_scores_table_and_text(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    select_and_run(qtbot, window, "fake.all")
    wait_idle(qtbot, window)
    kinds = [layer.kind for layer in window.layer_store.layers(image.id)]
    assert kinds == ["masks", "detections", "heatmap", "feature_image", "layer_maps"]
    assert len(layer_items(window)) == 5
    assert window.layers.list.count() == 5
    assert window.results.scores.result.labels == ("dog", "cat")
    assert window.results.table.rowCount() == 2
    assert "a fake caption" in window.results.text.current_text()
    assert window.canvas.legend is not None  # the top visible map has a legend
    assert window.tools.progress.format() == "done"


def test_rerun_replaces_layers_instead_of_piling_them_up(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    select_and_run(qtbot, window, "fake.all")
    wait_idle(qtbot, window)
    first = window.layer_store.layers(image.id)
    window.layer_store.update(first[2].id, opacity=0.25, colormap="magma")
    select_and_run(qtbot, window, "fake.all")
    wait_idle(qtbot, window)
    second = window.layer_store.layers(image.id)
    assert len(second) == 5 and {layer.id for layer in second}.isdisjoint(layer.id for layer in first)
    assert (second[2].opacity, second[2].colormap) == (0.25, "magma")


def test_cancel_a_running_job(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    select_and_run(qtbot, window, "fake.slow", seconds=30.0)
    qtbot.waitUntil(lambda: "working" in window.tools.progress.format(), timeout=5000)
    assert window.tools.cancel_button.isEnabled()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Escape)
    wait_idle(qtbot, window, timeout=20000)  # a hang guard well inside the 30 s the run would take
    assert window.tools.progress.format() == "cancelled"
    assert not window.tools.cancel_button.isEnabled()
    assert window.layer_store.layers(image.id) == []
    assert "fake.slow cancelled" in window.messages.texts("info")


def test_switching_images_mid_job_lands_the_result_on_its_own_image(qtbot, window, image_folder):
    first = open_and_wait(qtbot, window, image_folder, 0)
    select_and_run(qtbot, window, "fake.slow", seconds=0.5)
    window.browser.list.setCurrentRow(1)
    qtbot.waitUntil(lambda: window.current is not None and window.current.id != first.id)
    second = window.current
    wait_idle(qtbot, window)
    # Stored on the image it was computed for, not drawn on the one on view.
    assert [layer.kind for layer in window.layer_store.layers(first.id)] == ["heatmap"]
    assert window.layer_store.layers(second.id) == []
    assert layer_items(window) == []
    assert window.layers.list.count() == 0
    window.browser.list.setCurrentRow(0)
    qtbot.waitUntil(lambda: window.current is not None and window.current.id == first.id)
    assert len(layer_items(window)) == 1


def test_a_raising_plugin_gives_a_message_and_the_window_lives_on(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    select_and_run(qtbot, window, "fake.boom")
    wait_idle(qtbot, window)
    errors = window.messages.texts("error")
    assert len(errors) == 1 and "fake.boom (fake)" in errors[0] and "kaboom" in errors[0]
    assert window.tools.progress.format() == "error"
    select_and_run(qtbot, window, "fake.all")  # the same window still works
    wait_idle(qtbot, window)
    assert window.layer_store.layers(image.id)


def test_bad_parameter_is_reported_without_running(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    window.tools.select_tool("fake.pca")
    window.tools.form.set_value("threshold", "lots")
    assert window.run_current_tool() is None
    assert any("threshold" in t for t in window.messages.texts("error"))


def test_gui_thread_keeps_running_while_a_busy_tool_runs(qtbot, window, image_folder):
    """The tool computes in pure Python on the inference thread (holding the GIL but for Python's
    switch interval: worse than a model, whose kernels release it) until the GUI thread has handled
    40 heartbeats. A window that waited on the worker (a lock, a join, the GIL held too long) would
    never get there and the run would hang; the stall in milliseconds is measured by
    benchmarks/bench_gui_stall.py, not asserted here."""
    open_and_wait(qtbot, window, image_folder)
    fake = sys.modules["fake"]
    fake.GUI_BEATS["n"] = 0
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: fake.GUI_BEATS.__setitem__("n", fake.GUI_BEATS["n"] + 1))
    timer.start()
    try:
        select_and_run(qtbot, window, "fake.busy", beats=40)
        wait_idle(qtbot, window, timeout=60000)
    finally:
        timer.stop()
    assert not window.messages.texts("error")
    runs = fake.BUSY_RUNS
    assert runs and runs[-1]["beats_seen"] >= 40 and runs[-1]["python_steps"] > 0


def test_threshold_drag_updates_the_mask_without_a_forward_pass(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    fake = sys.modules["fake"]
    select_and_run(qtbot, window, "fake.pca")
    wait_idle(qtbot, window)
    assert fake.FORWARD["calls"] == 1
    assert window.layers.histogram_box.isVisible()
    hist_view = window.layers.histogram
    assert hist_view.threshold == 0.5

    def mask():
        return next(
            layer.result for layer in window.layer_store.layers(image.id) if isinstance(layer.result, Masks)
        )

    before = mask().masks[0].sum()
    # Drag the threshold line from the middle to about a quarter of the range.
    x_mid, x_quarter = int(hist_view.x_of(0.5)), int(hist_view.x_of(0.25))
    y = hist_view.height() // 2
    qtbot.mousePress(hist_view, Qt.MouseButton.LeftButton, pos=QPoint(x_mid, y))
    for x in range(x_mid, x_quarter - 1, -4):
        qtbot.mouseMove(hist_view, QPoint(x, y))
    qtbot.mouseRelease(hist_view, Qt.MouseButton.LeftButton, pos=QPoint(x_quarter, y))
    wait_idle(qtbot, window)
    thr = hist_view.threshold
    assert 0.2 < thr < 0.3
    after = mask()
    pc1 = (np.mgrid[0 : image.height, 0 : image.width][1] / (image.width - 1)).astype(np.float32)
    np.testing.assert_array_equal(after.masks[0], pc1 > np.float32(thr))
    assert after.masks[0].sum() > before
    assert fake.FORWARD["calls"] == 1  # every rerun used the cached features
    assert float(window.tools.form.values()["threshold"]) == thr  # the form follows the drag
    assert len(window.layer_store.layers(image.id)) == 2  # replaced in place, not piled up


def test_clicking_a_point_reruns_a_point_tool_on_cached_features(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    fake = sys.modules["fake"]
    window.tools.select_tool("fake.point")
    window.canvas.clicked.emit(3.2, 4.7)  # fills the points parameter
    assert window.tools.form.values()["points"] == "3.2,4.7"
    window.run_current_tool()
    wait_idle(qtbot, window)
    window.canvas.clicked.emit(10.0, 20.0)  # already ran on this image: reruns live
    wait_idle(qtbot, window)
    heat = window.layer_store.layers(image.id)[0].result
    assert heat.label == "point 10,20" and heat.values[20, 10] == 1.0
    assert fake.FORWARD["calls"] == 1


def test_streaming_text_shows_before_the_job_ends(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    select_and_run(qtbot, window, "fake.stream", words=20)
    qtbot.waitUntil(lambda: "word2" in window.results.text.current_text(), timeout=5000)
    assert window.jobs  # still running
    wait_idle(qtbot, window)
    assert "word19" in window.results.text.current_text()


def test_pair_view_draws_correspondence_lines(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    window.browser.list.item(0).setSelected(True)
    window.browser.list.item(2).setSelected(True)
    select_and_run(qtbot, window, "fake.pair")
    wait_idle(qtbot, window)
    assert window.central_tabs.currentWidget() is window.pair_view
    assert len(window.pair_view.lines) == 3
    assert window.pair_view.lines[0].toolTip().endswith("0.900")  # best match first


def test_pair_tool_with_one_image_selected_explains_itself(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    window.tools.select_tool("fake.pair")
    assert window.run_current_tool() is None
    assert any("two selected images" in t for t in window.messages.texts("warning"))


def test_layer_controls_visibility_slider_delete_and_png_export(qtbot, window, image_folder, tmp_path):
    image = open_and_wait(qtbot, window, image_folder)
    select_and_run(qtbot, window, "fake.all")
    wait_idle(qtbot, window)
    panel = window.layers
    panel.list.setCurrentRow(0)  # top of the list = the layer maps (top of the z-order)
    layer = panel.selected_layer()
    assert layer.kind == "layer_maps" and panel.layer_slider.isEnabled()
    panel.layer_slider.setValue(1)
    assert window.layer_store.find(layer.id).layer_index == 1 and panel.layer_name.text() == "layer 1"
    assert window.canvas.legend[3].endswith("layer 1")
    panel.list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert not window.layer_store.find(layer.id).visible
    item_before = window.views.item(layer.id)
    panel.opacity.setValue(30)
    assert window.layer_store.find(layer.id).opacity == 0.3
    item = window.views.item(layer.id)
    assert item is item_before and item.opacity() == 0.3  # updated, not rendered again
    masks_layer = window.layer_store.layers(image.id)[0]
    out = tmp_path / "masks.png"
    export_layer_png(masks_layer, (image.width, image.height), out)
    rgba = array_from_qimage(QImage(str(out)))
    assert rgba.shape == (image.height, image.width, 4)
    assert rgba[5, 5, 3] > 0 and rgba[image.height - 5, 5, 3] == 0  # inside mask 0 / outside every mask
    panel.delete_button.click()
    assert len(window.layer_store.layers(image.id)) == 4
    panel.clear_button.click()
    assert window.layer_store.layers(image.id) == [] and layer_items(window) == []


def test_unreadable_image_is_a_message_not_a_crash(qtbot, window, image_folder):
    (image_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    window.open_paths([image_folder])
    row = [p.name for p in window.browser.paths()].index("broken.png")
    window.browser.list.setCurrentRow(row)
    qtbot.waitUntil(lambda: any("broken.png" in t for t in window.messages.texts("error")), timeout=5000)
    assert window.current is None and window.canvas.image_item is None


def test_window_state_and_recent_folders_are_restored(qtbot, fake_host, image_folder, tmp_path):
    from PySide6.QtCore import QSettings

    from vfmstudio.qt.main_window import MainWindow

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(host=fake_host, settings=settings)
    qtbot.addWidget(w)
    w.open_paths([image_folder])
    w.dock_messages.hide()
    w.close()
    w2 = MainWindow(host=fake_host, settings=settings)
    qtbot.addWidget(w2)
    assert w2.recent_folders() == [str(image_folder.resolve())]
    assert w2.menus.recent.actions()[0].text() == str(image_folder.resolve())
    assert w2.dock_messages.isHidden()
    w2.close()


def test_parameter_form_round_trips_every_parameter_type(qtbot):
    from vfmstudio.core.tools import Param, ParamType, ToolSpec
    from vfmstudio.qt.param_form import ParamForm

    tool = ToolSpec(
        id="fake.form",
        title="Form",
        run="fake:x",
        params=(
            Param("n", ParamType.INT, 3, minimum=1, maximum=9),
            Param("f", ParamType.FLOAT, 0.5, minimum=0.0, maximum=1.0),
            Param("auto_f", ParamType.FLOAT, "auto", special=("auto",)),
            Param("b", ParamType.BOOL, True),
            Param("auto_b", ParamType.BOOL, "auto", special=("auto",)),
            Param("c", ParamType.CHOICE, "y", choices=("x", "y")),
            Param("s", ParamType.STR, "hi"),
            Param("t", ParamType.TEXT, "long text"),
            Param("labels", ParamType.STRLIST, ("cat", "dog")),
            Param("pts", ParamType.POINTS, ((1, 2), (3.5, 4))),
        ),
    )
    form = ParamForm(tool)
    qtbot.addWidget(form)
    assert form.resolved() == tool.resolve_params({})  # the form starts at the declared defaults
    for name, value in {
        "n": 7,
        "f": 0.25,
        "auto_f": 2.5,
        "b": False,
        "auto_b": True,
        "c": "x",
        "s": "yo",
        "t": "other",
        "labels": ("a", "b c"),
        "pts": ((5.0, 6.0),),
    }.items():
        form.set_value(name, value)
    assert form.resolved() == {
        "n": 7,
        "f": 0.25,
        "auto_f": 2.5,
        "b": False,
        "auto_b": True,
        "c": "x",
        "s": "yo",
        "t": "other",
        "labels": ("a", "b c"),
        "pts": ((5.0, 6.0),),
    }


def test_set_view_shows_every_image_and_a_click_on_the_source_reruns_on_cached_features(
    qtbot, window, image_folder
):
    open_and_wait(qtbot, window, image_folder)
    fake = sys.modules["fake"]
    for row in (0, 1):
        window.browser.list.item(row).setSelected(True)
    window.tools.select_tool("fake.setsim")
    window.tools.form.set_value("points", ((2.0, 3.0),))
    window.run_current_tool()
    wait_idle(qtbot, window)
    grid = window.grid_view
    assert window.central_tabs.currentWidget() is grid
    # source: its heat map and the query dot; the other image: its heat map and the best-match ring
    assert len(grid.tiles) == 2 and [len(t.childItems()) for t in grid.tiles] == [2, 2]
    assert fake.FORWARD["calls"] == 2  # one forward per image
    src, other = grid.images
    grid.clicked.emit(32.0, 24.0)  # the middle of the 64x48 source
    wait_idle(qtbot, window)
    heat = window.layer_store.layers(other.id)[0].result
    assert heat.label == "similarity to 32,24"
    ring = grid.tiles[1].childItems()[-1].childItems()[0]
    assert (ring.pos().x(), ring.pos().y()) == (32 / 64 * other.width, 24 / 48 * other.height)
    assert heat.values[int(24 / 48 * other.height), int(32 / 64 * other.width)] == 1.0
    assert fake.FORWARD["calls"] == 2  # the click reran on cached features only
    assert [len(t.childItems()) for t in grid.tiles] == [2, 2]  # updated in place


def test_a_real_click_on_the_set_view_maps_to_source_pixels(qtbot, window, image_folder):
    from PySide6.QtCore import QPointF

    open_and_wait(qtbot, window, image_folder)
    for row in (0, 2):
        window.browser.list.item(row).setSelected(True)
    window.tools.select_tool("fake.setsim")
    window.tools.form.set_value("points", ((1.0, 1.0),))
    window.run_current_tool()
    wait_idle(qtbot, window)
    grid = window.grid_view
    pos = grid.mapFromScene(grid.tiles[0].mapToScene(QPointF(40.5, 20.5)))
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    x, y = (float(v) for v in window.tools.form.values()["points"].split(","))
    assert abs(x - 40.5) < 1.5 and abs(y - 20.5) < 1.5
    wait_idle(qtbot, window)


def test_rerun_on_every_edit_uses_cached_features(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    fake = sys.modules["fake"]
    window.tools.live_check.setChecked(True)
    window.tools.select_tool("fake.pca")
    window.tools.form.editors["threshold"].setText("0.1")  # not run yet on this image: nothing happens
    qtbot.wait(400)
    assert fake.FORWARD["calls"] == 0 and not window.jobs
    window.run_current_tool()
    wait_idle(qtbot, window)
    for text in ("0.", "0.8", "0.85"):  # typing: one rerun after the pause, with the last value
        window.tools.form.editors["threshold"].setText(text)
    qtbot.waitUntil(
        lambda: window.session.prediction(image.id, "fake.pca").params["threshold"] == 0.85, timeout=5000
    )
    wait_idle(qtbot, window)
    assert fake.FORWARD["calls"] == 1


def test_device_panel_reports_what_torch_sees(qtbot, window, image_folder):
    from PySide6.QtWidgets import QMessageBox

    window.show_devices()
    qtbot.waitUntil(lambda: getattr(window, "device_report", None) is not None, timeout=60000)
    report = window.device_report
    assert report["source"] == "torch" and report["default_device"] == "cpu" and report["cpu_threads"] >= 1
    boxes = [w for w in window.findChildren(QMessageBox) if w.windowTitle() == "Devices"]
    assert boxes and "CPU:" in boxes[-1].text() and "CUDA available: False" in boxes[-1].text()
    assert window.device_status.text() == "device: cpu (auto)"
    for box in boxes:
        box.close()


def test_dropping_a_folder_opens_it(qtbot, window, image_folder):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image_folder))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    assert len(window.browser.paths()) == 3
    qtbot.waitUntil(lambda: window.current is not None)


def test_dark_and_light_palettes_follow_the_system_scheme(qtbot):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from vfmstudio.qt.theme import apply_scheme

    app = QApplication.instance()
    saved_style, saved_palette = app.style().name(), app.palette()
    try:
        assert apply_scheme(app, Qt.ColorScheme.Dark) == "dark"
        assert app.palette().color(QPalette.ColorRole.Window).lightness() < 80
        assert apply_scheme(app, Qt.ColorScheme.Light) == "light"
        assert app.palette().color(QPalette.ColorRole.Window).lightness() > 180
        assert apply_scheme(app, Qt.ColorScheme.Unknown) == "system"
    finally:
        app.setStyle(saved_style)
        app.setPalette(saved_palette)


def test_the_image_on_view_is_the_source_of_a_pair_or_set(qtbot, window, image_folder):
    viewed = open_and_wait(qtbot, window, image_folder, 2)
    window.browser.list.item(0).setSelected(True)
    window.browser.list.item(2).setSelected(True)
    select_and_run(qtbot, window, "fake.pair")
    wait_idle(qtbot, window)
    prediction = window.session.prediction(viewed.id, "fake.pair")
    assert prediction.image_ids[0] == viewed.id and len(prediction.image_ids) == 2


def test_questions_build_a_history_per_image(qtbot, window, image_folder):
    first = open_and_wait(qtbot, window, image_folder, 0)
    window.tools.select_tool("fake.all")
    assert window.ask("what?") is None  # fake.all takes no question: told, not run
    assert any("takes one" in t for t in window.messages.texts("warning"))
    window.tools.select_tool("fake.ask")
    for q in ("what colour?", "how many?"):
        window.results.ask_edit.setText(q)
        qtbot.keyClick(window.results.ask_edit, Qt.Key.Key_Return)
        wait_idle(qtbot, window)
    history = window.results.text.current_text()
    assert (
        history.index("what colour?") < history.index("answer to: what colour?") < history.index("how many?")
    )
    window.browser.list.setCurrentRow(1)
    qtbot.waitUntil(lambda: window.current is not None and window.current.id != first.id)
    assert "how many?" not in window.results.text.current_text()  # each image has its own history
    window.browser.list.setCurrentRow(0)
    qtbot.waitUntil(lambda: window.current is not None and window.current.id == first.id)
    assert "answer to: how many?" in window.results.text.current_text()


def test_a_click_on_the_left_of_the_pair_view_feeds_a_point_tool(qtbot, window, image_folder):
    from PySide6.QtCore import QPointF

    source = open_and_wait(qtbot, window, image_folder)
    window.browser.list.item(0).setSelected(True)
    window.browser.list.item(1).setSelected(True)
    select_and_run(qtbot, window, "fake.pair")
    wait_idle(qtbot, window)
    line = window.pair_view.lines[0]
    line.hoverEnterEvent(None)
    assert line.pen().widthF() == 4.0  # hovered line highlighted
    line.hoverLeaveEvent(None)
    window.tools.select_tool("fake.setsim")
    window.tools.form.set_value("points", ((1.0, 1.0),))
    window.run_current_tool()  # features of the pair now cached
    wait_idle(qtbot, window)
    window.central_tabs.setCurrentWidget(window.pair_view)
    qtbot.waitUntil(lambda: window.pair_view.isVisible())
    view = window.pair_view
    pos = view.mapFromScene(QPointF(30.5, 12.5))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    wait_idle(qtbot, window)
    heat = next(la.result for la in window.layer_store.layers(source.id) if la.kind == "heatmap")
    x, y = (float(v) for v in heat.label.removeprefix("similarity to ").split(","))
    assert abs(x - 30.5) < 1.5 and abs(y - 12.5) < 1.5  # the click reran the tool at that point
    assert sys.modules["fake"].FORWARD["calls"] == 2


def test_single_key_shortcuts_do_not_steal_typing(qtbot, window, image_folder):
    open_and_wait(qtbot, window, image_folder)
    window.activateWindow()
    window.browser.filter_edit.setFocus()
    qtbot.keyClicks(window.browser.filter_edit, "img1")
    assert window.browser.filter_edit.text() == "img1"
    assert window.current_path.name == "img0.png"  # "1" was typed, not "actual size"; no "d"/"a" either


def test_scrubbing_a_layer_stack_reruns_layer_tools_on_cached_features(qtbot, window, image_folder):
    image = open_and_wait(qtbot, window, image_folder)
    fake = sys.modules["fake"]
    select_and_run(qtbot, window, "fake.norms")
    wait_idle(qtbot, window)
    panel = window.layers
    row = [panel.list.item(i).text() for i in range(panel.list.count())].index("fake.norms layer_maps")
    panel.list.setCurrentRow(row)
    panel.layer_slider.setValue(1)
    wait_idle(qtbot, window)
    layers = {la.kind: la for la in window.layer_store.layers(image.id)}
    assert layers["masks"].result.labels == ("outliers of layer 1",)
    assert layers["masks"].result.masks[0, 1, 1]
    assert layers["layer_maps"].layer_index == 1  # the new stack keeps showing the scrubbed layer
    assert fake.FORWARD["calls"] == 1


def test_runs_on_two_images_both_land_and_a_rerun_on_the_same_image_supersedes(qtbot, window, image_folder):
    first = open_and_wait(qtbot, window, image_folder, 0)
    select_and_run(qtbot, window, "fake.slow", seconds=0.3)
    window.browser.list.setCurrentRow(1)
    qtbot.waitUntil(lambda: window.current is not None and window.current.id != first.id)
    second = window.current
    window.run_current_tool()
    wait_idle(qtbot, window)
    assert len(window.layer_store.layers(first.id)) == 1 and len(window.layer_store.layers(second.id)) == 1
    window.tools.form.set_value("seconds", 30.0)
    window.run_current_tool()
    qtbot.waitUntil(lambda: "working" in window.tools.progress.format(), timeout=5000)
    window.tools.form.set_value("seconds", 0.1)
    window.run_current_tool()  # same tool, same image: the 30 s run is superseded
    wait_idle(qtbot, window, timeout=20000)  # a hang guard well inside the 30 s the first run would take
    assert window.session.prediction(second.id, "fake.slow").params["seconds"] == 0.1
