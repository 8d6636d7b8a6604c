"""The window's project session and a second writer: changes saved elsewhere are merged, conflicts
are asked about, the lock file keeps ``vfmstudio import`` from writing underneath the window."""

from __future__ import annotations

import pytest

from vfmstudio.cli import main
from vfmstudio.core import commands as cmd
from vfmstudio.core.annotations import Annotation, Box
from vfmstudio.core.project import open_project
from vfmstudio.core.project_lock import lock_path
from vfmstudio.qt.project_session import ProjectSession
from vfmstudio.testing.sample_project import build_sample_project

_SESSIONS: list[ProjectSession] = []


@pytest.fixture(autouse=True)
def _quiet_teardown():
    yield
    while _SESSIONS:
        _SESSIONS.pop().stack.clear()  # while its session is alive: clearing signals into it


@pytest.fixture
def saved(tmp_path):
    p = open_project(tmp_path, create=True)
    p.labels.add(Annotation("a.png", "cat", Box(1, 1, 3, 3), id="shared"))
    p.save()
    return p.path


def _session(qtbot, path, answer="cancel"):
    asked = []

    def ask(message):
        asked.append(message)
        return answer

    session = ProjectSession(autosave_ms=60_000, ask_conflict=ask)
    messages = []
    session.message.connect(lambda level, text: messages.append((level, text)))
    assert session.open(path)
    _SESSIONS.append(session)
    return session, asked, messages


def _other_writer(path, edit):
    other = open_project(path)
    edit(other.labels)
    other.save()


def test_changes_saved_elsewhere_are_merged_without_asking(qtbot, saved):
    session, asked, messages = _session(qtbot, saved)
    assert session.push(cmd.AddAnnotations([Annotation("a.png", "dog", Box(2, 2, 5, 5), id="mine")]))
    _other_writer(saved, lambda L: L.add(Annotation("a.png", "cat", Box(0, 0, 1, 1), id="theirs")))
    assert session.save() is True and not asked and not session.dirty
    assert {a.id for a in open_project(saved).labels.annotations()} == {"shared", "mine", "theirs"}
    assert "theirs" in session.labels  # shown in the window too
    assert messages[-1][0] == "info" and "1 annotations added" in messages[-1][1]
    session.stack.undo()  # our add is still undoable after the merge
    assert "mine" not in session.labels and "theirs" in session.labels


@pytest.mark.parametrize("answer", ["cancel", "merge", "save_as"])
def test_conflicting_edits_are_asked_about(qtbot, saved, tmp_path, answer):
    target = tmp_path / "copy" / "vfmstudio.json"
    target.parent.mkdir()
    session, asked, messages = _session(qtbot, saved, target if answer == "save_as" else answer)
    session.push(cmd.change_label(session.labels, ["shared"], "dog"))
    _other_writer(saved, lambda L: L._replace(L.get("shared").with_label("bird")))
    theirs = saved.read_bytes()
    result = session.save()
    assert len(asked) == 1 and "changed on disk by another program" in asked[0]
    assert "annotation shared on a.png: changed on both sides" in asked[0]
    if answer == "cancel":
        assert result is False and saved.read_bytes() == theirs and session.dirty
        assert "not saved" in messages[-1][1]
    elif answer == "merge":
        assert result is True and open_project(saved).labels.get("shared").label == "dog"
        assert messages[-1][0] == "warning" and "1 conflicting edits" in messages[-1][1]
    else:
        assert result is True and saved.read_bytes() == theirs
        assert open_project(target).labels.get("shared").label == "dog" and session.path == target


def test_the_window_holds_the_lock_so_import_refuses_until_it_closes(qtbot, tmp_path, capsys, monkeypatch):
    sample = build_sample_project(tmp_path / "sample")
    out = tmp_path / "labelme"
    assert main(["export", str(sample.path), "--format", "labelme", "--out", str(out)]) == 0
    project = tmp_path / "target" / "vfmstudio.json"
    project.parent.mkdir()
    open_project(project, create=True).save()
    session, _, _ = _session(qtbot, project)
    assert lock_path(project).exists()
    monkeypatch.setattr("vfmstudio.commands._common.LOCK_WAIT_S", 0.0)
    capsys.readouterr()
    assert main(["import", str(out), "--format", "labelme", "--into", str(project)]) == 2
    assert "open for writing by vfmstudio window" in capsys.readouterr().err
    session.close()
    assert not lock_path(project).exists()
    assert main(["import", str(out), "--format", "labelme", "--into", str(project)]) == 0


def test_a_new_project_takes_its_lock_with_its_first_save(qtbot, tmp_path):
    session, _, _ = _session(qtbot, tmp_path)
    assert not lock_path(session.path).exists()  # browsing a folder leaves nothing behind
    session.push(cmd.AddAnnotations([Annotation("a.png", "dog", Box(2, 2, 5, 5))]))
    assert session.save()
    assert lock_path(session.path).exists()
    session.close()
    assert not lock_path(session.path).exists()
