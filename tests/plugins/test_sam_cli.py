"""sam tools from the command line on tiny checkpoints: masks as JSON, bad prompts exit 2 with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vfmstudio.cli import main
from vfmstudio.core.results import Prediction


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("pictures") / "street.png"
    coarse = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((160, 100), Image.BICUBIC).save(path)
    return path


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_segment_from_the_cli_prints_masks_with_scores(tiny_model, picture, tmp_path, family):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vfmstudio",
            "run",
            "sam.segment",
            str(picture),
            "--model",
            str(tiny_model(family)),
            "--param",
            "points=40,30; 90,60",
            "--param",
            "negative=150,5",
            "--param",
            "label=car",
            "--device",
            "cpu",
            "--json",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    prediction = Prediction.from_json(json.loads(proc.stdout))
    (masks,) = prediction.results
    assert masks.kind == "masks" and masks.labels == ("car",) and masks.masks.shape == (1, 100, 160)
    assert masks.scores is not None and len(masks.scores) == 1
    assert (tmp_path / "out" / "prediction.json").is_file()


@pytest.mark.parametrize(
    ("tool", "params", "message"),
    [
        ("sam.segment", ["points=500,20"], "lies outside street.png (160x100)"),
        ("sam.segment", [], "got no prompt"),
        ("sam.segment", ["points=nonsense"], "a point is 'x,y', got 'nonsense'"),
        ("sam.refine", [], "no box to refine"),
        ("sam.text", ["text=bus"], "takes no text prompt"),
    ],
)
def test_bad_prompts_exit_2_with_one_line(tiny_model, picture, capsys, tool, params, message):
    argv = ["run", tool, str(picture), "--model", str(tiny_model("sam")), "--device", "cpu"]
    for p in params:
        argv += ["--param", p]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err and "Traceback" not in err
