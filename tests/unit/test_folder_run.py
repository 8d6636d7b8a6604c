"""The Qt-free side of the window's folder run: its state file, the survey before it starts, and
FolderRun over the batch engine (pause, cancel, resume)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.core.pending import PendingStore
from vfmstudio.core.project import Project
from vfmstudio.core.results import Detections
from vfmstudio.core.tools import Param, ParamType, ToolSpec
from vfmstudio.engines.worker import RunSpec
from vfmstudio.execution import Services
from vfmstudio.session import folder_run as fr


@pytest.fixture
def tool_module():
    """A one-box detector that records the image names it ran on and calls ``hooks`` first."""
    mod = types.ModuleType("folder_run_tool_mod")
    mod.ran, mod.hooks = [], []

    def run(ctx, images, params):
        image = images[0]
        mod.ran.append(image.path.name)
        for hook in mod.hooks:
            hook(len(mod.ran))
        return [
            Detections(np.array([[0, 0, 4, 4]], np.float32), ("thing",), np.array([0.5]), image_id=image.id)
        ]

    mod.run = run
    sys.modules[mod.__name__] = mod
    yield mod
    sys.modules.pop(mod.__name__, None)


def spec() -> RunSpec:
    tool = ToolSpec(
        id="unit.box",
        title="Box",
        run="folder_run_tool_mod:run",
        plugin="unit",
        params=(Param("k", ParamType.INT, default=1),),
    )
    return RunSpec(tool=tool, params=tool.resolve_params({}), model=None, out="", plugin_readers=False)


def services() -> Services:
    return Services(models={}, features={})


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"im{i}.png")
    p = Project(folder / "vfmstudio.json")
    for f in sorted(folder.glob("*.png")):
        p.add_image(f)
    return p


def test_state_round_trips_and_a_damaged_one_is_ignored(project):
    store = PendingStore(project.path)
    store.run_dir("r1").mkdir(parents=True)
    state = fr.RunState("r1", "unit.box", None, ["a.png", "b.png"], fr.PAUSED, batch_size=4, done=1)
    fr.write_state(store, state)
    again = fr.read_state(store, "r1")
    assert again == state and again.updated
    for damaged in ("{", '{"run": "r1", "tool": "t", "keys": "a.png", "status": "paused"}', "[1]"):
        fr.state_path(store, "r1").write_text(damaged)
        assert fr.read_state(store, "r1") is None
    fr.state_path(store, "r1").write_text(json.dumps({**state.to_json(), "status": "exploded"}))
    assert fr.read_state(store, "r1") is None


def test_unfinished_runs_are_the_stopped_ones(project, tool_module):
    """A run killed with the process still says "running"; it is offered like a paused one.
    Finished, failed (the tool fails on everything) and dismissed runs are not."""
    store = PendingStore(project.path)
    for run, status in (
        ("killed", fr.RUNNING),
        ("paused", fr.PAUSED),
        ("done", fr.DONE),
        ("failed", fr.FAILED),
        ("gone", fr.DISMISSED),
    ):
        store.run_dir(run).mkdir(parents=True)
        (store.run_dir(run) / "manifest.json").write_text(json.dumps({"tool": "unit.box", "params": {}}))
        fr.write_state(store, fr.RunState(run, "unit.box", None, ["im0.png"], status))
    assert {s.run for s in fr.unfinished_runs(store)} == {"killed", "paused"}
    assert fr.set_status(store, "killed", fr.DISMISSED)
    assert [s.run for s in fr.unfinished_runs(store)] == ["paused"]
    assert not fr.set_status(store, "no-such-run", fr.DISMISSED)


def test_pause_stops_after_the_batch_and_the_same_settings_resume(project, tool_module):
    first = fr.FolderRun(spec(), project, list(project.images), batch_size=2, services=services())
    tool_module.hooks.append(lambda n: first.pause() if n == 1 else None)
    with pytest.raises(Cancelled):
        first.execute(CancelToken())
    assert first.status == fr.PAUSED and tool_module.ran == ["im0.png", "im1.png"]
    assert [k for k, _ in first.finished] == ["im0.png", "im1.png"]
    state = fr.read_state(first.store, first.run)
    assert (state.status, state.done, state.keys) == (fr.PAUSED, 2, list(project.images))
    assert fr.predictions_written(first.store, first.run) == 2

    tool_module.hooks.clear()
    second = fr.FolderRun(spec(), project, list(project.images), batch_size=2, services=services())
    summary = second.execute(CancelToken())
    assert second.run == first.run
    assert (summary["status"], summary["done"], summary["skipped"], summary["images"]) == ("done", 4, 2, 6)
    assert tool_module.ran == [f"im{i}.png" for i in range(6)]  # each once
    assert fr.read_state(second.store, second.run).status == fr.DONE


def test_a_cancel_is_the_users_or_an_interruption(project, tool_module):
    token = CancelToken()
    run = fr.FolderRun(spec(), project, list(project.images), batch_size=1, services=services())
    tool_module.hooks.append(lambda n: (run.request_cancel(), token.cancel()) if n == 3 else None)
    with pytest.raises(Cancelled):
        run.execute(token)
    assert run.status == fr.CANCELLED and fr.read_state(run.store, run.run).status == fr.CANCELLED

    token = CancelToken()
    tool_module.hooks[:] = [lambda n: token.cancel() if n == 4 else None]  # the window closed
    again = fr.FolderRun(spec(), project, list(project.images), batch_size=1, services=services())
    with pytest.raises(Cancelled):
        again.execute(token)
    assert again.status == fr.INTERRUPTED


def test_survey_names_keys_new_records_and_what_is_done(project, tool_module, tmp_path):
    folder = project.root
    done_run = fr.FolderRun(spec(), project, ["im0.png", "im1.png"], services=services())
    done_run.execute(CancelToken())
    (folder / "new.png").write_bytes((folder / "im2.png").read_bytes())
    (folder / "broken.png").write_bytes(b"not a png at all")
    outside = tmp_path / "outside.png"
    outside.write_bytes((folder / "im2.png").read_bytes())
    known = {rec.path: rec.key for rec in project.images.values()}
    known["im1.png"] = "custom-key"

    found = fr.survey(
        spec(),
        project.path,
        known,
        [folder / "im0.png", folder / "im1.png", folder / "new.png", folder / "broken.png", outside],
    )

    assert found.run == done_run.run
    assert found.keys == ["im0.png", "custom-key", "new.png", "broken.png"]  # outside the folder: left out
    assert found.done == 2
    new = {r.key: r for r in found.new_records}
    assert set(new) == {"new.png", "broken.png"}
    assert new["new.png"].id and (new["new.png"].width, new["new.png"].height) == (8, 8)
    assert new["broken.png"].id == "" and new["broken.png"].size == len(b"not a png at all")
    assert "new.png" not in project.images  # the survey never touches the live project


def test_a_run_in_chunks_equals_one_in_one_go(project, tool_module):
    run = fr.FolderRun(spec(), project, list(project.images), batch_size=2, services=services())
    chunks = []
    while True:
        summary = run.execute(CancelToken(), max_images=4)
        chunks.append((summary["done"], summary["more"], summary["status"]))
        if not summary["more"]:
            break
    assert chunks == [(4, True, fr.RUNNING), (6, False, fr.DONE)]
    assert tool_module.ran == [f"im{i}.png" for i in range(6)]
    assert fr.read_state(run.store, run.run).status == fr.DONE
    assert [k for k, _ in run.finished] == list(project.images)


def test_a_pause_between_chunks_ends_the_run_there(project, tool_module):
    run = fr.FolderRun(spec(), project, list(project.images), batch_size=2, services=services())
    assert run.execute(CancelToken(), max_images=2)["more"]
    assert not run.halt_if_asked()
    run.pause()  # after one chunk returned and before the next was queued
    assert run.halt_if_asked()
    assert run.status == fr.PAUSED and not run.more
    assert fr.read_state(run.store, run.run).status == fr.PAUSED
