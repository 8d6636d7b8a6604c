"""Every hostile image through ``vfmstudio run`` and ``vfmstudio batch``: exit 0, or exit 2 with one line.

Run in-process (the CLI's ``main``) on the tiny DINOv2 checkpoint, so the whole corpus costs
seconds; a subprocess test elsewhere covers the real entry point.
"""

from __future__ import annotations

import json

import pytest

from vfmstudio.cli import main
from vfmstudio.testing.hostile import CASES, Fails, Loads


@pytest.fixture(scope="module")
def dinov2(tiny_model):
    return str(tiny_model("dinov2"))


@pytest.fixture(autouse=True)
def token_limit(monkeypatch):
    """A lower patch limit, so the 100000x10 strip is too long even one patch high and is refused;
    at the real 16384 it is scaled to fit and costs the tiny model ~12 GB of CPU attention."""
    from vfmstudio_dinov2 import _features

    monkeypatch.setattr(_features, "MAX_TOKENS", 1024)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_run_gives_a_prediction_or_one_error_line(case, hostile_dir, dinov2, capsys, monkeypatch):
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    code, out, err = run_cli(
        capsys,
        "run",
        "dinov2.pca",
        str(case.path(hostile_dir)),
        "--model",
        dinov2,
        "--param",
        "resolution=28",
        "--device",
        "cpu",
        "--json",
    )
    assert "Traceback" not in err
    if case.name == "100000x10":
        # It loads; the tool refuses a strip too long even one patch high, in one line.
        assert code == 2 and err.count("\n") == 1 and "patches" in err
    elif isinstance(case.expect, Loads):
        assert code == 0, err
        prediction = json.loads(out)
        assert prediction["tool"] == "dino.pca"  # run through its former id
    else:
        assert code == 2
        assert err.count("\n") == 1 and err.startswith("error: ")
        # A folder argument stands for the images inside it; this one holds none.
        fragment = "holds no images" if case.name == "directory-named-jpg" else case.expect.fragment
        assert fragment in err


def test_batch_over_the_corpus_finishes_and_lists_every_bad_file(
    hostile_dir, dinov2, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    out_dir = tmp_path / "batch"
    code, out, err = run_cli(
        capsys,
        "batch",
        str(hostile_dir),
        "--tool",
        "dinov2.pca",
        "--model",
        dinov2,
        "--param",
        "resolution=28",
        "--device",
        "cpu",
        "--out",
        str(out_dir),
        "--json",
    )
    assert code == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)
    listed = [c for c in CASES if c.in_folder_listing]
    good = [c for c in listed if isinstance(c.expect, Loads)]
    bad = [c for c in listed if isinstance(c.expect, Fails)]
    # The 100000x10 strip loads but dinov2.pca refuses it (too many patches): a run failure.
    assert summary["done"] == len(good) - 1 and summary["failed"] == len(bad) + 1
    failures = [json.loads(line) for line in (out_dir / "failures.jsonl").read_text().splitlines()]
    by_name = {f["path"].replace("\\", "/").rsplit("/", 1)[-1]: f for f in failures}
    for case in bad:
        record = by_name[case.filename]
        assert case.expect.fragment in record["reason"], record
        assert "\n" not in record["reason"]
    assert "patches" in by_name["wide.png"]["reason"]
