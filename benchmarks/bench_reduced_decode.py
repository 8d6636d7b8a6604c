"""Large images decoded at the reduced size a tool needs (issue 21, ADR 0160) against full decoding.

1. One large JPEG (default 12000x9000, 108 MP) through ``load_image``: full decode vs ``min_side``
   224 and 1024 (JPEG DCT scaling, ``Image.draft``); a PNG of 4000x3000 full vs ``min_side`` 224
   (``Image.reduce`` after a full decode). Each case in a fresh process: best time of ``--repeat``
   and the peak RSS over the imports.
2. A batch of large photos (default 8 x 6000x4500 JPEG) through ``clip.embed`` with real-size CLIP-B/32
   random weights (224 px input) on the local engine: ``RunSpec(reduced_decode=False)`` (full decode,
   the reference) vs the default (decoded down to the 1024 px the tool declares), alternated, best of
   ``--repeat``; the embeddings of the two runs are compared (cosine).

    .venv/bin/python benchmarks/bench_reduced_decode.py [--width 12000 --height 9000] [--images 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

# VmHWM, not ru_maxrss: the latter survives exec, so a child would start at its parent's peak.
CHILD = textwrap.dedent("""
    import json, re, sys, time
    from vfmstudio.core.image import load_image
    def hwm():
        with open("/proc/self/status") as f:
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", f.read()).group(1)) * 1024
    path, side, repeat = sys.argv[1], (None if sys.argv[2] == "full" else int(sys.argv[2])), int(sys.argv[3])
    base = hwm()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        img = load_image(path, min_side=side)
        best = min(best, time.perf_counter() - t0)
        del img
    img = load_image(path, min_side=side)
    peak = hwm()
    print(json.dumps({"seconds": best, "peak": peak - base, "size": [img.width, img.height]}))
""")


def photo(width: int, height: int, seed: int):
    """Smooth colour fields plus sensor-like noise: compresses like a photo, not like flat colour."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (height // 300 + 2, width // 300 + 2, 3), np.uint8))
    big = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC)).copy()
    big += rng.integers(0, 8, (height, width, 1), np.uint8)
    return Image.fromarray(big)


def decode_case(path: Path, side: int | None, repeat: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "full" if side is None else str(side), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_decode(folder: Path, width: int, height: int, repeat: int) -> None:
    jpeg = folder / "large.jpg"
    photo(width, height, 0).save(jpeg, quality=90)
    png = folder / "large.png"
    photo(4000, 3000, 1).save(png, compress_level=6)
    print(f"1. load_image, best of {repeat}, fresh process per case (peak RSS over the imports)")
    for path, sides in ((jpeg, (224, 1024)), (png, (224,))):
        full = decode_case(path, None, repeat)
        print(
            f"   {path.suffix[1:].upper()} {full['size'][0]}x{full['size'][1]} full: "
            f"{full['seconds'] * 1000:.0f} ms, peak {full['peak'] >> 20} MiB"
        )
        for side in sides:
            r = decode_case(path, side, repeat)
            print(
                f"   {'':4} min_side {side}: {r['size'][0]}x{r['size'][1]} in {r['seconds'] * 1000:.0f} ms, "
                f"peak {r['peak'] >> 20} MiB -> {full['seconds'] / r['seconds']:.1f}x faster, "
                f"{full['peak'] / max(r['peak'], 1):.1f}x less memory"
            )


def part_batch(folder: Path, n: int, width: int, height: int, repeat: int) -> None:
    from bench_clip_classify import build_clip_base
    from vfmstudio_clip import EMBED

    from vfmstudio.engines.job import plan_run
    from vfmstudio.engines.local import run_local
    from vfmstudio.engines.outputs import iter_predictions
    from vfmstudio.engines.worker import RunSpec, batch_services

    photos = folder / "photos"
    photos.mkdir()
    for i in range(n):
        photo(width, height, 10 + i).save(photos / f"p{i:02d}.jpg", quality=90)
    model = str(build_clip_base(folder / "clip-b32"))
    params = EMBED.resolve_params({"batch_size": 8})
    services = batch_services()  # one model cache for both: the model loads once, before timing
    best: dict[bool, float] = {False: float("inf"), True: float("inf")}
    vectors: dict[bool, dict[str, np.ndarray]] = {}
    run = 0
    for attempt in range(repeat + 1):  # the first round (model load, warm-up) is not counted
        for reduced in (False, True):
            run += 1
            spec = RunSpec(
                tool=EMBED, params=params, model=model, out=str(folder / f"out{run}"), device="cpu",
                plugin_readers=False, reduced_decode=reduced,
            )  # fmt: skip
            services.features.clear()  # every measured run computes its embeddings
            t0 = time.perf_counter()
            progress = run_local(plan_run(spec, str(photos), batch_size=8), services=services)
            seconds = time.perf_counter() - t0
            assert progress.done == n, progress
            if attempt:
                best[reduced] = min(best[reduced], seconds)
            vectors[reduced] = {rec["key"]: p.results[0].vector for rec, p in iter_predictions(spec.out)}
    cos = min(float(np.dot(vectors[False][k], vectors[True][k])) for k in vectors[False])
    print(f"2. batch of {n} JPEG {width}x{height} through clip.embed (CLIP-B/32 shapes, random weights, CPU)")
    print(f"   full decode: {best[False]:.2f} s ({n / best[False]:.2f} images/s)")
    print(f"   reduced (min_side 1024): {best[True]:.2f} s ({n / best[True]:.2f} images/s)")
    print(
        f"   ratio full / reduced: {best[False] / best[True]:.2f}x; lowest cosine between the two: {cos:.6f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=12000)
    ap.add_argument("--height", type=int, default=9000)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--batch-width", type=int, default=6000)
    ap.add_argument("--batch-height", type=int, default=4500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--skip-decode", action="store_true")
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, loadavg {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_decode:
            part_decode(Path(tmp), args.width, args.height, args.repeat)
        if not args.skip_batch:
            part_batch(Path(tmp), args.images, args.batch_width, args.batch_height, args.repeat)
    print(f"loadavg at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
