"""DINOv2 feature extraction overhead: ours (preprocessing included) vs a direct ``Dinov2Model`` forward.

Ours: a 640x640 uint8 photo -> one antialiased bicubic resize to 448 -> crop -> normalise -> forward
with every hidden state -> CLS, normed patch tokens and per-layer norms as numpy (exactly what the
feature cache stores). Reference: ``model(pixel_values)`` on the already prepared (1, 3, 448, 448)
tensor, nothing else. Same model object, runs interleaved, medians compared. Target: ratio <= 1.05.
Wall-clock and process CPU time are both shown, and the ratio of the fastest runs: on a machine
shared with other work the wall clock swings, interference only ever adds time, and with
``--threads 1`` the CPU time is a steadier measure of the work done.

    .venv/bin/python benchmarks/bench_dinov2_extraction.py [--repeat 7] [--device cpu] [--models s,b] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from vfmstudio_dinov2 import _features

from vfmstudio.ml.devices import resolve_device

ROOT = Path(__file__).resolve().parents[1]
SIZES = {  # name -> (hidden, heads, layers)
    "s": ("ViT-S/14", 384, 6, 12),
    "b": ("ViT-B/14", 768, 12, 12),
}


def random_dinov2(hidden: int, heads: int, layers: int) -> transformers.Dinov2Model:
    torch.manual_seed(0)
    config = transformers.Dinov2Config(
        hidden_size=hidden,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        intermediate_size=4 * hidden,
        patch_size=14,
        image_size=518,
        layer_norm_eps=1e-6,
        attn_implementation="sdpa",
    )
    return transformers.Dinov2Model(config).eval()


class Prepared(_features.Extractor):
    """Our extractor around an already built model (the one the reference runs)."""

    def __init__(self, model: torch.nn.Module, device: str, precision: str):
        self.model, self.device, self.precision = model, device, precision

    encode = _features.Dinov2Extractor.encode


def photo() -> np.ndarray:
    im = Image.open(ROOT / "resources" / "samples" / "astronaut.jpg").convert("RGB")
    return np.asarray(im.resize((640, 640), Image.BICUBIC))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--models", default="s,b", help="comma-separated: s (ViT-S/14), b (ViT-B/14)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    pixels = photo()
    geometry = _features.plan_geometry(640, 640, 448, 14)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, device {device}, {args.precision}; input 640x640 -> 448x448, 1024 tokens"
    )
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print(
        f"{'model':10s} {'ours ms':>9s} {'direct ms':>10s} {'ratio':>7s} {'ours cpu':>9s} {'direct cpu':>11s} "
        f"{'cpu ratio':>10s} {'best ratio':>11s}"
    )
    worst = 0.0
    for key in args.models.split(","):
        name, hidden, heads, layers = SIZES[key.strip()]
        extractor = Prepared(None, device, args.precision)
        model = random_dinov2(hidden, heads, layers).to(device=device, dtype=extractor.dtype)
        extractor.model = model
        prepared = _features.preprocess(pixels, geometry, device, extractor.dtype)
        ours, direct, ours_cpu, direct_cpu = [], [], [], []
        for i in range(args.repeat + 1):  # the first round warms up both paths
            sync(device)
            t, c = time.perf_counter(), time.process_time()
            (feats,) = _features.extract(extractor, [(pixels, geometry, None)])
            sync(device)
            t_ours, c_ours = time.perf_counter() - t, time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                out = model(pixel_values=prepared)
            sync(device)
            t_direct, c_direct = time.perf_counter() - t, time.process_time() - c
            if i:
                ours.append(t_ours * 1000)
                direct.append(t_direct * 1000)
                ours_cpu.append(c_ours * 1000)
                direct_cpu.append(c_direct * 1000)
        assert feats.tokens.shape == (1024, hidden) and out.last_hidden_state.shape == (1, 1025, hidden)
        ratio = statistics.median(ours) / statistics.median(direct)
        cpu_ratio = statistics.median(ours_cpu) / statistics.median(direct_cpu)
        worst = max(worst, ratio)
        print(
            f"{name:10s} {statistics.median(ours):9.1f} {statistics.median(direct):10.1f} {ratio:7.3f} "
            f"{statistics.median(ours_cpu):9.1f} {statistics.median(direct_cpu):11.1f} {cpu_ratio:10.3f} "
            f"{min(ours) / min(direct):11.3f}"
        )
    return 0 if worst <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
