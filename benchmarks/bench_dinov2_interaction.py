"""Interactive DINOv2 operations on cached features, real-size ViT-S/14 (random weights) at 448.

Each image is 448x448, so 32x32 = 1024 patch tokens of 384 channels. Features are extracted once
(not timed); then every operation is the full tool call through ``run_tool`` (parameters, math,
full-size masks and pictures, result validation), as the window reruns it on a slider move or
click. Prints the median and worst of ``--repeat`` runs and the ratio to the budget of issue 9,
and the median CPU time of the process: the math runs on one thread, so on a machine shared with
other work the CPU time shows what the operation costs when it has a core to itself.

    .venv/bin/python benchmarks/bench_dinov2_interaction.py [--repeat 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.image import LoadedImage
from vfmstudio.execution import Services, run_tool

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "resources" / "samples"
SIZE = 448

# name -> (budget in ms, tool, images used, params); issue 9's targets for the CPU
OPERATIONS = {
    "threshold change": (5.0, "dinov2.pca", 1, None),
    "similarity of 1 point vs 8 images": (15.0, "dinov2.similarity", 8, {"points": ((200.0, 180.0),)}),
    "joint PCA over 8 images": (150.0, "dinov2.joint-pca", 8, {}),
    "matches for one pair": (100.0, "dinov2.matches", 2, {}),
}


def vit_s14(dest: Path) -> Path:
    torch.manual_seed(0)
    config = transformers.Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        patch_size=14,
        image_size=518,
        layer_norm_eps=1e-6,
    )
    transformers.Dinov2Model(config).eval().save_pretrained(dest, safe_serialization=True)
    return dest


def square_images(n: int) -> list[LoadedImage]:
    """n distinct 448x448 photos: the samples, centre-cropped, then mirrored and rotated for more."""
    photos = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    out = []
    for i in range(n):
        im = Image.open(photos[i % len(photos)]).convert("RGB")
        side = min(im.size)
        im = im.crop(
            ((im.width - side) // 2, (im.height - side) // 2, (im.width + side) // 2, (im.height + side) // 2)
        ).resize((SIZE, SIZE), Image.BICUBIC)
        pixels = np.asarray(im)
        pixels = np.rot90(pixels, k=i // len(photos)).copy()
        digest = hashlib.sha256(pixels.tobytes()).hexdigest()[:16]
        out.append(LoadedImage(path=None, pixels=pixels, id=digest, width=SIZE, height=SIZE, format="PNG"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    host = PluginHost(entry_points=False).load()
    services = Services.create()
    images = square_images(8)
    with tempfile.TemporaryDirectory() as tmp:
        model = str(vit_s14(Path(tmp) / "vit-s14"))
        t0 = time.perf_counter()
        run_tool(
            host.tool("dinov2.joint-pca"), images, {}, model=model, device=args.device, services=services
        )
        print(f"feature extraction for 8 images (not part of the figures): {time.perf_counter() - t0:.2f} s")
        print(
            f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
            f"device {args.device}"
        )
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        print(
            f"{'operation':36s} {'median ms':>10s} {'worst ms':>10s} {'cpu ms':>8s} {'budget':>8s} "
            f"{'median/budget':>14s}"
        )
        failed = False
        for name, (budget, tool_id, n_images, params) in OPERATIONS.items():
            tool = host.tool(tool_id)
            times, cpu = [], []
            for i in range(args.repeat):
                run_params = (
                    {"threshold": 0.2 + 0.6 * i / max(1, args.repeat - 1)} if params is None else params
                )
                t, c = time.perf_counter(), time.process_time()
                run_tool(
                    tool, images[:n_images], run_params, model=model, device=args.device, services=services
                )
                times.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
            median, worst = statistics.median(times), max(times)
            failed |= median > budget
            print(
                f"{name:36s} {median:10.2f} {worst:10.2f} {statistics.median(cpu):8.2f} {budget:8.0f} "
                f"{median / budget:14.2f}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
