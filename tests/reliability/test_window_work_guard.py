"""The window keeps every edit made before a plugin tool runs, even when the tool ends its process;
with the tool in a worker the window itself goes on. SIGTERM/SIGHUP save before the process ends."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core import commands as cmd
from vfmstudio.core.annotations import Annotation, Box
from vfmstudio.core.project import open_project
from vfmstudio.isolation import ISOLATION_ENV


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (30, 40, 3), np.uint8)).save(folder / "a.png")
    return folder


def _edit_unsaved(qtbot, w, folder):
    w.open_paths([folder])
    w.browser.list.setCurrentRow(0)
    qtbot.waitUntil(lambda: w.current is not None, timeout=5000)
    session = w.labelling.session
    session.autosave.setInterval(3_600_000)  # only an explicit save can write it during the test
    assert session.push(cmd.AddAnnotations([Annotation("a.png", "cat", Box(1, 1, 9, 9), id="before-run")]))
    assert session.dirty and not (folder / "vfmstudio.json").exists()
    return session


@pytest.mark.parametrize(
    "tool_id, fragment",
    [
        ("faulty.osexit", "ended its worker process (exit status 0)"),
        ("faulty.segfault", "ended its worker process (killed by SIGSEGV)"),
    ],
)
def test_edits_before_a_tool_that_ends_its_process_are_kept(
    qtbot, faulty_window, folder, monkeypatch, tool_id, fragment
):
    monkeypatch.setenv(ISOLATION_ENV, "always")  # the faulty plugin as a third-party plugin runs by default
    w = faulty_window
    session = _edit_unsaved(qtbot, w, folder)
    w.submit_tool(w.host.tool(tool_id), {})
    # Saved before the tool started, not by the autosave timer.
    assert "before-run" in open_project(folder / "vfmstudio.json").labels and not session.dirty
    qtbot.waitUntil(lambda: any(fragment in t for t in w.messages.texts("error")), timeout=30000)
    qtbot.waitUntil(lambda: not w.jobs, timeout=10000)
    w.submit_tool(w.host.tool("faulty.ok"), {"scale": 1.0})  # the window goes on
    qtbot.waitUntil(lambda: w.session.prediction(w.current.id, "faulty.ok") is not None, timeout=30000)


def test_an_interactive_rerun_of_a_builtin_does_not_save_every_time(qtbot, faulty_window, folder):
    from vfmstudio.qt.work_guard import save_before_tool

    calls = []
    tool = faulty_window.host.tool("faulty.ok")  # loaded as a built-in by the fixture's host
    save_before_tool(lambda: calls.append("flush"), tool, live=True)
    assert calls == []
    save_before_tool(lambda: calls.append("flush"), tool, live=False)
    assert calls == ["flush"]


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_fatal_signal_saves_and_quits(qtbot, signame):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from vfmstudio.qt.work_guard import install_fatal_signal_saver

    app = QApplication.instance()
    saved = []
    saver = install_fatal_signal_saver(app, lambda: saved.append("saved"))
    try:
        sig = getattr(signal, signame)
        QTimer.singleShot(0, lambda: os.kill(os.getpid(), sig))
        code = app.exec()  # returns once the handler has saved and asked the loop to end
        assert saved == ["saved"] and saver.received == [sig] and code == 128 + sig
    finally:
        saver.uninstall()
