"""torch.compile of the encoder (``VFMSTUDIO_TORCH_COMPILE=1``): warm-up cost and steady-state speed vs eager.

Two copies of one random-weight DINOv2 (real ViT-S/14 shapes): one eager, one wrapped by
``vfmstudio.ml.compiling.compile_encoders`` (what ``load_pretrained`` does when the setting is on).
Both run our extraction (``_features.extract``: preprocessing, forward with all hidden states,
numpy out) on the same photos. Prints the first-call (compile) time, the medians, the ratio
compiled / eager, how many calls the warm-up takes to pay back, and the largest token difference.

    .venv/bin/python benchmarks/bench_compile.py [--resolution 224] [--repeat 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_bench import MODELS, build_dinov2, photos, sync  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--model", default="dinov2-s", choices=[m for m in MODELS if m.startswith("dinov2")])
    args = ap.parse_args(argv)

    from vfmstudio_dinov2 import _features

    from vfmstudio.ml.compiling import compile_encoders
    from vfmstudio.ml.devices import resolve_device, torch_dtype

    device = resolve_device(args.device)
    arch = MODELS[args.model]
    dtype = torch_dtype(args.precision)
    eager = build_dinov2(arch, device, dtype)
    compiled = copy.deepcopy(eager)
    compile_encoders(compiled)

    def extractor(model):
        ex = _features.Extractor()
        ex.device, ex.precision, ex.patch, ex.model = device, args.precision, arch.patch, model
        ex.encode = types.MethodType(_features.Dinov2Extractor.encode, ex)
        return ex

    ours_eager, ours_compiled = extractor(eager), extractor(compiled)
    images = photos(args.repeat + 2)
    geometry = _features.plan_geometry(480, 640, args.resolution, arch.patch)
    tokens = geometry.grid[0] * geometry.grid[1]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, device {device}, {args.precision}; {args.model} at {args.resolution} "
        f"({tokens} tokens); load average {os.getloadavg()[0]:.1f}"
    )

    def run(ex, pixels):
        sync(device)
        t = time.perf_counter()
        (feats,) = _features.extract(ex, [(pixels, geometry, None)])
        sync(device)
        return time.perf_counter() - t, feats

    t_first_eager, _ = run(ours_eager, images[0])
    t_first_compiled, _ = run(ours_compiled, images[0])
    eager_t, compiled_t, diff = [], [], 0.0
    for pixels in images[1:]:  # interleaved, so load swings hit both
        te, fe = run(ours_eager, pixels)
        tc, fc = run(ours_compiled, pixels)
        eager_t.append(te)
        compiled_t.append(tc)
        diff = max(diff, float(np.abs(fe.tokens - fc.tokens).max()))
    me, mc = statistics.median(eager_t), statistics.median(compiled_t)
    warmup = t_first_compiled - mc
    saved = me - mc
    payback = f"{warmup / saved:.0f} calls" if saved > 0 else "never (compiled is not faster)"
    print(
        f"first call: eager {t_first_eager * 1e3:.0f} ms, compiled {t_first_compiled:.1f} s "
        f"(compile warm-up {warmup:.1f} s)"
    )
    print(
        f"steady state (median of {len(eager_t)}): eager {me * 1e3:.1f} ms, compiled {mc * 1e3:.1f} ms, "
        f"ratio compiled/eager {mc / me:.3f}; warm-up paid back after {payback}"
    )
    print(f"largest token difference compiled vs eager: {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
