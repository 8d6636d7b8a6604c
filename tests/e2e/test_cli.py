"""The command line as a user meets it: exit codes, one-line errors, plugins from entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "vfmstudio-example-plugin"


def vfm(*args, env_extra=None, timeout=120):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "vfmstudio", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    """The example plugin package, really installed (into its own folder) with pip."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # A second third-party plugin whose import fails, also announced through an entry point.
    info = site / "broken_thirdparty-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-thirdparty\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[vfmstudio]\nbroken = broken_thirdparty_mod\n")
    (site / "broken_thirdparty_mod.py").write_text("raise ImportError('this plugin is broken on purpose')\n")
    return site


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(path)
    return path


def _one_line_error(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_missing_image_exits_2_with_one_line(example_site, tmp_path):
    proc = vfm(
        "run", "example.edges", str(tmp_path / "missing.jpg"), env_extra={"PYTHONPATH": str(example_site)}
    )
    assert proc.returncode == 2
    assert "missing.jpg" in _one_line_error(proc)


def test_unknown_tool_and_bad_param_exit_2(example_site, image):
    env = {"PYTHONPATH": str(example_site)}
    proc = vfm("run", "example.edgez", str(image), env_extra=env)
    assert proc.returncode == 2
    assert "did you mean example.edges" in _one_line_error(proc)
    proc = vfm("run", "example.edges", str(image), "--param", "smooth=99", env_extra=env)
    assert proc.returncode == 2
    assert "above the maximum" in _one_line_error(proc)
    proc = vfm("run", "example.edges", str(image), "--param", "nosuch=1", env_extra=env)
    assert proc.returncode == 2 and "no parameter 'nosuch'" in _one_line_error(proc)


def test_debug_shows_the_traceback(example_site, tmp_path):
    proc = vfm(
        "--debug",
        "run",
        "example.edges",
        str(tmp_path / "missing.jpg"),
        env_extra={"PYTHONPATH": str(example_site)},
    )
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr


def test_third_party_plugin_runs_and_broken_one_is_reported(example_site, image, tmp_path):
    env = {"PYTHONPATH": str(example_site)}
    proc = vfm("plugins", "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["example"]["source"] == "entry point"
    assert plugins["example"]["status"] == "loaded" and plugins["example"]["version"] == "0.1.0"
    assert plugins["broken"]["status"] == "failed"
    assert "broken on purpose" in plugins["broken"]["error"]
    builtin = [p for p in plugins.values() if p["source"] == "builtin"]
    assert {p["name"] for p in builtin} == {"dinov2", "clip", "paligemma", "formats", "sam"}

    proc = vfm("tools", "--json", env_extra=env)
    tools = {t["id"]: t for t in json.loads(proc.stdout)}
    assert tools["example.edges"]["params"][0]["name"] == "smooth"

    out = tmp_path / "out"
    proc = vfm(
        "run", "example.edges", str(image), "--param", "smooth=2", "--out", str(out), "--json", env_extra=env
    )
    assert proc.returncode == 0, proc.stderr
    pred = json.loads(proc.stdout)
    assert pred["tool"] == "example.edges" and pred["params"] == {"smooth": 2}
    assert pred["results"][0]["type"] == "heatmap"
    assert (out / "prediction.json").exists()
    overlays = list(out.glob("overlay-*.png"))
    assert len(overlays) == 1 and Image.open(overlays[0]).size == (60, 40)


def test_safe_mode_skips_third_party(example_site):
    proc = vfm("--safe-mode", "plugins", "--json", env_extra={"PYTHONPATH": str(example_site)})
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["example"]["status"] == "skipped"


def test_listing_does_not_import_torch(example_site):
    code = (
        "import sys, io, contextlib\n"
        "import vfmstudio\n"
        "from vfmstudio.cli import main\n"
        "for args in (['plugins', '--json'], ['tools', '--json'], ['models', '--json']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(args) == 0, args\n"
        "heavy = [m for m in ('torch', 'transformers', 'PySide6', 'cv2') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(example_site), "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_models_pull_offline_exits_2_fast(isolated_hub):
    proc = vfm(
        "models", "pull", "facebook/dinov2-small", env_extra={"HF_HUB_CACHE": str(isolated_hub)}, timeout=60
    )
    assert proc.returncode == 2
    line = _one_line_error(proc)
    assert "facebook/dinov2-small" in line and "vfmstudio models pull" in line and str(isolated_hub) in line


def test_no_arguments_opens_the_window_and_help_prints_usage(monkeypatch, capsys):
    # Really no arguments: `vfmstudio` alone is `vfmstudio gui` with no paths (the window is replaced
    # by a recorder, so the test needs no display and no event loop).
    from vfmstudio import cli
    from vfmstudio.qt import app

    opened = []
    monkeypatch.setattr(
        app, "run_gui", lambda paths, safe_mode=False: opened.append((list(paths), safe_mode)) or 0
    )
    assert cli.main([]) == 0
    assert opened == [([], False)]
    proc = vfm("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: vfmstudio")
    for command in ("gui", "run", "batch", "export", "import", "plugins", "tools"):
        assert command in proc.stdout


def test_a_folder_argument_stands_for_its_images(example_site, image, tmp_path):
    env = {"PYTHONPATH": str(example_site)}
    folder = tmp_path / "imgs"
    folder.mkdir()
    proc = vfm("run", "example.edges", str(folder), env_extra=env)
    assert proc.returncode == 2 and "holds no images" in _one_line_error(proc)
    for name in ("b.png", "a.png"):
        (folder / name).write_bytes(image.read_bytes())
    proc = vfm("run", "example.edges", str(folder), env_extra=env)
    assert proc.returncode == 2 and "takes one image, got 2" in _one_line_error(proc)
