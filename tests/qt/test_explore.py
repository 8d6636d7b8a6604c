"""The Explore map: the lasso selects exactly the points inside it; the window indexes a folder in the
background and shows its map, duplicates and outliers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from vfmstudio.index.layout import pca_2d, points_in_polygon
from vfmstudio.qt.explore_view import ExploreView
from vfmstudio.qt.explore_window import ExploreWindow, runner_submit
from vfmstudio.qt.runner import QtJobRunner


def test_points_in_polygon_follows_the_even_odd_rule():
    pts = np.array([[0.5, 0.5], [1.5, 0.5], [0.1, 0.9], [2.0, 2.0], [0.5, 1.5]])
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]])
    assert points_in_polygon(pts, square).tolist() == [True, False, True, False, False]
    l_shape = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]])
    assert points_in_polygon(pts, l_shape).tolist() == [True, True, True, False, True]


def test_pca_2d_separates_two_clusters_along_the_first_axis():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 32)) * 0.1 + 3
    b = rng.standard_normal((50, 32)) * 0.1 - 3
    xy = pca_2d(np.vstack([a, b]).astype(np.float32))
    assert xy.shape == (100, 2)
    assert (np.sign(xy[:50, 0]) != np.sign(xy[50:, 0])).all()
    np.testing.assert_array_equal(xy, pca_2d(np.vstack([a, b]).astype(np.float32)))  # deterministic


def test_a_lasso_drawn_with_the_mouse_selects_the_images_inside_it(qtbot):
    view = ExploreView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    grid = np.array([[x, y] for x in range(10) for y in range(10)], np.float32)
    rels = [f"img_{x}_{y}.png" for x, y in grid.astype(int)]
    view.set_map(Path("/tmp"), rels, grid)
    view.plot.getViewBox().setRange(xRange=(-1, 10), yRange=(-1, 10), padding=0)
    QTest.qWait(50)
    corners = [(1.5, 1.5), (4.5, 1.5), (4.5, 3.5), (1.5, 3.5)]
    viewport = view.plot.viewport()
    points = [view.data_to_widget(x, y) for x, y in corners]
    with qtbot.waitSignal(view.selected) as blocker:
        QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, points[0])
        for p in points[1:] + points[:1]:
            QTest.mouseMove(viewport, p)
        QTest.mouseRelease(
            viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier, points[0]
        )
    want = sorted(f"img_{x}_{y}.png" for x in (2, 3, 4) for y in (2, 3))
    assert sorted(blocker.args[0]) == want
    assert "6 selected" in view.status.text()


def test_the_legend_names_colours_and_escapes_what_the_project_file_says(qtbot):
    view = ExploreView()
    qtbot.addWidget(view)
    entries = [(f"#00000{i % 10}", f"class {i}", 20 - i) for i in range(14)]
    entries[0] = ('#ff0000"><img src=x>', "<b>cat</b>", 20)
    view.set_legend(entries)
    text = view.legend.text()
    assert "&lt;b&gt;cat&lt;/b&gt; (20)" in text and "<img" not in text and "<b>" not in text
    assert "class 11 (9)" in text and "class 12" not in text and "2 more (15)" in text  # 12 rows, then 8 + 7


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(6):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(
            root / f"{i}.png"
        )
    (root / "copy.png").write_bytes((root / "3.png").read_bytes())
    return root


def test_the_window_indexes_in_the_background_and_shows_the_map(qtbot, folder, tiny_model):
    runner = QtJobRunner()
    window = ExploreWindow(folder, runner_submit(runner), models=(str(tiny_model("dinov2")),))
    qtbot.addWidget(window)
    window.update_index()
    assert not window.run_button.isEnabled() and window.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: window.data is not None, timeout=120_000)
    assert window.run_button.isEnabled() and not window.cancel_button.isEnabled()
    assert sorted(window.view.rels) == sorted([*(f"{i}.png" for i in range(6)), "copy.png"])
    assert "7 images: 6 embedded" in window.message.text()
    top = window.view.duplicates.topLevelItem(0)
    assert top.text(0) == "exact: 3.png, copy.png"
    assert [top.child(i).checkState(0) for i in range(2)] == [Qt.CheckState.Unchecked, Qt.CheckState.Checked]
    assert window.view.outliers.count() == 7
    window.colour.setCurrentText("outlier score")
    assert window.view.values is not None and len(window.view.values) == 7
    window.colour.setCurrentText("cluster")
    np.testing.assert_array_equal(window.view.values, window.data.cluster)
    first = int(window.data.cluster[0])
    assert f"cluster {first + 1} ({int((window.data.cluster == first).sum())})" in window.view.legend.text()
    assert not window.search_button.isEnabled()  # DINOv2 has no text tower
    opened = []
    window.open_requested.connect(opened.append)
    item = window.view.outliers.item(0)
    window.view.outliers.itemDoubleClicked.emit(item)
    assert opened == [str(folder / item.data(Qt.ItemDataRole.UserRole))]
    runner.shutdown()


def test_similar_to_the_current_image_ranks_it_first(qtbot, folder, tiny_model):
    runner = QtJobRunner()
    window = ExploreWindow(
        folder,
        runner_submit(runner),
        models=(str(tiny_model("dinov2")),),
        current_image=lambda: folder / "2.png",
    )
    qtbot.addWidget(window)
    window.update_index()
    qtbot.waitUntil(lambda: window.data is not None, timeout=120_000)
    window.similar_to_current()
    qtbot.waitUntil(lambda: window.view.results.count() == 7, timeout=120_000)
    assert window.view.results.item(0).text().startswith("1.000  2.png")
    assert window.colour.currentText() == "similarity to the current image"
    runner.shutdown()


def test_text_search_colours_the_map_by_score(qtbot, folder, tiny_model):
    runner = QtJobRunner()
    window = ExploreWindow(folder, runner_submit(runner), models=(str(tiny_model("clip")),))
    qtbot.addWidget(window)
    window.update_index()
    qtbot.waitUntil(lambda: window.data is not None, timeout=120_000)
    assert window.search_button.isEnabled()
    window.query.setText("a cat")
    window.search_text()
    qtbot.waitUntil(lambda: window.view.results.count() == 7, timeout=120_000)
    assert window.colour.currentText() == "text query score"
    scores = [float(window.view.results.item(i).text().split()[0]) for i in range(7)]
    assert scores == sorted(scores, reverse=True)
    runner.shutdown()


def test_view_explore_opens_on_the_folder_and_a_lasso_selects_images_in_the_list(qtbot, window, image_folder):
    from vfmstudio.qt.explore_window import open_explore

    assert open_explore(window) is None  # no folder yet: a message instead
    assert any("open a folder first" in t for t in window.messages.texts("warning"))
    window.open_paths([image_folder])
    qtbot.waitUntil(lambda: len(window.browser.paths()) == 3, timeout=5000)
    window.menus.actions["explore"].trigger()
    explore = window.explore_window
    assert explore.isVisible() and explore.folder == image_folder
    # A lasso result (as ExploreView emits it) selects exactly those images in the image list.
    explore.view.rels = ["img0.png", "img2.png"]
    explore.view.selected.emit(["img0.png", "img2.png"])
    assert [p.name for p in window.browser.selected_paths()] == ["img0.png", "img2.png"]
    explore.open_requested.emit(str(image_folder / "img1.png"))
    qtbot.waitUntil(lambda: window.current_path == image_folder / "img1.png", timeout=5000)
    explore.close()


@pytest.fixture
def session(folder):
    """The folder's project with every image in it: 0.png and 1.png annotated, 2.png tagged."""
    from vfmstudio.core.annotations import Annotation, Box
    from vfmstudio.core.commands import AddAnnotations
    from vfmstudio.qt.project_session import ProjectSession

    s = ProjectSession(autosave_ms=60_000)
    s.open(folder)
    for path in sorted(folder.glob("*.png")):
        s.key_for(path)
    s.push(
        AddAnnotations(
            [
                Annotation("0.png", "cat", Box(0, 0, 5, 5)),
                Annotation("1.png", "dog", Box(0, 0, 5, 5)),
                Annotation("1.png", "dog", Box(1, 1, 5, 5)),
                Annotation("1.png", "cat", Box(1, 1, 5, 5)),
            ]
        )
    )
    s.project.labels.set_tags("2.png", ["blurry"])
    yield s
    s.stack.clear()


