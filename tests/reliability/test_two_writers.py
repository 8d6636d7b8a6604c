"""Two real processes saving the same project 40 times each: no annotation of either is lost
without a message (issue 21 item 2)."""

from __future__ import annotations

import json
import subprocess
import sys

from vfmstudio.core.project import open_project

# One writer: keeps its project in memory like the window does, adds one annotation per round and
# saves; a refused save (the other process saved meanwhile) is merged and saved again. It prints
# the ids it saved and every refusal message, as JSON.
WRITER = r"""
import json, os, sys, time
from vfmstudio.core.annotations import Annotation, Box
from vfmstudio.core.project import ProjectChangedOnDisk, open_project
from vfmstudio.core.project_merge import merge_from_disk

path, name, rounds, merge = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "merge"
project = open_project(path, create=True)
open(path + "." + name + ".ready", "w").close()
while not os.path.exists(path + ".go"):  # start both loops together, so that their saves interleave
    time.sleep(0.01)
saved, messages, conflicts = [], [], []
for i in range(rounds):
    ann = Annotation("a.png", name, Box(i, i, i + 1, i + 1), id=f"{name}-{i}")
    project.labels.add(ann)
    while True:
        try:
            project.save()
        except ProjectChangedOnDisk as exc:
            messages.append(str(exc))
            if not merge:
                project.labels._remove(ann.id)  # this writer gives up the round, and has said so
                break
            conflicts += [str(c) for c in merge_from_disk(project).conflicts]
            continue
        saved.append(ann.id)
        break
print(json.dumps({"saved": saved, "messages": messages, "conflicts": conflicts}))
"""


def _wait_for(flag, procs):
    import time

    while not flag.exists():
        assert all(p.poll() is None for p in procs), "a writer died before it started"
        time.sleep(0.01)


def _race(tmp_path, modes):
    path = tmp_path / "vfmstudio.json"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, "40", mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, mode in modes
    ]
    for name, _ in modes:
        _wait_for(tmp_path / f"vfmstudio.json.{name}.ready", procs)
    (tmp_path / "vfmstudio.json.go").touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    return open_project(path), outs


def test_two_merging_writers_lose_nothing(tmp_path):
    final, outs = _race(tmp_path, [("one", "merge"), ("two", "merge")])
    ids = {a.id for a in final.labels.annotations()}
    for out in outs:
        assert len(out["saved"]) == 40 and not out["conflicts"]
    assert ids == {f"{n}-{i}" for n in ("one", "two") for i in range(40)}
    assert final.revision >= 80  # every save of either built on the other's


def test_a_writer_that_does_not_merge_loses_only_what_it_was_told_about(tmp_path):
    final, outs = _race(tmp_path, [("one", "merge"), ("two", "refuse")])
    ids = {a.id for a in final.labels.annotations()}
    two = outs[1]
    # Every round "two" was told it saved is in the file; every other round got a message.
    assert set(two["saved"]) <= ids and len(two["saved"]) + len(two["messages"]) == 40
    assert all("changed on disk by another program" in m for m in two["messages"])
    assert {f"one-{i}" for i in range(40)} <= ids
