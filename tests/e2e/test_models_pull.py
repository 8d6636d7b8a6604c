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


def test_pull_progress_is_redrawn_in_place_on_a_terminal(monkeypatch):
    import io

    from vfmstudio.commands.models import _StderrProgress
    from vfmstudio.ml.download import DownloadProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    monkeypatch.setattr(sys, "stderr", out)
    bar = _StderrProgress("org/m")
    bar(DownloadProgress("org/m", 3 << 20, 8 << 20, 1 << 20, "model.safetensors", 1, 3))
    bar(DownloadProgress("org/m", 8 << 20, 8 << 20, 2 << 20, "tokenizer.json", 3, 3))
    bar.close()
    text = out.getvalue()
    assert text.count("\r\033[K") == 3 and "\n" not in text  # two redraws, then the line is cleared
    assert "3.0 MiB / 8.0 MiB · 1.0 MiB/s  file 2/3 model.safetensors" in text
    assert "file 3/3 tokenizer.json" in text
