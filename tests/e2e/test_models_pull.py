"""`vfmstudio models pull` and `vfmstudio run` against the stand-in hub, in a real subprocess: the
downloaded model lands where `run` finds it, failures are one line with exit 2, and a hub that trickles
one byte a second cannot hang either command (the subprocess timeout is only a hang guard)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from vfmstudio.testing.fake_hub import random_checkpoint

ROOT = Path(__file__).resolve().parents[2]
# Deadlines small enough for a test, through the documented environment variables.
FAST_DEADLINES = {"VFMSTUDIO_HUB_DEADLINE_S": "2", "VFMSTUDIO_HUB_MIN_RATE": "1000000"}


def vfm(fake, tmp_path, *args, env_extra=None):
    env = {**os.environ, **fake.environment(tmp_path / "hf-home"), **(env_extra or {})}
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "vfmstudio", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=ROOT,
    )


def one_line_error(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_pull_downloads_into_the_cache_and_prints_the_folder(fake_hub, tmp_path):
    repo = fake_hub.add_repo("tiny-org/tiny", random_checkpoint())
    proc = vfm(fake_hub, tmp_path, "models", "pull", "tiny-org/tiny")
    assert proc.returncode == 0, proc.stderr
    folder = Path(proc.stdout.strip())
    assert folder == tmp_path / "hf-home" / "hub" / "models--tiny-org--tiny" / "snapshots" / repo.commit
    assert (folder / "model.safetensors").read_bytes() == repo.files["model.safetensors"].data


def test_pull_of_a_gated_model_says_what_to_do(fake_hub, tmp_path):
    fake_hub.add_repo("tiny-org/gated", random_checkpoint(), gated=True, token="hf_x")
    line = one_line_error(vfm(fake_hub, tmp_path, "models", "pull", "tiny-org/gated"))
    assert "gated" in line and "licence" in line and "access token" in line


def test_pull_from_a_trickling_hub_ends_with_one_line(fake_hub, tmp_path):
    fake_hub.add_repo("tiny-org/tiny", random_checkpoint())
    fake_hub.fault, fake_hub.fault_target = "trickle", "all"
    line = one_line_error(
        vfm(fake_hub, tmp_path, "models", "pull", "tiny-org/tiny", env_extra=FAST_DEADLINES)
    )
    assert "download cut" in line and "deadline" in line


def test_run_does_not_hang_on_a_trickling_hub(fake_hub, tmp_path):
    fake_hub.add_repo("tiny-org/tiny", random_checkpoint())
    fake_hub.fault, fake_hub.fault_target = "trickle", "files"
    image = tmp_path / "img.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    proc = vfm(
        fake_hub,
        tmp_path,
        "run",
        "dinov2.pca",
        str(image),
        "--model",
        "tiny-org/tiny",
        "--out",
        str(tmp_path / "out"),
        env_extra=FAST_DEADLINES,
    )
    line = one_line_error(proc)
    assert "download cut" in line and "config.json" in line
