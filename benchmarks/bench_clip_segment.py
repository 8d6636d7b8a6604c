"""clip.segment: a first run against the interactive reruns the window makes, in one process.

A real-size CLIP ViT-B/16 (openai/clip-vit-base-patch16 shapes, random weights, built locally)
segments a 480x640 image at resolution 448 with sliding 224 px windows. The reference is the cold
run (every window through the model); the reruns are what the window submits when the user edits
the labels, the background threshold or the mode. Prints each time and its ratio to the cold run.

    .venv/bin/python benchmarks/bench_clip_segment.py [--resolution 448] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_clip_classify import build_clip_base  # same real-size CLIP, another patch size
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=448)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median counts")
    args = parser.parse_args()

    from vfmstudio_clip import SEGMENT

    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.core.image import load_image
    from vfmstudio.execution import Services, run_tool

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = str(build_clip_base(root / "clip-b16", patch=16))
        rng = np.random.default_rng(0)
        Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)).resize(
            (640, 480), Image.Resampling.BICUBIC
        ).save(root / "photo.png")
        image = load_image(root / "photo.png")
        models = ByteLRUCache(8 << 30, name="models")
        base = {
            "labels": ("car", "person", "tree", "road", "sky"),
            "mode": "sclip",
            "resolution": args.resolution,
        }
        run_tool(
            SEGMENT,
            [image],
            {**base, "labels": ("warm-up",)},
            model=model,
            services=Services(models=models, features=ByteLRUCache(64 << 20)),
        )  # load the model

        def timed(params, services):
            t0 = time.perf_counter()
            run_tool(SEGMENT, [image], params, model=model, services=services)
            return time.perf_counter() - t0

        cold, label_edit, threshold_edit, mode_switch = [], [], [], []
        for i in range(args.repeat):
            services = Services(models=models, features=ByteLRUCache(2 << 30, name="features"))
            cold.append(timed(base, services))
            label_edit.append(timed({**base, "labels": (*base["labels"], f"bicycle {i}")}, services))
            threshold_edit.append(timed({**base, "background": 0.3}, services))
            mode_switch.append(timed({**base, "mode": "maskclip"}, services))

    from vfmstudio_clip._dense import plan_windows

    plan = plan_windows(480, 640, image_size=224, patch=16, resolution=args.resolution)
    ref = statistics.median(cold)
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"clip.segment, CLIP ViT-B/16 (random weights), 480x640 image at {plan.height}x{plan.width}, "
        f"{len(plan.windows)} windows of 224 px, 5 labels x 7 templates, median of {args.repeat}"
    )
    for name, times in (
        ("cold run (reference)", cold),
        ("label edit", label_edit),
        ("threshold edit", threshold_edit),
        ("mode switch", mode_switch),
    ):
        t = statistics.median(times)
        print(f"  {name:22s} {1000 * t:9.1f} ms   {t / ref:7.4f} of the cold run")


if __name__ == "__main__":
    main()
