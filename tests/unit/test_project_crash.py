"""Crash safety: SIGKILL a process at random moments while it autosaves in a loop (60 times).

Afterwards the project always loads and holds the last state the writer reported saved or the
one after it, never a torn mix; every backup left behind loads and holds an earlier whole state.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

import pytest

from vfmstudio.core.annotations import Annotation, Box
from vfmstudio.core.project import list_backups, open_project

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork() (POSIX)")

KILLS = 60
IMAGE = "img.png"


def _set_state(project, n: int) -> None:
    """State n: a caption naming n and 150..249 boxes whose coordinates depend on n."""
    labels = project.labels
    for a in labels.annotations(IMAGE):
        labels._remove(a.id)
    for i in range(150 + n % 100):
        labels._insert(Annotation(IMAGE, "cat", Box(i, n % 7, i + 1 + n % 5, 10), id=f"{n}-{i}"), None)
    labels.set_caption(IMAGE, f"step {n}")


def _check_state(project) -> int:
    n = int(project.labels.captions[IMAGE].split()[1])
    anns = project.labels.annotations(IMAGE)
    assert len(anns) == 150 + n % 100
    for i, a in enumerate(anns):
        assert a.id == f"{n}-{i}" and a.shape == Box(i, n % 7, i + 1 + n % 5, 10)
    return n


def _writer(path, w: int) -> None:
    """Child process: open the project and save ever newer states, reporting each completed save."""
    code = 3
    try:
        project = open_project(path)
        n = _check_state(project)
        while True:
            n += 1
            _set_state(project, n)
            project.save()
            os.write(w, f"{n}\n".encode())
    except BaseException:  # noqa: BLE001 - a child must never return into pytest
        code = 4
    finally:
        os._exit(code)


def _read_saves(fd: int, count: int) -> bytes:
    """Bytes from the writer's pipe until ``count`` saves are reported (or the writer is gone)."""
    data = b""
    while data.count(b"\n") < count:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def test_sigkill_during_autosave_never_leaves_a_torn_project(tmp_path):
    path = tmp_path / "vfmstudio.json"
    project = open_project(path, create=True)
    _set_state(project, 0)
    project.save()
    rng = random.Random(1234)
    last = 0
    advanced = 0
    for _ in range(KILLS):
        r, w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os.close(r)
            _writer(path, w)
        os.close(w)
        # Wait for 1-3 completed saves (however slow a loaded machine makes them), then kill at a random
        # moment of the saves that follow: progress does not depend on how fast this machine is.
        seen = _read_saves(r, rng.randint(1, 3))
        time.sleep(rng.uniform(0.0, 0.04))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), f"writer ended by itself with {status}"  # it died mid-loop
        with os.fdopen(r, "rb") as fp:
            reported = [int(x) for x in (seen + fp.read()).split()]
        expected_last = reported[-1] if reported else last
        n = _check_state(open_project(path))
        assert n in (expected_last, expected_last + 1), (n, expected_last)
        for backup in list_backups(path):
            assert _check_state(open_project(backup.path)) <= n  # a whole earlier (or the same) state
        advanced += n > last
        last = n
    assert advanced >= KILLS // 3  # the writer really was saving while it was killed
    assert len(list_backups(path)) >= 2  # a kill between rotating and writing .bak1 leaves .bak2 and .bak3
