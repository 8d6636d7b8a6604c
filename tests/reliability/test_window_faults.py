"""The window (pytest-qt, offscreen) facing hostile images, faulty plugins, a hung tool past its time
limit and a simulated GPU out-of-memory: messages, never a crash or a hang, and it stays usable."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from vfmstudio.testing.hostile import CASES, Fails, Loads


def wait_idle(qtbot, window, timeout=10000):
    qtbot.waitUntil(lambda: not window.jobs and window.runner.runner.pending() == 0, timeout=timeout)


def run_ok(qtbot, w, scale=1.0):
    tool = w.host.tool("faulty.ok")
    w.submit_tool(tool, {"scale": scale})
    wait_idle(qtbot, w)
    assert w.session.prediction(w.current.id, "faulty.ok").params["scale"] == scale


def test_opening_the_hostile_folder_shows_each_image_or_a_message(qtbot, faulty_window, hostile_dir):
    w = faulty_window
    assert w.open_paths([hostile_dir]) == sum(c.in_folder_listing for c in CASES)
    by_name = {c.filename: c for c in CASES}
    for row, path in enumerate(w.browser.paths()):
        case = by_name[path.relative_to(hostile_dir).as_posix()]
        w.browser.list.setCurrentRow(row)
        if isinstance(case.expect, Loads):
            qtbot.waitUntil(lambda p=path: w.current is not None and w.current.path == p, timeout=5000)
            assert (w.current.width, w.current.height) == (case.expect.width, case.expect.height)
        else:
            assert isinstance(case.expect, Fails)
            qtbot.waitUntil(lambda p=path: any(p.name in t for t in w.messages.texts("error")), timeout=5000)
            text = next(t for t in w.messages.texts("error") if path.name in t)
            assert case.expect.fragment in text and "\n" not in text
            qtbot.waitUntil(lambda: w.current is None, timeout=5000)
    # Thumbnails of the readable ones arrive too; the unreadable ones do not stop them.
    good = [
        p
        for p in w.browser.paths()
        if isinstance(by_name[p.relative_to(hostile_dir).as_posix()].expect, Loads)
    ]
    qtbot.waitUntil(lambda: all(w.browser.has_thumbnail(p) for p in good), timeout=15000)
    w.browser.list.setCurrentRow(w.browser.paths().index(hostile_dir / "plain.png"))
    qtbot.waitUntil(lambda: w.current is not None and w.current.path.name == "plain.png", timeout=5000)
    run_ok(qtbot, w)


def test_opening_a_symlink_loop_or_a_folder_named_like_an_image(qtbot, faulty_window, hostile_dir):
    w = faulty_window
    assert w.open_paths([hostile_dir / "loop.jpg"]) == 0
    assert any("loop.jpg" in t for t in w.messages.texts("error"))
    assert w.open_paths([hostile_dir / "folder.jpg"]) == 0
    assert any("no images found" in t for t in w.messages.texts("warning"))


@pytest.fixture
def one_image(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (30, 40, 3), np.uint8)).save(folder / "a.png")
    return folder


def _open(qtbot, w, folder):
    w.open_paths([folder])
    w.browser.list.setCurrentRow(0)
    qtbot.waitUntil(lambda: w.current is not None, timeout=5000)


@pytest.mark.parametrize(
    ("tool_id", "fragment"),
    [
        ("faulty.raises", "the plugin tripped over its own feet"),
        ("faulty.nan", "NaN"),
        ("faulty.shape", "do not match image"),
        ("faulty.notresult", "expected a list of results"),
        ("faulty.missing", "cannot load"),
    ],
)
def test_a_faulty_tool_is_a_message_and_the_window_goes_on(
    qtbot, faulty_window, one_image, tool_id, fragment
):
    w = faulty_window
    _open(qtbot, w, one_image)
    w.submit_tool(w.host.tool(tool_id), {})
    qtbot.waitUntil(lambda: any(fragment in t for t in w.messages.texts("error")), timeout=5000)
    wait_idle(qtbot, w)
    run_ok(qtbot, w)


def test_a_hung_tool_is_abandoned_after_the_window_time_limit(qtbot, faulty_window, one_image):
    w = faulty_window
    w.settings.setValue("run/timeout_s", 0.5)
    assert w.tool_timeout_s() == 0.5
    _open(qtbot, w, one_image)
    w.submit_tool(w.host.tool("faulty.hangs"), {})
    qtbot.waitUntil(
        lambda: any("did not finish within 0.5 s" in t for t in w.messages.texts("error")), timeout=5000
    )
    run_ok(qtbot, w, scale=2.0)  # a fresh inference thread took over the queue


def test_window_time_limit_setting_values(faulty_window, monkeypatch):
    w = faulty_window
    assert any(a.text() == "&Time Limit…" for a in w.findChildren(type(w.menuBar().actions()[0])))
    w.set_tool_timeout(30)
    assert w.tool_timeout_s() == 30.0
    with pytest.raises(ValueError):
        w.set_tool_timeout(-5)
    w.settings.setValue("run/timeout_s", 0)
    assert w.tool_timeout_s() is None  # 0: no limit
    w.settings.setValue("run/timeout_s", "later")
    assert w.tool_timeout_s() == 900.0  # a bad setting falls back to the default
    w.settings.remove("run/timeout_s")
    monkeypatch.setenv("VFMSTUDIO_TOOL_TIMEOUT_S", "12")
    assert w.tool_timeout_s() == 12.0


def test_gpu_out_of_memory_in_the_window_suggests_a_remedy_and_the_next_run_works(
    qtbot, faulty_window, one_image, tiny_model, monkeypatch
):
    import torch
    import transformers

    state = {"oom": True}
    original = transformers.Dinov2Model.forward

    def forward(self, *args, **kwargs):
        if state["oom"]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Dinov2Model, "forward", forward)
    w = faulty_window
    _open(qtbot, w, one_image)
    tool, model = w.host.tool("dinov2.pca"), str(tiny_model("dinov2"))
    w.submit_tool(tool, {"resolution": 28}, model=model)
    qtbot.waitUntil(lambda: any("smaller resolution" in t for t in w.messages.texts("error")), timeout=30000)
    text = next(t for t in w.messages.texts("error") if "smaller resolution" in t)
    assert "precision" in text and "\n" not in text
    wait_idle(qtbot, w)
    state["oom"] = False
    w.submit_tool(tool, {"resolution": 28}, model=model)
    wait_idle(qtbot, w, timeout=30000)
    assert w.session.has_run(tool.id, w.current.id)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_never_blocks_a_thumbnail_thread(hostile_dir):
    """Opening a FIFO for reading blocks until a writer appears: a thumbnail thread stuck there would
    also keep the application from exiting (the thread pool waits for its threads)."""
    import os
    import threading

    from vfmstudio.qt.thumbnails import make_thumbnail

    fifo = hostile_dir / "pipe.jpg"
    outcome = {}

    def thumb():
        try:
            make_thumbnail(fifo)
        except Exception as exc:  # noqa: BLE001 - any refusal is fine, blocking is not
            outcome["error"] = exc

    t = threading.Thread(target=thumb, daemon=True)
    t.start()
    t.join(2)
    blocked = t.is_alive()
    if blocked:  # release the reader so the thread can end
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(2)
    assert not blocked and "not a regular file" in str(outcome.get("error"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_opening_a_named_pipe_explicitly_is_a_message(qtbot, faulty_window, hostile_dir):
    w = faulty_window
    assert w.open_paths([hostile_dir / "pipe.jpg"]) == 1
    w.browser.list.setCurrentRow(0)
    qtbot.waitUntil(lambda: any("not a regular file" in t for t in w.messages.texts("error")), timeout=5000)


@pytest.mark.parametrize("safe_mode", [False, True])
def test_a_broken_third_party_plugin_in_the_window_and_safe_mode(qtbot, tmp_path, monkeypatch, safe_mode):
    """Normal start: the broken plugin is a named error message and the built-in tools are there.
    Safe mode: it is never imported."""
    from PySide6.QtCore import QSettings

    from vfmstudio import _plugin_host
    from vfmstudio.qt.main_window import MainWindow

    imported = []

    class BrokenEntryPoint:
        name, value, group, dist = "thirdparty", "thirdparty_plugin:plugin", "vfmstudio", None

        def load(self):
            imported.append(self.name)
            raise ImportError("No module named 'thirdparty_plugin'")

    monkeypatch.setattr(_plugin_host, "_entry_points", lambda: [BrokenEntryPoint()])
    monkeypatch.setattr(_plugin_host, "_HOST", None)
    monkeypatch.delenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(safe_mode=safe_mode, settings=settings)
    qtbot.addWidget(w)
    try:
        qtbot.waitUntil(lambda: w.tools.tree.topLevelItemCount() > 0, timeout=10000)
        tool_ids = set(w.host.tools)
        assert {"dino.pca", "clip.classify"} <= tool_ids
        errors = [t for t in w.messages.texts("error") if "thirdparty" in t]
        if safe_mode:
            assert imported == [] and errors == []
        else:
            assert imported == ["thirdparty"]
            assert errors and "thirdparty failed to load" in errors[0] and "thirdparty_plugin" in errors[0]
    finally:
        w.close()
        _plugin_host.reset_host()
