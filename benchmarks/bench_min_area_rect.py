"""Masks accepted as rotated boxes: the core's numpy minimum-area rectangle against OpenCV.

- ours: ``core.rotated_rect.mask_min_area_rect`` (outline points, convex hull, every hull edge);
- reference: the usual OpenCV recipe, ``cv2.minAreaRect(cv2.findNonZero(mask))`` (pixel centres),
  and ``cv2.minAreaRect`` on our outline points (the same answer as ours, to time the search alone).

Masks: a turned rectangle and an ellipse on a 12 MP image, and 50 small instance masks on 1 MP.

    python benchmarks/bench_min_area_rect.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import cv2

    from vfmstudio.core.annotations import RotatedBox
    from vfmstudio.core.rotated_rect import mask_min_area_rect, mask_outline_points

    yy, xx = np.mgrid[0:3000, 0:4000]
    big = {
        "turned rectangle 12 MP": RotatedBox(2000, 1500, 2600, 1400, 23).to_mask(3000, 4000),
        "ellipse 12 MP": ((xx - 2000) / 1500) ** 2 + ((yy - 1500) / 1000) ** 2 < 1,
    }
    rng = np.random.default_rng(0)
    small = [
        RotatedBox(*rng.uniform(100, 900, 2), *rng.uniform(10, 120, 2), rng.uniform(-90, 90)).to_mask(
            1000, 1000
        )
        for _ in range(50)
    ]
    print(f"loadavg {os.getloadavg()[0]:.2f}, median of {args.repeat}")
    cases = [(name, [m]) for name, m in big.items()] + [("50 instance masks 1 MP", small)]
    for name, masks in cases:
        ours = timed(lambda masks=masks: [mask_min_area_rect(m) for m in masks], args.repeat)
        opencv = timed(
            lambda masks=masks: [cv2.minAreaRect(cv2.findNonZero(m.astype(np.uint8))) for m in masks],
            args.repeat,
        )
        search = timed(
            lambda masks=masks: [cv2.minAreaRect(mask_outline_points(m).astype(np.float32)) for m in masks],
            args.repeat,
        )
        print(
            f"{name}: ours {ours * 1e3:.1f} ms, cv2 findNonZero+minAreaRect {opencv * 1e3:.1f} ms "
            f"(ours / cv2 = {ours / opencv:.2f}), cv2 on our outline points {search * 1e3:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
