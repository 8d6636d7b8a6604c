"""The "open for writing" lock: a live owner is named and respected, a dead one is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from vfmstudio.core.project_lock import (
    UNREADABLE_STALE_S,
    LockOwner,
    ProjectLock,
    ProjectLockedError,
    lock_path,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_owner(path, **fields):
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": "2026-01-01T00:00:00",
        "proc_start": "",
        "program": "vfmstudio window",
        "token": "t0",
        **fields,
    }
    lock_path(path).write_text(json.dumps(owner))


def test_acquire_release_and_a_second_process_is_refused_with_the_owner_named(tmp_path):
    project = tmp_path / "vfmstudio.json"
    lock = ProjectLock(project, "vfmstudio window")
    lock.acquire()
    assert lock.held and lock.holder().pid == os.getpid()
    code = (
        "import sys; from vfmstudio.core.project_lock import ProjectLock, ProjectLockedError\n"
        f"try: ProjectLock({str(project)!r}).acquire()\n"
        "except ProjectLockedError as e: print(e); sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3
    assert f"open for writing by vfmstudio window (pid {os.getpid()} on {socket.gethostname()}" in proc.stdout
    lock.release()
    assert not lock_path(project).exists() and not lock.held
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_dead_owners_lock_is_taken_over(tmp_path):
    project = tmp_path / "p.json"
    _write_owner(project, pid=_dead_pid())
    lock = ProjectLock(project)
    lock.acquire()
    assert lock.holder().pid == os.getpid()
    assert [p.name for p in tmp_path.iterdir()] == [lock_path(project).name]  # nothing set aside remains


def test_a_reused_pid_is_recognised_by_its_start_time(tmp_path):
    project = tmp_path / "p.json"
    me = LockOwner.current("x")
    if not me.proc_start:
        pytest.fail("this platform has no /proc: the start-time check cannot be tested here")
    _write_owner(project, pid=os.getpid(), proc_start=str(int(me.proc_start) - 1))  # an earlier process
    ProjectLock(project).acquire()
    assert ProjectLock(project).holder().token != "t0"


def test_a_live_owner_on_this_host_and_any_owner_elsewhere_are_respected(tmp_path):
    project = tmp_path / "p.json"
    _write_owner(project, pid=os.getppid(), proc_start="")
    with pytest.raises(ProjectLockedError, match=r"p.json: open for writing by vfmstudio window"):
        ProjectLock(project).acquire()
    _write_owner(project, pid=_dead_pid(), host="another-host.example")  # cannot be checked from here
    with pytest.raises(ProjectLockedError, match="another-host.example"):
        ProjectLock(project).acquire()


def test_an_unreadable_lock_is_stale_only_after_a_while(tmp_path):
    project = tmp_path / "p.json"
    lock_path(project).write_bytes(b"")  # a writer between create and write, or one that died there
    with pytest.raises(ProjectLockedError):
        ProjectLock(project).acquire()
    past = time.time() - UNREADABLE_STALE_S - 1
    os.utime(lock_path(project), (past, past))
    ProjectLock(project).acquire()


def test_release_leaves_a_lock_another_process_took_over(tmp_path):
    project = tmp_path / "p.json"
    lock = ProjectLock(project)
    lock.acquire()
    _write_owner(project, token="theirs")  # e.g. ours was judged stale after a suspend
    lock.release()
    assert json.loads(lock_path(project).read_text())["token"] == "theirs"


def test_takeover_does_not_remove_a_fresh_lock_it_did_not_judge(tmp_path):
    project = tmp_path / "p.json"
    stale = LockOwner(_dead_pid(), socket.gethostname(), "", "", "x", "stale-token")
    _write_owner(project, token="fresh")  # another process took over between our read and our rename
    lock = ProjectLock(project)
    assert lock._take_over(stale)
    assert json.loads(lock_path(project).read_text())["token"] == "fresh"
