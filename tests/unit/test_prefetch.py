"""Prefetcher: which images it prepares, at what priority, and what moving on cancels (no torch)."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest

from vfmstudio.core.image import LoadedImage
from vfmstudio.core.jobs import JobRunner
from vfmstudio.core.tools import Param, ParamType, ToolSpec
from vfmstudio.execution import Services
from vfmstudio.prefetch import PRIORITY, Prefetcher, PrefetchRequest, env_enabled, paths_ahead

PATHS = [Path(f"/imgs/{i}.png") for i in range(6)]


def _image(path: Path) -> LoadedImage:
    return LoadedImage(
        path=path,
        pixels=np.zeros((4, 4, 3), np.uint8),
        id=path.stem,
        width=4,
        height=4,
        format="PNG",
        metadata={},
    )


@pytest.fixture
def prep_module():
    """A tool module whose prepare records the image ids it saw (and can be held at a gate)."""
    mod = types.ModuleType("fake_prefetch_mod")
    mod.seen, mod.gate, mod.started = [], threading.Event(), threading.Event()
    mod.gate.set()

    def prepare(ctx, images, params):
        mod.started.set()
        for _ in range(1000):  # held at the gate, noticing a cancel like a real prepare between steps
            if mod.gate.wait(0.01):
                break
            ctx.check_cancelled()
        ctx.progress(1.0, "ready")  # checks cancel, like a real prepare
        mod.seen.extend((im.id, params.get("k")) for im in images)

    mod.prepare = prepare
    mod.run = lambda ctx, images, params: []
    sys.modules[mod.__name__] = mod
    yield mod
    sys.modules.pop(mod.__name__, None)


def _tool(prepare=True) -> ToolSpec:
    return ToolSpec(
        id="fake.t",
        title="T",
        run="fake_prefetch_mod:run",
        plugin="fake",
        params=(Param("k", ParamType.INT, default=0),),
        prepare="fake_prefetch_mod:prepare" if prepare else None,
    )


@pytest.fixture
def runner():
    r = JobRunner(thread_name="test-prefetch")
    yield r
    r.shutdown(wait=True, timeout=5)


def _services():
    return Services(models={}, features={})


def test_paths_ahead_is_bounded_and_never_wraps():
    assert paths_ahead(PATHS, PATHS[1], 2) == PATHS[2:4]
    assert paths_ahead(PATHS, PATHS[5], 2) == []
    assert paths_ahead(PATHS, PATHS[4], 3) == [PATHS[5]]
    assert paths_ahead(PATHS, Path("/elsewhere.png"), 2) == []
    assert paths_ahead(PATHS, None, 2) == []


def test_prepares_the_next_images_at_low_priority(prep_module, runner):
    pf = Prefetcher(runner, _image, services=_services(), ahead=2)
    jobs = pf.schedule(PATHS, PATHS[0], PrefetchRequest(_tool(), {"k": 7}))
    assert [j.priority for j in jobs] == [PRIORITY, PRIORITY]
    for job in jobs:
        assert job.result(timeout=10).status == "done"
    assert prep_module.seen == [("1", 7), ("2", 7)]
    assert pf.completed == [PATHS[1], PATHS[2]]


def test_ahead_is_capped_at_three(prep_module, runner):
    pf = Prefetcher(runner, _image, services=_services(), ahead=10)
    assert len(pf.schedule(PATHS, PATHS[0], PrefetchRequest(_tool()))) == 3


def test_nothing_without_a_request_a_prepare_or_when_disabled(prep_module, runner):
    assert Prefetcher(runner, _image).schedule(PATHS, PATHS[0], None) == []
    assert Prefetcher(runner, _image).schedule(PATHS, PATHS[0], PrefetchRequest(_tool(prepare=False))) == []
    off = Prefetcher(runner, _image, enabled=False)
    assert off.schedule(PATHS, PATHS[0], PrefetchRequest(_tool())) == []
    assert runner.pending() == 0


def test_a_user_job_overtakes_queued_prefetches(prep_module, runner):
    order = []
    prep_module.gate.clear()  # hold the first prefetch while the rest queue up
    pf = Prefetcher(runner, _image, services=_services(), ahead=3)
    jobs = pf.schedule(PATHS, PATHS[0], PrefetchRequest(_tool()))
    assert prep_module.started.wait(10)
    user = runner.submit(lambda ctx: order.append(("user", list(prep_module.seen))), key="run:x")
    prep_module.gate.set()
    assert user.result(timeout=10).ok
    for job in jobs:
        job.result(timeout=10)
    # The user job waited for the one prefetch already running, not for the queued ones.
    assert order == [("user", [("1", 0)])]
    assert [s[0] for s in prep_module.seen] == ["1", "2", "3"]


def test_moving_on_keeps_what_is_still_ahead_and_cancels_the_rest(prep_module, runner):
    # Keep the runner busy so every prefetch is still queued when the user moves on (otherwise
    # image 1's prefetch may already be running, whatever the machine's speed).
    running, hold = threading.Event(), threading.Event()
    blocker = runner.submit(lambda ctx: (running.set(), hold.wait(10)), key="blocker")
    assert running.wait(10)
    pf = Prefetcher(runner, _image, services=_services(), ahead=2)
    request = PrefetchRequest(_tool())
    first = pf.schedule(PATHS, PATHS[0], request)  # 1, 2
    second = pf.schedule(PATHS, PATHS[1], request)  # 2, 3: 2 is kept, 1 cancelled
    assert second[0] is first[1]
    assert first[0].result(timeout=10).status == "cancelled"
    hold.set()
    assert blocker.result(timeout=10).ok
    assert [j.result(timeout=10).status for j in second] == ["done", "done"]
    assert [s[0] for s in prep_module.seen] == ["2", "3"]


def test_new_parameters_replace_queued_prefetches(prep_module, runner):
    prep_module.gate.clear()
    pf = Prefetcher(runner, _image, services=_services(), ahead=1)
    old = pf.schedule(PATHS, PATHS[0], PrefetchRequest(_tool(), {"k": 1}))
    new = pf.schedule(PATHS, PATHS[0], PrefetchRequest(_tool(), {"k": 2}))
    assert new[0] is not old[0]
    prep_module.gate.set()
    assert old[0].result(timeout=10).status == "cancelled"
    assert new[0].result(timeout=10).status == "done"
    assert prep_module.seen == [("1", 2)]


def test_a_failing_prepare_is_an_error_result_not_an_exception(runner):
    def bad_load(path):
        raise OSError(f"cannot read {path}")

    pf = Prefetcher(runner, bad_load, services=_services())
    jobs = pf.schedule(PATHS, PATHS[0], PrefetchRequest(_tool()))
    assert {j.result(timeout=10).status for j in jobs} == {"error"}
    assert pf.completed == []


def test_env_switch(monkeypatch):
    monkeypatch.setenv("VFMSTUDIO_PREFETCH", "0")
    assert env_enabled() is False
    monkeypatch.setenv("VFMSTUDIO_PREFETCH", "1")
    assert env_enabled() is True
    monkeypatch.delenv("VFMSTUDIO_PREFETCH")
    assert env_enabled(default=False) is False


def test_a_hung_prefetch_is_abandoned_at_the_time_limit_and_the_users_run_goes_on(prep_module, runner):
    prep_module.gate.clear()  # prepare never returns until released
    limits = iter([0.2])
    pf = Prefetcher(runner, _image, services=_services(), ahead=1, timeout=lambda: next(limits))
    [job] = pf.schedule(PATHS, PATHS[0], PrefetchRequest(_tool()))
    assert job.timeout == 0.2
    result = job.result(timeout=10)
    assert result.status == "error" and result.error.kind == "TimeoutError"
    assert runner.run_sync(lambda ctx: "user run", timeout=10).value == "user run"  # the thread is free again
    prep_module.gate.set()


def test_prefetch_jobs_take_the_run_time_limit_by_default(prep_module, runner, monkeypatch):
    monkeypatch.setenv("VFMSTUDIO_TOOL_TIMEOUT_S", "42")
    assert Prefetcher(runner, _image).timeout_s() == 42
    assert Prefetcher(runner, _image, timeout=0).timeout_s() is None  # 0: no limit, as for runs
    monkeypatch.setenv("VFMSTUDIO_TOOL_TIMEOUT_S", "0")
    assert Prefetcher(runner, _image).timeout_s() is None
    assert Prefetcher(runner, _image, timeout=lambda: None).timeout_s() is None  # the window's "no limit"
