"""``vfmstudio import`` into a project open for writing elsewhere refuses with exit 2 and one line,
and writes nothing (issue 21 item 2: an import was wiped by the window's next autosave)."""

from __future__ import annotations

import subprocess
import sys

from vfmstudio.cli import main
from vfmstudio.core.project import open_project
from vfmstudio.core.project_lock import lock_path
from vfmstudio.testing.sample_project import build_sample_project

HOLDER = r"""
import sys, time
from vfmstudio.core.project_lock import ProjectLock
ProjectLock(sys.argv[1], "vfmstudio window").acquire()
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def test_import_into_a_project_open_elsewhere_is_refused(tmp_path, capsys, monkeypatch):
    sample = build_sample_project(tmp_path / "sample")
    out = tmp_path / "labelme"
    assert main(["export", str(sample.path), "--format", "labelme", "--out", str(out)]) == 0
    target = tmp_path / "target" / "vfmstudio.json"
    target.parent.mkdir()
    open_project(target, create=True).save()
    before = target.read_bytes()
    monkeypatch.setattr("vfmstudio.commands._common.LOCK_WAIT_S", 0.0)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(["import", str(out), "--format", "labelme", "--into", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "open for writing by vfmstudio window (pid" in err
        assert "nothing was imported" in err
        assert target.read_bytes() == before
    finally:
        holder.communicate("")
    # The holder's death leaves its lock file behind: the next import takes it over.
    assert lock_path(target).exists()
    holder_gone = main(["import", str(out), "--format", "labelme", "--into", str(target)])
    assert holder_gone == 0 and len(open_project(target).labels) == len(sample.labels)
    assert not lock_path(target).exists()
