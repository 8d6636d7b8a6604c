"""The CLIP plugin as the host and the command line see it: light registration, templates, labels, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from vfmstudio_clip.labels import read_labels
from vfmstudio_clip.templates import ENSEMBLE7, ENSEMBLE80, prompts_for, resolve_templates

from vfmstudio._plugin_host import PluginHost
from vfmstudio.cli import main
from vfmstudio.core.tools import ParamError


def test_registering_the_tools_imports_neither_torch_nor_transformers():
    code = (
        "import sys\nfrom vfmstudio._plugin_host import PluginHost\n"
        "host = PluginHost(entry_points=False, builtins=('vfmstudio_clip',)).load()\n"
        "print(sorted(host.tools))\n"
        "print([m for m in ('torch', 'transformers', 'PIL') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    tools, heavy = out.stdout.strip().splitlines()
    assert tools == "['clip.classify', 'clip.embed', 'clip.embed-text', 'clip.search', 'clip.segment']"
    assert "torch" not in heavy and "transformers" not in heavy


def test_tools_are_registered_with_models_and_parameters():
    host = PluginHost(entry_points=False, builtins=("vfmstudio_clip",)).load()
    classify = host.tool("clip.classify")
    assert classify.plugin == "clip" and classify.default_model == "openai/clip-vit-base-patch32"
    assert {m.ref for m in classify.models} >= {
        "google/siglip-so400m-patch14-384",
        "openai/clip-vit-large-patch14",
    }
    assert host.tool("clip.segment").default_model == "openai/clip-vit-base-patch16"
    assert host.tool("clip.segment").param("mode").choices == ("patch", "maskclip", "sclip")
    assert classify.resolve_params({"labels": "a, b"}, from_text=True)["labels"] == ("a", "b")
    with pytest.raises(ParamError, match="'labels' is required"):
        classify.resolve_params({})


def test_template_sets():
    assert len(ENSEMBLE80) == 80 == len(set(ENSEMBLE80)) and set(ENSEMBLE7) <= set(ENSEMBLE80)
    assert all(t.count("{}") == 1 for t in ENSEMBLE80)
    assert resolve_templates("single") == ("a photo of a {}.",)
    assert resolve_templates(" a {} | art of {} ") == ("a {}", "art of {}")
    assert prompts_for(("cat", "dog"), ("a {}", "b {}")) == ["a cat", "b cat", "a dog", "b dog"]
    with pytest.raises(ParamError, match="exactly one"):
        resolve_templates("a {} and {}")


def test_labels_from_text_or_file(tmp_path):
    assert read_labels(("cat", " dog ")) == ("cat", "dog")
    f = tmp_path / "labels.txt"
    f.write_text("cat\n# comment\n\nhot dog\n", encoding="utf-8")
    assert read_labels((str(f),)) == ("cat", "hot dog")
    f.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ParamError, match="holds no labels"):
        read_labels((str(f),))


# ---------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-images")
    rng = np.random.default_rng(11)
    paths = []
    for i in range(3):
        path = folder / f"photo{i}.png"
        Image.fromarray((rng.random((50, 64 + 8 * i, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def test_cli_classify_as_in_the_issue(tiny_model, image_files):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vfmstudio",
            "run",
            "clip.classify",
            str(image_files[0]),
            "--model",
            str(tiny_model("clip")),
            "--param",
            "labels=cat,dog,car",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    pred = json.loads(proc.stdout)
    (result,) = pred["results"]
    assert result["type"] == "classification" and sorted(result["labels"]) == ["car", "cat", "dog"]
    assert sum(result["scores"]) == pytest.approx(1.0, abs=1e-5)
    assert pred["tool"] == "clip.classify" and pred["device"] == "cpu"


def test_cli_segment_and_search(tiny_model, image_files, tmp_path, capsys):
    model = str(tiny_model("siglip"))
    out = tmp_path / "seg"
    assert (
        main(
            [
                "run",
                "clip.segment",
                str(image_files[1]),
                "--model",
                model,
                "--param",
                "labels=cat;dog",
                "--param",
                "mode=maskclip",
                "--param",
                "background=0",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    pred = json.loads(capsys.readouterr().out)
    kinds = [r["type"] for r in pred["results"]]
    assert kinds == ["heatmap", "heatmap", "masks"]
    assert (out / "prediction.json").is_file()
    assert (
        main(
            [
                "run",
                "clip.search",
                *map(str, image_files),
                "--model",
                model,
                "--param",
                "query=a red car",
                "--param",
                "top_k=2",
                "--json",
            ]
        )
        == 0
    )
    pred = json.loads(capsys.readouterr().out)
    (ranking,) = pred["results"]
    assert ranking["type"] == "ranking" and len(ranking["image_ids"]) == 2
    assert set(ranking["names"]) <= {p.name for p in image_files}


def test_cli_reports_a_bad_parameter_in_one_line(tiny_model, image_files, capsys):
    code = main(
        [
            "run",
            "clip.classify",
            str(image_files[0]),
            "--model",
            str(tiny_model("clip")),
            "--param",
            "labels=cat",
            "--param",
            "templates=no placeholder",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "templates" in err[0]
