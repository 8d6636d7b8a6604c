"""Run › Run on All Images…: a folder run from the window into the project's pending store.

The fake plugin's ``fake.detect`` records every image it runs on (``DETECTED``) and calls the
``ON_DETECT`` hooks on the inference thread before each run, so a test can press Pause, or stop
the window, at a known image. The review side is simulated by what the store holds.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from conftest import build_window  # noqa: E402

RUN_TIMEOUT_MS = 30_000


@pytest.fixture
def fake():
    import fake as module  # registered by the fake_host fixture

    module.DETECTED.clear()
    module.ON_DETECT.clear()
    yield module
    module.ON_DETECT.clear()


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(8):
        pixels = rng.integers(0, 255, (24 + 2 * i, 32, 3), dtype=np.uint8)
        pixels[: 12 + i, :16] = 250 if i % 2 else 5  # a bright or dark quadrant
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


def names(folder):
    return sorted(p.name for p in folder.glob("*.png"))


def prepare(window, folder, *, fail_on: str = "", batch_size: int = 8):
    window.settings.setValue("auto_label/batch_size", batch_size)
    window.open_paths([folder])
    assert window.tools.select_tool("fake.detect")
    window.tools.form.set_value("fail_on", fail_on)
    asked: list[str] = []
    window.auto_label.confirm = lambda text: asked.append(text) or True
    return asked


def run_and_wait(qtbot, window, start):
    with qtbot.waitSignal(window.auto_label.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert start()
    return blocker.args[0]


def store_of(window):
    from vfmstudio.core.pending import PendingStore

    return PendingStore(window.labelling.session.path)


def test_a_failing_image_is_listed_and_the_others_are_done(qtbot, window, fake, folder):
    asked = prepare(window, folder, fail_on="img3")
    got: list[tuple[str, object]] = []
    window.auto_label.predicted.connect(lambda key, entry: got.append((key, entry)))

    summary = run_and_wait(qtbot, window, window.auto_label.run_on_all)

    assert "on 8 images" in asked[0] and "0 already done" in asked[0]
    assert summary["status"] == "done"
    assert (summary["done"], summary["failed"], summary["skipped"]) == (7, 1, 0)
    assert sorted(fake.DETECTED) == names(folder)  # the failure did not stop the run
    # One predicted per finished image, with the project key and the entry the store indexed.
    assert sorted(k for k, _ in got) == sorted(n for n in names(folder) if n != "img3.png")
    index = store_of(window).load_index()
    assert {k: [e for e in index[k]] for k, _ in got} == {k: [e] for k, e in got}
    assert all(e.tool == "fake.detect" and len(e.items) == 8 for _, e in got)  # 4 boxes + 4 masks
    # Every image is in the project, saved, so the store's paths mean something on reopen.
    from vfmstudio.core.project import open_project

    assert sorted(open_project(window.labelling.session.path).images) == names(folder)
    # The panel counts the failure; clicking it lists the image and the reason.
    panel = window.auto_label.panel
    assert panel.failures.isVisibleTo(window) and panel.failures.text() == "1 failed"
    rows = window.auto_label.show_failures().rows()
    assert len(rows) == 1
    image, stage, reason = rows[0]
    assert image == "img3.png" and stage == "run" and "refusing img3.png on purpose" in reason
    state = json.loads((store_of(window).run_dir(summary["run"]) / "state.json").read_text())
    assert state["status"] == "done" and state["keys"] == names(folder)


def test_run_on_selected_images_runs_only_those(qtbot, window, fake, folder):
    prepare(window, folder)
    window.browser.select_paths([folder / "img1.png", folder / "img6.png"])

    summary = run_and_wait(qtbot, window, window.auto_label.run_on_selected)

    assert sorted(fake.DETECTED) == ["img1.png", "img6.png"]
    assert summary["done"] == 2 and summary["images"] == 2
    assert sorted(store_of(window).load_index()) == ["img1.png", "img6.png"]


def test_pause_stops_after_the_batch_and_resume_does_the_rest_once(qtbot, window, fake, folder):
    prepare(window, folder, batch_size=2)
    auto = window.auto_label
    fake.ON_DETECT.append(lambda n: auto.run.pause() if n == 3 else None)  # the user presses Pause

    paused = run_and_wait(qtbot, window, auto.run_on_all)

    # Paused during the 3rd image, i.e. in the second batch of two: that batch finishes, no more.
    assert paused["status"] == "paused" and paused["done"] == 4
    assert fake.DETECTED == names(folder)[:4]
    assert auto.panel.resume.isVisibleTo(window) and not auto.panel.pause.isVisibleTo(window)
    state = json.loads((store_of(window).run_dir(paused["run"]) / "state.json").read_text())
    assert state["status"] == "paused"

    fake.ON_DETECT.clear()
    finished = run_and_wait(qtbot, window, auto.resume)

    assert finished["run"] == paused["run"]  # same settings, same run
    assert (finished["status"], finished["done"], finished["skipped"]) == ("done", 4, 4)
    assert fake.DETECTED == names(folder)  # every image ran exactly once over both sessions
    assert sorted(store_of(window).load_index()) == names(folder)


def test_finished_images_reach_the_gui_in_batches_not_per_image(qtbot, window, fake, folder, monkeypatch):
    """The worker only queues finished images; the GUI drains them on its timer, emitting
    ``predicted`` for each and redrawing the panel once per drain, never once per image."""
    prepare(window, folder, batch_size=4)
    auto = window.auto_label
    auto.timer.setInterval(3_600_000)  # the test drains by hand instead of every 100 ms
    reached, release = threading.Event(), threading.Event()

    def hold(n):
        if n == 5:
            reached.set()
            release.wait(10)

    fake.ON_DETECT.append(hold)
    redraws = []
    original = auto.panel.show_running
    monkeypatch.setattr(auto.panel, "show_running", lambda *a, **k: (redraws.append(a), original(*a, **k)))
    got = []
    auto.predicted.connect(lambda key, entry: got.append(key))

    with qtbot.waitSignal(auto.run_finished, timeout=RUN_TIMEOUT_MS):
        assert auto.run_on_all()
        qtbot.waitUntil(reached.is_set, timeout=RUN_TIMEOUT_MS)
        assert got == []  # nothing reached the GUI by itself
        assert auto._drain() == 4  # the first batch, in one go
        assert sorted(got) == names(folder)[:4]
        release.set()

    assert sorted(got) == names(folder)  # the rest came with the last drain, before run_finished
    assert len(redraws) == 3  # when it started, the drain by hand and the last drain


def test_a_tool_run_asked_for_meanwhile_waits_for_a_chunk_not_the_folder(qtbot, window, fake, folder):
    """The folder run is queued as jobs of a few batches below user runs: a run the user asks for
    on the inference thread goes between two chunks."""
    prepare(window, folder, batch_size=1)
    auto = window.auto_label
    auto.chunk_batches = 2  # chunks of two images
    reached, release = threading.Event(), threading.Event()

    def hold(n):
        if n == 2:
            reached.set()
            release.wait(10)

    fake.ON_DETECT.append(hold)
    ran_after: list[int] = []
    with qtbot.waitSignal(auto.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert auto.run_on_all()
        qtbot.waitUntil(reached.is_set, timeout=RUN_TIMEOUT_MS)
        window.runner.submit(lambda ctx: ran_after.append(len(fake.DETECTED)), key="user-run")
        release.set()

    assert ran_after == [2]  # after the first chunk, not after the eighth image
    assert blocker.args[0]["status"] == "done" and blocker.args[0]["done"] == 8
    assert fake.DETECTED == names(folder)


def test_resume_after_a_crash_equals_a_batch_run(qtbot, fake_host, fake, folder, tmp_path):
    """Window A stops mid-run (closed while running: its job is cancelled, as by a crash that lets
    nothing else happen); window B opens the same folder, offers the run, resumes it without
    redoing any image A finished, and the store then equals a batch run on a copy of the folder."""
    window_a = build_window(qtbot, fake_host, tmp_path / "a")
    prepare(window_a, folder, batch_size=2)
    reached, release = threading.Event(), threading.Event()

    def hold(n):
        if n == 5:
            reached.set()
            release.wait(10)

    fake.ON_DETECT.append(hold)
    assert window_a.auto_label.run_on_all()
    qtbot.waitUntil(reached.is_set, timeout=RUN_TIMEOUT_MS)
    run_id = window_a.auto_label.run.run
    window_a.runner.cancel_where(lambda job: True)
    release.set()
    window_a.close()  # waits for the inference thread to stop
    store = store_of(window_a)
    done_in_a = {p.stem for p in (store.run_dir(run_id) / "predictions").glob("*.json")}
    assert 4 <= len(done_in_a) < 8
    state = json.loads((store.run_dir(run_id) / "state.json").read_text())
    assert state["status"] in ("running", "interrupted")
    fake.ON_DETECT.clear()
    fake.DETECTED.clear()

    window_b = build_window(qtbot, fake_host, tmp_path / "b")
    window_b.open_paths([folder])
    auto = window_b.auto_label
    assert auto.offered is not None and auto.offered.run == run_id  # offered, no dialog
    assert auto.panel.isVisibleTo(window_b) and auto.panel.resume.isVisibleTo(window_b)
    assert "unfinished run of fake.detect" in auto.panel.text.text()

    summary = run_and_wait(qtbot, window_b, auto.resume)

    assert summary["status"] == "done" and summary["run"] == run_id
    from vfmstudio.engines.sources import image_key

    ran_in_b = {image_key(n) for n in fake.DETECTED}
    assert not ran_in_b & done_in_a  # nothing finished in A ran again
    assert ran_in_b | done_in_a == {image_key(n) for n in names(folder)}
    state = json.loads((store.run_dir(run_id) / "state.json").read_text())
    assert state["status"] == "done"

    # The same tool, model and parameters as a batch run (the engine `vfmstudio batch --into` uses).
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("vfmstudio*", "*.pending"))
    reference = batch_into(window_b, copy)
    ours = predictions(store)
    assert sorted(ours) == sorted(reference) == names(folder)
    for rel, (entry, pred) in ours.items():
        ref_entry, ref_pred = reference[rel]
        assert entry.run == ref_entry.run == run_id  # same settings, same run id
        assert entry.items == ref_entry.items
        assert (pred.tool, pred.model, pred.params, pred.image_ids) == (
            ref_pred.tool,
            ref_pred.model,
            ref_pred.params,
            ref_pred.image_ids,
        )
        assert len(pred.results) == len(ref_pred.results) == 2
        for a, b in zip(pred.results, ref_pred.results, strict=True):
            assert a.equals(b)  # boxes, masks (from the sidecar arrays), scores, labels
    window_b.close()


def batch_into(window, folder):
    """A batch run into a new project on ``folder``, as ``vfmstudio batch FOLDER --into`` plans it."""
    from vfmstudio.core.pending import PendingStore
    from vfmstudio.core.project import Project
    from vfmstudio.engines.into_project import plan_into_project, sink_for
    from vfmstudio.engines.local import run_local
    from vfmstudio.engines.worker import RunSpec, batch_services

    tool = window.host.tool("fake.detect")
    project = Project(folder / "vfmstudio.json")
    for p in sorted(folder.glob("*.png")):
        project.add_image(p)
    spec = RunSpec(tool=tool, params=tool.resolve_params({}), model=tool.default_model, out="")
    plan = plan_into_project(spec, project)
    progress = run_local(plan, sink=sink_for(plan), services=batch_services())
    assert (progress.done, progress.failed) == (8, 0)
    return predictions(PendingStore(project.path))


def predictions(store):
    out = {}
    for rel, entries in store.load_index().items():
        (entry,) = entries
        out[rel] = (entry, store.load_prediction(entry))
    return out


def test_no_tool_or_a_pair_tool_is_refused_with_a_message(qtbot, window, folder):
    window.open_paths([folder])
    window.tools.tree.setCurrentItem(None)
    assert not window.auto_label.run_on_all()
    assert any("choose a tool" in t for t in window.messages.texts("warning"))
    assert window.tools.select_tool("fake.pair")
    assert not window.auto_label.run_on_all()
    assert any("does not take one image" in t for t in window.messages.texts("warning"))
    assert not window.auto_label.busy


def test_the_menu_has_both_actions(window):
    actions = window.menus.run.actions()
    assert window.menus.actions["run_all"] in actions
    assert window.menus.actions["run_selected"] in actions


def test_a_killed_run_is_offered_and_dismiss_forgets_it(qtbot, fake_host, fake, folder, tmp_path):
    window_a = build_window(qtbot, fake_host, tmp_path / "a")
    prepare(window_a, folder, batch_size=2)
    fake.ON_DETECT.append(lambda n: window_a.auto_label.run.pause() if n == 1 else None)
    paused = run_and_wait(qtbot, window_a, window_a.auto_label.run_on_all)
    state_file = store_of(window_a).run_dir(paused["run"]) / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "status": "running"}))  # what a kill mid-run leaves
    window_a.close()

    window_b = build_window(qtbot, fake_host, tmp_path / "b")
    window_b.open_paths([folder])
    auto = window_b.auto_label
    assert auto.offered is not None and auto.offered.status == "running"
    assert auto.panel.text.text() == "unfinished run of fake.detect (running): 2/8 images done"
    auto.dismiss()
    assert not auto.panel.isVisibleTo(window_b) and auto.offered is None
    assert json.loads(state_file.read_text())["status"] == "dismissed"
    assert auto.check_unfinished() is None  # not offered again
    window_b.close()


def test_an_undecodable_file_is_a_read_failure_of_the_run(qtbot, window, fake, folder):
    (folder / "broken.png").write_bytes(b"this is not a png")
    prepare(window, folder)

    summary = run_and_wait(qtbot, window, window.auto_label.run_on_all)

    assert (summary["done"], summary["failed"]) == (8, 1)
    (failure,) = window.auto_label.failures()
    assert failure["rel"] == "broken.png" and failure["stage"] == "read"
    assert "broken.png" in window.labelling.session.project.images  # a project image, as the failure says


def test_no_predicted_for_a_project_no_longer_open(qtbot, window, fake, folder, tmp_path):
    """Keys name images of the run's project: once another folder is open they are not emitted
    (the run itself finishes into its own project's store)."""
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(other / "x.png")
    prepare(window, folder)
    auto = window.auto_label
    reached, release = threading.Event(), threading.Event()
    fake.ON_DETECT.append(lambda n: (reached.set(), release.wait(10)) if n == 1 else None)
    got = []
    auto.predicted.connect(lambda key, entry: got.append(key))

    with qtbot.waitSignal(auto.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert auto.run_on_all()
        qtbot.waitUntil(reached.is_set, timeout=RUN_TIMEOUT_MS)
        window.open_paths([other])
        release.set()

    assert got == [] and blocker.args[0]["done"] == 8
    from vfmstudio.core.pending import PendingStore

    assert len(PendingStore(folder / "vfmstudio.json").load_index()) == 8


def test_cancel_stops_at_the_next_image_and_the_run_can_be_resumed(qtbot, window, fake, folder):
    prepare(window, folder, batch_size=4)
    auto = window.auto_label
    reached, release = threading.Event(), threading.Event()
    fake.ON_DETECT.append(lambda n: (reached.set(), release.wait(10)) if n == 2 else None)

    with qtbot.waitSignal(auto.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert auto.run_on_all()
        qtbot.waitUntil(reached.is_set, timeout=RUN_TIMEOUT_MS)
        auto.panel.cancel.click()
        release.set()

    summary = blocker.args[0]
    assert summary["status"] == "cancelled" and summary["done"] < 4  # not the rest of the batch
    assert len(fake.DETECTED) == 2
    state = json.loads((store_of(window).run_dir(summary["run"]) / "state.json").read_text())
    assert state["status"] == "cancelled"
    assert auto.panel.resume.isVisibleTo(window) and "cancelled at" in auto.panel.text.text()
    fake.ON_DETECT.clear()
    finished = run_and_wait(qtbot, window, lambda: auto.panel.resume.click() or True)
    assert finished["status"] == "done" and finished["skipped"] == summary["done"]
    assert sorted(store_of(window).load_index()) == names(folder)


def test_run_then_review_in_the_window_labels_like_the_command_line(qtbot, window, fake, folder, tmp_path):
    """The whole loop in the window: Run on All Images, the list marks each image predicted as it
    arrives, review mode accepts image after image; the labels equal `vfmstudio review --accept`
    on a copy of the same project and store."""
    from vfmstudio.cli import main
    from vfmstudio.core.project import open_project

    prepare(window, folder)
    run_and_wait(qtbot, window, window.auto_label.run_on_all)
    qtbot.waitUntil(
        lambda: {window.browser.review_state(p) for p in window.browser.paths()} == {"predicted"},
        timeout=5000,
    )
    window.labelling.session.save()
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.lock"))  # the window holds the lock

    review = window.review
    review.set_mode(True)
    review.panel.set_min_score(0.0)
    for _ in names(folder):
        assert review.accept_shown()  # then moves on to the next image still to review
    assert {window.browser.review_state(p) for p in window.browser.paths()} == {"reviewed"}
    window.labelling.session.save()

    assert main(["review", str(copy / "vfmstudio.json"), "--accept"]) == 0

    def labels_of(project_file):
        p = open_project(project_file)
        return sorted(
            (a.image, a.label, json.dumps(a.shape.to_json()), a.provenance.score)
            for a in p.labels.annotations()
        )

    ours = labels_of(folder / "vfmstudio.json")
    assert ours and ours == labels_of(copy / "vfmstudio.json")