def _indexed(qtbot, folder, tiny_model, session=None, family="dinov2"):
    runner = QtJobRunner()
    window = ExploreWindow(folder, runner_submit(runner), models=(str(tiny_model(family)),), project=session)
    qtbot.addWidget(window)
    window.update_index()
    qtbot.waitUntil(lambda: window.data is not None, timeout=120_000)
    return window, runner


def _colour_of(window, rel):
    return window.view.scatter.data["brush"][window.view.rels.index(rel)].color().name()


def test_the_map_is_coloured_by_class_tag_and_review_state_with_a_legend(qtbot, folder, tiny_model, session):
    window, runner = _indexed(qtbot, folder, tiny_model, session)
    labels = session.project.labels
    window.colour.setCurrentText("class")
    assert _colour_of(window, "0.png") == labels.color_of("cat").lower()
    assert _colour_of(window, "1.png") == labels.color_of("dog").lower()  # two dogs, one cat
    assert _colour_of(window, "4.png") == _colour_of(window, "copy.png") != _colour_of(window, "0.png")
    legend = window.view.legend.text()
    assert "cat (1)" in legend and "dog (1)" in legend and "(no annotations) (5)" in legend
    window.colour.setCurrentText("tag")
    assert "blurry (1)" in window.view.legend.text() and "(no tags) (6)" in window.view.legend.text()
    assert _colour_of(window, "2.png") != _colour_of(window, "3.png")
    window.colour.setCurrentText("review state")
    legend = window.view.legend.text()
    assert "unlabelled (4)" in legend and "labelled (3)" in legend  # annotated or tagged
    assert _colour_of(window, "0.png") == "#4f8cff" and _colour_of(window, "5.png") == "#8a8f98"
    # An edit in the main window recolours the map once the edits settle.
    from vfmstudio.core.annotations import Annotation, Box
    from vfmstudio.core.commands import AddAnnotations

    session.push(AddAnnotations([Annotation("5.png", "cat", Box(0, 0, 2, 2))]))
    qtbot.waitUntil(lambda: "labelled (4)" in window.view.legend.text(), timeout=5000)
    runner.shutdown()


