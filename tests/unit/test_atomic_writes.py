"""The one atomic writer: permissions follow the umask (issue 13), the replaced file keeps its
mode, and temp files of a killed save are removed by the next save or open (issue 21 item 8)."""

from __future__ import annotations

import os
import stat
import time

import pytest

from vfmstudio.core.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    current_umask,
    remove_stale_temps,
    temp_pattern,
)
from vfmstudio.core.project import STALE_TEMP_S, backup_path, open_project


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_current_umask_reads_without_changing_it():
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert current_umask() == 0o027
    finally:
        os.umask(old)


def test_new_files_get_0666_less_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        assert _mode(tmp_path / "a.json") == 0o664
        os.umask(0o077)
        atomic_write_json(tmp_path / "b.json", {"x": 1})
        assert _mode(tmp_path / "b.json") == 0o600
    finally:
        os.umask(old)


def test_a_replaced_file_keeps_its_mode(tmp_path, umask_022):
    path = tmp_path / "a.txt"
    path.write_bytes(b"old")
    path.chmod(0o640)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o640


def test_project_file_and_backups_honour_the_umask(tmp_path, umask_022):
    project = open_project(tmp_path, create=True)
    project.save()
    project.save()
    assert _mode(project.path) == 0o644
    assert _mode(backup_path(project.path, 1)) == 0o644


def test_json_writer_refuses_nan_and_leaves_no_temp(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "a.json", {"x": float("nan")})
    assert list(tmp_path.iterdir()) == []


def _killed_save_leftover(project_path, name="abc123"):
    tmp = project_path.with_name(f".{project_path.name}.{name}.tmp")
    tmp.write_bytes(b"x" * 4096)  # what mkstemp left when the process died before os.replace
    return tmp


def test_a_save_removes_temps_of_killed_saves_and_nothing_else(tmp_path):
    project = open_project(tmp_path, create=True)
    project.save()
    leftover = _killed_save_leftover(project.path)
    other = tmp_path / ".other.json.abc.tmp"  # another file's temp: not ours to remove
    other.write_bytes(b"y")
    project.save()
    assert not leftover.exists() and other.exists()
    assert [p.name for p in tmp_path.glob(temp_pattern(project.path))] == []


def test_open_removes_only_old_temps(tmp_path):
    project = open_project(tmp_path, create=True)
    project.save()
    old = _killed_save_leftover(project.path, "old")
    past = time.time() - STALE_TEMP_S - 5
    os.utime(old, (past, past))
    young = _killed_save_leftover(project.path, "young")  # may belong to a save running right now
    open_project(project.path)
    assert not old.exists() and young.exists()


def test_temp_pattern_escapes_glob_characters(tmp_path):
    target = tmp_path / "p[1].json"
    tmp = tmp_path / ".p[1].json.zz.tmp"
    tmp.write_bytes(b"x")
    (tmp_path / ".p1.json.zz.tmp").write_bytes(b"y")  # would match an unescaped [1]
    assert remove_stale_temps(target) == [tmp]
