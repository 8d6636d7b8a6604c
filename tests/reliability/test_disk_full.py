"""A full disk (ENOSPC, simulated by making file writes fail half-way) during a project save or an
export: the previous project file stays whole and readable, and the user is told in one line."""

from __future__ import annotations

import errno
import io
import os

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core import commands as cmd
from vfmstudio.core.annotations import Annotation, Box
from vfmstudio.core.project import backup_path, open_project


class _FullDisk(io.RawIOBase):
    """A writable file that takes a few bytes and then fails like a full disk."""

    def __init__(self, real, allowance: int = 16):
        self.real, self.left = real, allowance

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.left:
            self.real.write(bytes(data[: self.left]))
            self.left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.left -= len(data)
        return self.real.write(data)

    def fileno(self):
        return self.real.fileno()

    def flush(self):
        if not self.real.closed:
            self.real.flush()

    def close(self):
        super().close()
        self.real.close()


@pytest.fixture
def full_disk(monkeypatch):
    """While on, every file opened for writing through os.fdopen / open / Path.write_* fills up."""
    real_fdopen, real_open = os.fdopen, open
    state = {"on": False}

    def fdopen(fd, mode="r", *args, **kwargs):
        fp = real_fdopen(fd, mode, *args, **kwargs)
        return _FullDisk(fp) if state["on"] and "w" in mode else fp

    def open_(file, mode="r", *args, **kwargs):
        if not (state["on"] and ("w" in mode or "a" in mode)):
            return real_open(file, mode, *args, **kwargs)
        if "b" in mode:
            return _FullDisk(real_open(file, mode, *args, **kwargs))
        raw = real_open(file, mode.replace("t", "") + "b")
        return io.TextIOWrapper(
            _FullDisk(raw), encoding=kwargs.get("encoding") or "utf-8", newline=kwargs.get("newline")
        )

    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr("builtins.open", open_)
    monkeypatch.setattr(io, "open", open_)
    return state


@pytest.fixture
def project(tmp_path):
    image = tmp_path / "img.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(image)
    p = open_project(tmp_path / "vfmstudio.json", create=True)
    p.add_image(image)
    cmd.AddAnnotations([Annotation("img.png", "cat", Box(1, 2, 10, 12))]).do(p.labels)
    p.save()
    return p


def _leftovers(folder):
    return [f.name for f in folder.iterdir() if f.name.endswith(".tmp")]


def test_project_save_on_a_full_disk_keeps_the_previous_file(project, full_disk):
    before = project.path.read_bytes()
    revision = project.revision
    cmd.AddAnnotations([Annotation("img.png", "dog", Box(3, 3, 8, 8))]).do(project.labels)
    full_disk["on"] = True
    with pytest.raises(OSError) as info:
        project.save()
    full_disk["on"] = False
    assert info.value.errno == errno.ENOSPC
    assert project.path.read_bytes() == before  # whole and unchanged
    assert len(open_project(project.path).labels) == 1
    assert project.revision == revision and _leftovers(project.root) == []
    # Space freed: the next save goes through and keeps the old file as a backup.
    project.save()
    assert len(open_project(project.path).labels) == 2
    assert backup_path(project.path, 1).read_bytes() == before


def test_window_session_on_a_full_disk_says_so_and_keeps_the_project(qtbot, project, full_disk):
    from vfmstudio.qt.project_session import ProjectSession

    session = ProjectSession(autosave_ms=60_000)
    assert session.open(project.path)
    before = project.path.read_bytes()
    messages = []
    session.message.connect(lambda level, text: messages.append((level, text)))
    assert session.push(cmd.AddAnnotations([Annotation("img.png", "dog", Box(3, 3, 8, 8))]))
    full_disk["on"] = True
    assert session.save() is False
    full_disk["on"] = False
    assert project.path.read_bytes() == before
    ((level, text),) = messages
    assert level == "error" and "could not save vfmstudio.json" in text and "No space left" in text
    assert "\n" not in text and session.dirty  # still marked unsaved, nothing lost in memory
    assert session.save() is True and len(open_project(project.path).labels) == 2


def test_cli_export_on_a_full_disk_is_one_line_and_leaves_the_project(project, full_disk, tmp_path, capsys):
    from vfmstudio.cli import main

    before = project.path.read_bytes()
    full_disk["on"] = True
    try:
        code = main(["export", str(project.path), "--format", "coco", "--out", str(tmp_path / "export")])
    finally:
        full_disk["on"] = False
    _, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err
    assert project.path.read_bytes() == before


def test_cli_run_outputs_on_a_full_disk_is_one_line(tmp_path, capsys, faulty_host, small_png, full_disk):
    from vfmstudio.cli import main

    path = small_png()
    full_disk["on"] = True
    try:
        code = main(["run", "faulty.ok", str(path), "--out", str(tmp_path / "out")])
    finally:
        full_disk["on"] = False
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err


def test_batch_on_a_full_disk_stops_with_one_line(tmp_path, capsys, faulty_host, small_png, full_disk):
    from vfmstudio.cli import main

    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        small_png(f"src/img{i}.png", seed=i)
    out = tmp_path / "out"
    full_disk["on"] = True
    try:
        code = main(["batch", str(src), "--tool", "faulty.ok", "--out", str(out)])
    finally:
        full_disk["on"] = False
    _, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err


def test_window_export_on_a_full_disk_says_so_and_leaves_the_project(qtbot, project, full_disk, tmp_path):
    from vfmstudio._plugin_host import PluginHost
    from vfmstudio.qt.export_dialog import ExportDialog
    from vfmstudio.qt.runner import QtJobRunner

    formats = PluginHost(builtins=("vfmstudio_formats",), entry_points=False).load().formats.values()
    runner = QtJobRunner()
    dialog = ExportDialog(list(formats), project, runner)
    qtbot.addWidget(dialog)
    dialog.set_format("coco")
    dialog.out_edit.setText(str(tmp_path / "export"))
    before = project.path.read_bytes()
    outcome = []
    dialog.finished_export.connect(lambda status, value: outcome.append((status, value)))
    full_disk["on"] = True
    try:
        assert dialog.start() is not None
        qtbot.waitUntil(lambda: bool(outcome), timeout=10000)
    finally:
        full_disk["on"] = False
        runner.shutdown()
    ((status, value),) = outcome
    assert status == "error" and "No space left on device" in str(value) and "\n" not in str(value)
    assert project.path.read_bytes() == before