def test_checked_duplicates_leave_the_project_as_one_undoable_step(qtbot, folder, tiny_model, session):
    session.project.labels.set_tags("copy.png", ["dup"])
    window, runner = _indexed(qtbot, folder, tiny_model, session)
    tree = window.view.duplicates
    groups = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    checked = [
        [g.child(j).checkState(0) == Qt.CheckState.Checked for j in range(g.childCount())] for g in groups
    ]
    assert checked[0] == [False, True]  # the exact pair 3.png, copy.png: keep the first
    # (Random tiny weights put other images close too.) Every group keeps at least one file unchecked.
    gone = set(window.view.checked_duplicates())
    assert all({g.child(j).text(0) for j in range(g.childCount())} - gone for g in groups)
    for g in groups[1:]:  # the user keeps the near-duplicates
        for j in range(g.childCount()):
            g.child(j).setCheckState(0, Qt.CheckState.Unchecked)
    assert window.view.checked_duplicates() == ["copy.png"]
    window.view.remove_button.click()
    assert "copy.png" not in session.project.images and "copy.png" not in session.project.labels.tags
    assert "Removed 1 images from the project" in window.message.text()
    assert (folder / "copy.png").exists()  # never from disk
    assert session.stack.undoText() == "Remove 1 image from the project"
    session.stack.undo()
    assert "copy.png" in session.project.images and session.project.labels.tags["copy.png"] == ("dup",)
    # "Keep the largest" picks by pixels: the copies are alike, so the first stays checked-off.
    window.view.keep.setCurrentIndex(1)
    assert tree.topLevelItem(0).child(1).checkState(0) == Qt.CheckState.Checked
    runner.shutdown()


