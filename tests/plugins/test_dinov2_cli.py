"""Every dinov2 tool from the command line, on a tiny checkpoint: JSON on stdout, overlay PNGs on disk."""

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
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(90, 120), (100, 100), (80, 140)]):
        coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((w, h), Image.BICUBIC).save(folder / f"photo{i}.png")
        paths.append(folder / f"photo{i}.png")
    mask = np.zeros((90, 120), np.uint8)
    mask[20:70, 30:90] = 255
    Image.fromarray(mask).save(folder / "photo0-mask.png")
    return paths


def test_pca_from_the_cli_prints_json_and_writes_overlays(tiny_model, photos, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vfmstudio",
            "run",
            "dinov2.pca",
            str(photos[0]),
            "--model",
            str(tiny_model("dinov2")),
            "--param",
            "resolution=56",
            "--param",
            "threshold=0.4",
            "--device",
            "cpu",
            "--json",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    prediction = Prediction.from_json(json.loads(proc.stdout))
    # The former id runs the tool; the prediction records its current id.
    assert prediction.tool == "dino.pca" and prediction.device == "cpu" and prediction.precision == "fp32"
    assert [r.kind for r in prediction.results] == ["feature_image", "masks", "heatmap", "histogram"]
    assert prediction.params["threshold"] == 0.4 and prediction.results[3].threshold == 0.4
    overlays = sorted(p.name for p in out.glob("overlay-*.png"))
    assert len(overlays) == 3  # picture, mask and heat map drawn over the photo
    for name in overlays:
        assert Image.open(out / name).size == (120, 90)
    assert (out / "prediction.json").is_file()


@pytest.mark.parametrize(
    ("tool", "images", "params", "kinds"),
    [
        ("dinov2.joint-pca", [0, 1, 2], [], {"feature_image", "masks"}),
        ("dinov2.similarity", [0, 1], ["points=30,40; 100,10"], {"heatmap", "correspondences"}),
        ("dinov2.matches", [0, 1], ["k=5", "foreground=false"], {"correspondences"}),
        ("dinov2.norms", [1], ["layer=2", "k=3"], {"layer_maps", "table", "heatmap", "masks"}),
        ("dinov2.propagate", [0, 1, 2], ["masks=MASK", "floor=-1"], {"masks"}),
    ],
)
def test_every_tool_runs_from_the_cli(tiny_model, photos, tmp_path, capsys, tool, images, params, kinds):
    out = tmp_path / "out"
    params = [p.replace("MASK", str(photos[0].parent / "photo0-mask.png")) for p in params]
    argv = [
        "run",
        tool,
        *(str(photos[i]) for i in images),
        "--model",
        str(tiny_model("dinov2-registers")),
        "--param",
        "resolution=56",
        *(a for p in params for a in ("--param", p)),
        "--device",
        "cpu",
        "--json",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    prediction = Prediction.from_json(json.loads(capsys.readouterr().out))
    assert {r.kind for r in prediction.results} == kinds
    assert list(out.glob("overlay-*.png"))


def test_cli_reports_a_bad_parameter_in_one_line(tiny_model, photos, capsys):
    argv = [
        "run",
        "dinov2.similarity",
        str(photos[0]),
        "--model",
        str(tiny_model("dinov2")),
        "--param",
        "points=500,500",
        "--device",
        "cpu",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "outside" in err and "\n" not in err
