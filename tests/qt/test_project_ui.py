# ruff: noqa: F811  (the fixtures imported from edit_helpers are test parameters)
"""Projects and export in the window: autosave, reload, recovery from a newer backup, refusing a
corrupt or newer file without touching it, moved images, export through the dialog off the GUI
thread (COCO that pycocotools loads, progress, cancel, a responsive window)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QTimer

sys.path.insert(0, str(Path(__file__).parent))
from edit_helpers import edit_host, edit_window, open_image  # noqa: E402,F401

from vfmstudio.core import commands as cmd  # noqa: E402
from vfmstudio.core.annotations import Annotation, Box, Mask, Polygon  # noqa: E402
from vfmstudio.core.project import backup_path, open_project  # noqa: E402


def test_autosave_writes_the_project_after_the_delay_and_it_reloads_the_same(
    qtbot, edit_window, image_folder
):
    w = edit_window
    open_image(qtbot, w, image_folder)
    lab = w.labelling
    project_file = image_folder / "vfmstudio.json"
    assert not project_file.exists()  # opening a folder writes nothing
    lab.session.autosave.setInterval(300)
    box = lab.controller.add_shape(Box(2, 3, 20, 30))
    lab.controller.add_shape(Polygon.simple([(1, 1), (9, 1), (5, 8)]))
    lab.panel.add_class("spare", "#123456")
    assert w.isWindowModified()
    qtbot.wait(100)
    assert not project_file.exists()  # not before the delay
    qtbot.waitUntil(project_file.exists, timeout=3000)
    qtbot.waitUntil(lambda: not w.isWindowModified(), timeout=1000)
    reloaded = open_project(project_file)
    assert reloaded.labels == lab.session.labels
    assert reloaded.labels.get(box).shape == Box(2, 3, 20, 30)
    assert reloaded.images["img0.png"].id == w.current.id
    # another edit: saved again, the previous file kept as a backup
    lab.session.push(cmd.change_label(lab.session.labels, [box], "spare"))
    qtbot.waitUntil(lambda: not w.isWindowModified(), timeout=3000)
    assert open_project(project_file).labels.get(box).label == "spare"
    assert backup_path(project_file, 1).exists()


def _two_revisions(folder: Path) -> tuple[str, str]:
    """A project whose backup holds a later revision than the file (a save that died half-way)."""
    p = open_project(folder / "vfmstudio.json", create=True)
    key = p.add_image(folder / "img0.png").key
    first = p.labels.add(Annotation(key, "a", Box(1, 1, 5, 5))).id
    p.save()
    older = (folder / "vfmstudio.json").read_bytes()
    second = p.labels.add(Annotation(key, "b", Box(6, 6, 9, 9))).id
    p.save()
    newer = (folder / "vfmstudio.json").read_bytes()
    (folder / "vfmstudio.json").write_bytes(older)
    backup_path(folder / "vfmstudio.json", 1).write_bytes(newer)
    return first, second


def test_a_newer_backup_is_offered_and_recovered_on_open(qtbot, edit_window, image_folder):
    w = edit_window
    first, second = _two_revisions(image_folder)
    asked = []
    w.labelling.session.ask_recovery = lambda question: asked.append(question) or True
    open_image(qtbot, w, image_folder)
    assert len(asked) == 1 and "vfmstudio.json.bak1" in asked[0]
    labels = w.labelling.session.labels
    assert first in labels and second in labels
    assert any("recovered" in t for t in w.messages.texts())


def test_declining_recovery_keeps_the_project_as_it_is(qtbot, edit_window, image_folder):
    w = edit_window
    first, second = _two_revisions(image_folder)
    w.labelling.session.ask_recovery = lambda question: False
    open_image(qtbot, w, image_folder)
    labels = w.labelling.session.labels
    assert first in labels and second not in labels
    assert not w.labelling.session.read_only


def _refused_file_is_untouched(qtbot, w, folder: Path, content: bytes, expected: str) -> None:
    project_file = folder / "vfmstudio.json"
    project_file.write_bytes(content)
    w.labelling.session.ask_recovery = lambda question: False
    open_image(qtbot, w, folder)
    session = w.labelling.session
    assert session.read_only
    errors = w.messages.texts("error")
    assert any(expected in t and "left untouched" in t for t in errors), errors
    assert "file refused" in w.windowTitle()
    w.labelling.controller.add_shape(Box(1, 1, 4, 4))  # work goes on in memory
    assert not session.save()
    qtbot.wait(400)  # longer than the autosave delay
    assert project_file.read_bytes() == content
    session.flush()
    assert project_file.read_bytes() == content
    # Save As is the way out: a new file with the edits, the refused one still untouched.
    assert session.save_as(folder / "recovered.json")
    assert len(open_project(folder / "recovered.json").labels) == 1
    assert project_file.read_bytes() == content and not session.read_only
    # File > Open Project on another file of the folder keeps it (not the folder's vfmstudio.json).
    w.labelling.open_project(folder / "recovered.json")
    assert session.path == folder / "recovered.json" and len(session.labels) == 1


def test_a_corrupt_project_file_is_refused_and_never_overwritten(qtbot, edit_window, image_folder):
    _refused_file_is_untouched(
        qtbot, edit_window, image_folder, b'{"format": "vfmstudio-project", "vers', "not valid JSON"
    )


def test_a_project_from_a_newer_version_is_refused_and_never_overwritten(qtbot, edit_window, image_folder):
    content = json.dumps({"format": "vfmstudio-project", "version": 99, "images": [], "labels": {}}).encode()
    _refused_file_is_untouched(qtbot, edit_window, image_folder, content, "newer vfmstudio")


def test_moved_and_changed_images_are_reported_with_their_annotations_kept(qtbot, edit_window, image_folder):
    p = open_project(image_folder / "vfmstudio.json", create=True)
    k0, k1 = p.add_image(image_folder / "img0.png").key, p.add_image(image_folder / "img1.png").key
    a0 = p.labels.add(Annotation(k0, "a", Box(1, 1, 5, 5))).id
    a1 = p.labels.add(Annotation(k1, "a", Box(1, 1, 5, 5))).id
    p.save()
    (image_folder / "sub").mkdir()
    shutil.move(image_folder / "img0.png", image_folder / "sub" / "img0.png")
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(image_folder / "img1.png")
    w = edit_window
    w.open_paths([image_folder])
    qtbot.waitUntil(lambda: len(w.messages.texts("warning")) >= 2, timeout=5000)
    warnings = " | ".join(w.messages.texts("warning"))
    assert "img0.png: moved to sub/img0.png" in warnings and "img1.png: the file changed" in warnings
    assert a0 in w.labelling.session.labels and a1 in w.labelling.session.labels


def test_export_through_the_dialog_writes_coco_that_loads(qtbot, edit_window, image_folder, tmp_path):
    from pycocotools.coco import COCO

    w = edit_window
    open_image(qtbot, w, image_folder)
    lab = w.labelling
    lab.controller.add_shape(Box(2, 2, 20, 10))
    mask = np.zeros((48, 64), bool)
    mask[20:30, 30:50] = True
    lab.controller.add_shape(Mask.from_array(mask))
    dialog = lab.export_dialog()
    ids = [dialog.format_combo.itemData(i) for i in range(dialog.format_combo.count())]
    assert "coco" in ids and "labelstudio" in ids  # every exporter the plugins registered
    dialog.set_format("coco")
    dialog.form.set_value("mask_format", "rle")
    dialog.out_edit.setText(str(tmp_path / "coco"))
    assert dialog.start() is not None
    qtbot.waitUntil(lambda: dialog.result_status == "done", timeout=10000)
    coco = COCO(str(tmp_path / "coco" / "annotations.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 2 and all(a["iscrowd"] == 0 for a in anns)
    rle = next(a for a in anns if isinstance(a["segmentation"], dict))
    assert np.array_equal(coco.annToMask(rle).astype(bool), mask)
    assert any("exported" in t for t in w.messages.texts())
    assert "export written: kept 1 box, 1 mask" in w.messages.texts()
    dialog.close()


def _big_project(w, folder: Path, n_images: int = 4, masks_per_image: int = 150) -> None:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:240, 0:320]
    lab = w.labelling
    lab.session.autosave.setInterval(60_000)
    new = []
    for i in range(n_images):
        path = folder / f"big{i}.png"
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(path)
        key = lab.session.key_for(path)
        for _ in range(masks_per_image):
            cx, cy, r = rng.uniform(0, 320), rng.uniform(0, 240), rng.uniform(4, 30)
            new.append(Annotation(key, "blob", Mask.from_array((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)))
    assert lab.session.push(cmd.AddAnnotations(new))


def test_window_stays_responsive_while_exporting_and_the_export_can_be_cancelled(
    qtbot, edit_window, image_folder, tmp_path
):
    w = edit_window
    open_image(qtbot, w, image_folder)
    _big_project(w, image_folder)
    dialog = w.labelling.export_dialog()
    dialog.set_format("coco")
    dialog.out_edit.setText(str(tmp_path / "coco"))
    beats_while_running: list[int] = []  # GUI-thread heartbeats handled while the export job ran
    progress: list[int] = []
    dialog.progress.valueChanged.connect(progress.append)

    def beat():
        if dialog.job is not None:
            beats_while_running.append(len(progress))

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(beat)
    timer.start()
    assert dialog.start() is not None
    qtbot.waitUntil(lambda: dialog.result_status == "done", timeout=30000)
    timer.stop()
    # The GUI thread kept handling events during the export, and saw progress before the end
    # (how long it may stall is measured in benchmarks, not asserted here).
    assert beats_while_running and any(0 < v < 1000 for v in progress)
    # Cancel: the job stops and says so.
    dialog.out_edit.setText(str(tmp_path / "coco2"))
    assert dialog.start() is not None
    qtbot.waitUntil(lambda: dialog.progress.value() > 0 or dialog.result_status != "done", timeout=10000)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=10000)
    assert dialog.result_status == "cancelled"
    assert any("export cancelled" in t for t in w.messages.texts())
    dialog.close()


def test_opening_another_folder_saves_the_first_project_and_edits_land_in_the_second(
    qtbot, edit_window, image_folder, tmp_path
):
    w = edit_window
    other = tmp_path / "other"
    shutil.copytree(image_folder, other)
    open_image(qtbot, w, image_folder)
    lab = w.labelling
    lab.session.autosave.setInterval(60_000)
    first = lab.controller.add_shape(Box(1, 1, 5, 5))
    w.open_paths([other])  # the first project is flushed before the second opens
    assert first in open_project(image_folder / "vfmstudio.json").labels
    assert lab.session.path == other / "vfmstudio.json" and len(lab.session.labels) == 0
    w.browser.list.setCurrentRow(1)
    qtbot.waitUntil(lambda: lab.controller.image_path == other / "img1.png", timeout=5000)
    second = lab.controller.add_shape(Box(2, 2, 6, 6))
    assert lab.session.labels.get(second).image == "img1.png"
    assert list(lab.session.project.images) == ["img1.png"]


def test_import_through_the_dialog_is_one_undo_step(qtbot, edit_window, image_folder, tmp_path):
    from vfmstudio.core.exchange import export_project

    # A COCO file of another labelling of the same images.
    src = open_project(image_folder / "source.json", create=True)
    k = src.add_image(image_folder / "img1.png").key
    src.labels.ensure_class("zebra", "#abcdef")
    box = src.labels.add(Annotation(k, "zebra", Box(3, 4, 30, 40)))
    w = edit_window
    export_project(w.host.format("coco"), src, tmp_path / "coco")
    open_image(qtbot, w, image_folder)
    lab = w.labelling
    dialog = lab.import_dialog()
    dialog.set_format("coco")
    dialog.source_edit.setText(str(tmp_path / "coco" / "annotations.json"))
    dialog.form.set_value("image_root", str(image_folder))
    assert dialog.start() is not None
    qtbot.waitUntil(lambda: dialog.result_status == "done", timeout=10000)
    labels = lab.session.labels
    [got] = labels.annotations("img1.png")
    assert got.label == "zebra" and np.allclose(got.shape.xyxy, box.shape.xyxy)
    assert labels.get_class("zebra").color == "#abcdef"
    assert "img1.png" in lab.session.project.images and lab.session.stack.count() == 1
    assert "import read: kept 1 box" in w.messages.texts()
    lab.undo_action.trigger()
    assert len(labels) == 0 and labels.get_class("zebra") is None
    dialog.close()


def test_closing_the_window_writes_unsaved_edits(qtbot, edit_window, image_folder):
    w = edit_window
    open_image(qtbot, w, image_folder)
    w.labelling.session.autosave.setInterval(60_000)
    ann = w.labelling.controller.add_shape(Box(1, 2, 3, 4))
    assert not (image_folder / "vfmstudio.json").exists()
    w.close()
    assert ann in open_project(image_folder / "vfmstudio.json").labels
