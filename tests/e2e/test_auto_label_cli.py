"""``vfmstudio batch --into PROJECT`` and ``vfmstudio review``: predictions kept in the project as
pending, resumable after a kill, equal to a ``batch --out`` run, then accepted or rejected."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_batch import ROOT, make_images, normalized
from vfmstudio.cli import main
from vfmstudio.core.pending import PendingStore
from vfmstudio.core.project import open_project
from vfmstudio.core.review import PREDICTED, REVIEWED
from vfmstudio.session.pending import PendingView

DETECT = ["--tool", "batchfake.detect", "--param", "masks=true"]


def exit_code(argv: list[str]) -> int:
    """What the command line exits with: main's result, or argparse's exit for a bad option."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def run_dir(project: Path) -> Path:
    [run] = PendingStore(project).runs()
    return PendingStore(project).run_dir(run.id)


def test_batch_into_adds_the_images_and_keeps_predictions_pending(fake_site, tmp_path, capsys):
    src = make_images(tmp_path / "images", 7, corrupt=1)
    project = src / "labels.json"
    code = main(["batch", str(src), *DETECT, "--param", "fail_on=img4", "--into", str(project)])
    assert code == 0
    captured = capsys.readouterr()
    assert "broken0.jpg: not added to the project" in captured.err
    assert "vfmstudio review" in captured.out
    p = open_project(project)
    assert sorted(p.images) == sorted(f"img{i}.png" if i % 3 else f"sub/img{i}.png" for i in range(7))
    view = PendingView(p)
    states = view.states()
    assert [k for k, s in states.items() if s != PREDICTED] == ["img4.png"]  # the failing image
    [failure] = PendingStore(project).failures(run_dir(project).name)
    assert failure["rel"] == "img4.png" and "on purpose" in failure["reason"]
    assert p.labels.annotations() == ()  # nothing is a label before review
    assert view.classes("img1.png") <= {"bright", "dark"}

    # the same command again continues the run: only the failed image is tried again
    assert (
        main(["batch", str(src), *DETECT, "--param", "fail_on=img4", "--into", str(project), "--json"]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert (summary["skipped"], summary["done"], summary["failed"]) == (6, 0, 1)


def test_killed_run_into_a_project_continues_to_what_batch_out_writes(fake_site, tmp_path):
    src = make_images(tmp_path / "images", 16)
    common = ["--tool", "batchfake.stats", "--batch-size", "2", "--param", "delay=0.1"]
    whole = tmp_path / "whole"
    assert main(["batch", str(src), *common, "--out", str(whole)]) == 0

    project = src / "p.json"
    cmd = [sys.executable, "-m", "vfmstudio", "batch", str(src), *common, "--into", str(project)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    predictions = lambda: list(src.glob("p.pending/runs/*/predictions/*.json"))  # noqa: E731
    while len(predictions()) < 4 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(predictions())
    assert 4 <= finished < 16, "the run should have been killed midway"
    # the killed run's pending predictions are there on reopening
    assert sum(s == PREDICTED for s in PendingView(open_project(project)).states().values()) >= finished - 1

    assert main(["batch", str(src), *common, "--into", str(project)]) == 0
    out = run_dir(project)
    assert normalized(out) == normalized(whole)
    view = PendingView(open_project(project))
    assert set(view.states().values()) == {PREDICTED}
    assert len(view.keys()) == 16


def test_review_accepts_with_a_score_floor_and_a_class_map(fake_site, tmp_path, capsys):
    src = make_images(tmp_path / "images", 4)
    project = src / "p.json"
    assert main(["batch", str(src), *DETECT, "--into", str(project)]) == 0
    before = PendingView(open_project(project))
    items = [it for k in before.keys() for e in before.entries(k) for it in e.items]
    floor = sorted(it.score for it in items)[len(items) // 2]
    capsys.readouterr()

    code = main(
        ["review", str(project), "--accept", "--min-score", str(floor), "--map", "dark=shadow", "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    kept = [it for it in items if it.score >= floor]
    assert report["accepted"] == len(kept) and report["rejected"] == len(items) - len(kept)
    assert report["states"] == {REVIEWED: 4}
    p = open_project(project)
    anns = p.labels.annotations()
    assert len(anns) == len(kept) == report["annotations"]
    assert {a.label for a in anns} <= {"bright", "shadow"}
    assert all(a.provenance.tool == "batchfake.detect" and a.provenance.score >= floor for a in anns)
    assert p.labels.class_maps == {"batchfake.detect": {"dark": "shadow"}}  # remembered

    # nothing left: a second review changes nothing
    assert main(["review", str(project), "--accept"]) == 0
    assert "0 images reviewed" in capsys.readouterr().out
    assert len(open_project(project).labels.annotations()) == len(kept)


def test_review_reject_and_the_listing(fake_site, tmp_path, capsys):
    src = make_images(tmp_path / "images", 3)
    project = src / "p.json"
    assert main(["batch", str(src), *DETECT, "--into", str(project)]) == 0
    capsys.readouterr()
    assert main(["review", str(project)]) == 0
    listing = capsys.readouterr().out
    assert "3 predicted" in listing and "24 items of batchfake.detect" in listing
    assert main(["review", str(project), "--reject", "--tool", "batchfake.detect"]) == 0
    assert "24 rejected" in capsys.readouterr().out
    p = open_project(project)
    assert p.labels.annotations() == ()
    assert set(PendingView(p).states().values()) == {REVIEWED}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accept", "--tool", "nope.tool"], "no predictions of nope.tool"),
        (["--accept", "--map", "dark"], "--map: 'dark' is not from=to"),
        (["--accept", "--min-score", "2"], "must be between 0 and 1"),
    ],
)
def test_review_errors_are_one_line_and_exit_2(fake_site, tmp_path, capsys, args, message):
    src = make_images(tmp_path / "images", 1)
    project = src / "p.json"
    assert main(["batch", str(src), *DETECT, "--into", str(project)]) == 0
    before = project.read_bytes()
    capsys.readouterr()
    assert exit_code(["review", str(project), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) <= 2
    assert project.read_bytes() == before


def test_review_of_a_missing_project_and_batch_into_a_folder(fake_site, tmp_path, capsys):
    assert exit_code(["review", str(tmp_path / "none.json"), "--accept"]) == 2
    assert "no such project file" in capsys.readouterr().err
    src = make_images(tmp_path / "images", 1)
    assert exit_code(["batch", str(src), *DETECT, "--into", str(src)]) == 2
    assert "is a folder, not a project file" in capsys.readouterr().err
