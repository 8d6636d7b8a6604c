"""DINOv3 feature extraction overhead: ours (preprocessing included) vs a direct ``DINOv3ViTModel`` forward.

Random weights with the shapes of facebook/dinov3-vits16 / -vitb16 (patch 16, RoPE, 4 registers).
Ours: a 640x640 uint8 photo -> one antialiased bicubic resize -> crop to multiples of 16 -> normalise ->
forward with every hidden state -> CLS, normed patch tokens, per-layer patch and register norms as
numpy (what the feature cache stores). Reference: ``model(pixel_values)`` on the prepared tensor,
nothing else. Same model object, runs interleaved, medians compared, at 448 (784 patches) and 512
(1024 patches). Target: ratio <= 1.05. Wall clock and process CPU time are both shown.

    .venv/bin/python benchmarks/bench_dinov3_extraction.py [--repeat 5] [--models s,b] [--resolutions 448,512]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import transformers
from bench_dinov2_extraction import photo, sync
from vfmstudio_dinov2 import _features

from vfmstudio.ml.devices import resolve_device

SIZES = {  # key -> (name, hidden, heads, layers), as in the hub configs
    "s": ("ViT-S/16", 384, 6, 12),
    "b": ("ViT-B/16", 768, 12, 12),
}


def random_dinov3(hidden: int, heads: int, layers: int) -> transformers.DINOv3ViTModel:
    torch.manual_seed(0)
    config = transformers.DINOv3ViTConfig(
        hidden_size=hidden,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        intermediate_size=4 * hidden,
        patch_size=16,
        num_register_tokens=4,
        layerscale_value=1e-5,
        attn_implementation="sdpa",
    )
    return transformers.DINOv3ViTModel(config).eval()


class Prepared(_features.Extractor):
    """Our extractor around an already built model (the one the reference runs)."""

    patch = 16

    def __init__(self, model: torch.nn.Module, device: str, precision: str):
        self.model, self.device, self.precision = model, device, precision

    encode = _features.DinoExtractor.encode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--models", default="s,b", help="comma-separated: s (ViT-S/16), b (ViT-B/16)")
    parser.add_argument("--resolutions", default="448,512")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    pixels = photo()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, device {device}, {args.precision}; input 640x640"
    )
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print(
        f"{'model':9s} {'res':>4s} {'ours ms':>9s} {'direct ms':>10s} {'ratio':>7s} {'ours cpu':>9s} "
        f"{'direct cpu':>11s} {'cpu ratio':>10s} {'best ratio':>11s}"
    )
    worst = 0.0
    for key in args.models.split(","):
        name, hidden, heads, layers = SIZES[key.strip()]
        extractor = Prepared(None, device, args.precision)
        model = random_dinov3(hidden, heads, layers).to(device=device, dtype=extractor.dtype)
        extractor.model = model
        for resolution in (int(r) for r in args.resolutions.split(",")):
            geometry = _features.plan_geometry(640, 640, resolution, 16)
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
            n = (resolution // 16) ** 2
            assert feats.tokens.shape == (n, hidden) and out.last_hidden_state.shape == (1, 5 + n, hidden)
            ratio = statistics.median(ours) / statistics.median(direct)
            worst = max(worst, ratio)
            print(
                f"{name:9s} {resolution:4d} {statistics.median(ours):9.1f} {statistics.median(direct):10.1f} "
                f"{ratio:7.3f} {statistics.median(ours_cpu):9.1f} {statistics.median(direct_cpu):11.1f} "
                f"{statistics.median(ours_cpu) / statistics.median(direct_cpu):10.3f} "
                f"{min(ours) / min(direct):11.3f}"
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0 if worst <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