def test_the_map_grows_while_vectors_arrive(qtbot, folder, tiny_model, monkeypatch):
    import vfmstudio.index.build as build
    import vfmstudio.index.growing as growing

    monkeypatch.setattr(build, "FLUSH_EVERY", 2)
    monkeypatch.setattr(growing, "EVERY_S", 0.0)
    monkeypatch.setattr(growing, "SECONDS_PER_POINT", 0.0)
    runner = QtJobRunner()
    window = ExploreWindow(folder, runner_submit(runner), models=(str(tiny_model("dinov2")),))
    qtbot.addWidget(window)
    sizes = []
    set_map = window.view.set_map
    window.view.set_map = lambda f, rels, xy: (sizes.append(len(rels)), set_map(f, rels, xy))
    window.update_index()
    qtbot.waitUntil(lambda: window.data is not None, timeout=120_000)
    # Partial maps (4 then 6 contents, 7 files with the copy) before the final one of all 7 files.
    assert len(sizes) >= 3 and sizes[:-1] == sorted(sizes[:-1]) and sizes[0] < 7 and sizes[-1] == 7
    runner.shutdown()


def test_the_tsne_layout_replaces_the_pca_map_when_ready(qtbot, folder, tiny_model):
    window, runner = _indexed(qtbot, folder, tiny_model)
    pca = window.view.xy.copy()
    window.colour.setCurrentText("cluster")
    window.layout_choice.setCurrentText("t-SNE")
    assert window.cancel_button.isEnabled()  # computed in the background
    qtbot.waitUntil(lambda: "t-SNE" in window.layout_xy, timeout=120_000)
    tsne = window.layout_xy["t-SNE"]
    np.testing.assert_array_equal(window.view.xy, tsne)
    assert not np.allclose(tsne, pca)
    rels = window.view.rels
    np.testing.assert_array_equal(tsne[rels.index("3.png")], tsne[rels.index("copy.png")])  # one content
    np.testing.assert_array_equal(window.view.values, window.data.cluster)  # the colouring stays
    window.layout_choice.setCurrentText("PCA")
    np.testing.assert_array_equal(window.view.xy, pca)
    runner.shutdown()


def test_cancelling_the_tsne_layout_keeps_the_pca_map(qtbot, folder, tiny_model):
    window, runner = _indexed(qtbot, folder, tiny_model)
    pca = window.view.xy.copy()
    window.layout_choice.setCurrentText("t-SNE")
    window.cancel()
    assert window.layout_choice.currentText() == "PCA" and window.run_button.isEnabled()
    assert window.message.text() == "Cancelled; the PCA map stays."
    np.testing.assert_array_equal(window.view.xy, pca)
    runner.shutdown()


def test_removing_duplicates_updates_the_image_lists_review_states(qtbot, window, image_folder):
    from vfmstudio.core.commands import SetTags

    window.open_paths([image_folder])
    qtbot.waitUntil(lambda: len(window.browser.paths()) == 3, timeout=5000)
    session = window.labelling.session
    for path in window.browser.paths():
        session.key_for(path)
    path = image_folder / "img1.png"
    key = session.project.key_for_path(path)
    session.push(SetTags(key, ("blurry",)))
    qtbot.waitUntil(lambda: window.browser.review_state(path) == "labelled", timeout=5000)
    explore = ExploreWindow(image_folder, lambda *a: None, project=session, pending=lambda: window.pending)
    qtbot.addWidget(explore)
    explore.remove_from_project(["img1.png", "not-in-the-project.png"])
    assert key not in session.project.images
    assert "(1 were not in the project)" in explore.message.text()
    qtbot.waitUntil(lambda: window.browser.review_state(path) == "", timeout=5000)  # no longer in it
    assert window.pending.states().get(key) is None
    session.stack.undo()
    qtbot.waitUntil(lambda: window.browser.review_state(path) == "labelled", timeout=5000)
