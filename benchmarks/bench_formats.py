"""Label geometry and formats against their usual references, in one process.

- COCO RLE encode/decode: ``vfmstudio.core.rle`` (numpy) vs ``pycocotools.mask`` (C), same masks.
- Mask -> polygons: ``geometry.mask_to_parts`` (numpy pixel-edge tracing + Douglas-Peucker, holes
  assigned) vs ``cv2.findContours(RETR_CCOMP)`` + ``cv2.approxPolyDP`` at the same tolerance.
- Polygon -> mask: ``geometry.rasterize_parts`` vs ``cv2.fillPoly``.
- Project autosave: ``Project.save`` (atomic, backup, fsync) of a mask-heavy project vs writing
  the same compact JSON straight to a file (no temp file, no fsync, no backup).

Masks are 480x640 blobs with holes. Prints each median time and the ratio ours / reference.

    .venv/bin/python benchmarks/bench_formats.py [--masks 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_util

from vfmstudio.core import geometry, rle
from vfmstudio.core.annotations import Annotation, Mask
from vfmstudio.core.project import open_project


def _masks(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640]
    out = []
    for _ in range(n):
        cy, cx, r = rng.integers(120, 360), rng.integers(120, 520), rng.integers(40, 110)
        d = (yy - cy) ** 2 + ((xx - cx) * rng.uniform(0.6, 1.4)) ** 2
        m = (d < r * r) & (d > (r // 3) ** 2)
        m |= (yy - cy - r) ** 2 + (xx - cx) ** 2 < (r // 2) ** 2
        out.append(m)
    return out


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _row(name: str, ours: float, ref: float, unit: str = "ms") -> None:
    scale = 1000 if unit == "ms" else 1
    print(
        f"{name:<34} ours {ours * scale:9.2f} {unit}   reference {ref * scale:9.2f} {unit}   ratio {ours / ref:6.2f}"
    )


def _cv2_polygons(m: np.ndarray, tol: float):
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    return [cv2.approxPolyDP(c, tol, True) for c in contours]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--masks", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    masks = _masks(args.masks)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}; "
        f"{args.masks} masks of 480x640, median of {args.repeat}"
    )

    fortran = [np.asfortranarray(m.astype(np.uint8)) for m in masks]
    ours = _median(lambda: [rle.encode(m) for m in masks], args.repeat)
    ref = _median(lambda: [mask_util.encode(f) for f in fortran], args.repeat)
    _row("RLE encode (per mask)", ours / len(masks), ref / len(masks))
    ours_rles = [rle.encode(m) for m in masks]
    ref_rles = [mask_util.encode(f) for f in fortran]
    assert all(a["counts"].encode() == b["counts"] for a, b in zip(ours_rles, ref_rles))
    ours = _median(lambda: [rle.decode(r) for r in ours_rles], args.repeat)
    ref = _median(lambda: [mask_util.decode(r) for r in ref_rles], args.repeat)
    _row("RLE decode (per mask)", ours / len(masks), ref / len(masks))

    for tol in (0.0, 1.0):
        ours = _median(lambda tol=tol: [geometry.mask_to_parts(m, tol) for m in masks], args.repeat)
        ref = _median(lambda tol=tol: [_cv2_polygons(m, tol) for m in masks], args.repeat)
        _row(f"mask -> polygons tol={tol} (per mask)", ours / len(masks), ref / len(masks))

    parts = [geometry.mask_to_parts(m, 1.0) for m in masks]

    def cv2_fill():
        for p in parts:
            canvas = np.zeros((480, 640), dtype=np.uint8)
            cv2.fillPoly(canvas, [np.round(r).astype(np.int32) for e, hs in p for r in (e, *hs)], 1)

    ours = _median(lambda: [geometry.rasterize_parts(p, 480, 640) for p in parts], args.repeat)
    ref = _median(cv2_fill, args.repeat)
    _row("polygons -> mask (per mask)", ours / len(masks), ref / len(masks))
    exact = [geometry.rasterize_parts(geometry.mask_to_parts(m), 480, 640) for m in masks]
    print(f"{'exact round trip (tol 0)':<34} {all(np.array_equal(a, b) for a, b in zip(exact, masks))}")

    with tempfile.TemporaryDirectory() as tmp:
        project = open_project(Path(tmp) / "vfmstudio.json", create=True)
        project.labels.ensure_class("blob")
        masks_objs = [Mask.from_array(m) for m in masks]
        for i in range(200):  # 200 images x 10 masks
            for j in range(10):
                project.labels._insert(
                    Annotation(f"im{i}.png", "blob", masks_objs[(i + j) % len(masks_objs)]), None
                )
        project.save()  # first save computes every RLE string once
        ours = _median(project.save, args.repeat)

        def plain():
            (Path(tmp) / "plain.json").write_text(json.dumps(project.to_json(), separators=(",", ":")))

        ref = _median(plain, args.repeat)
        _row("autosave 2000 masks (whole file)", ours, ref)


if __name__ == "__main__":
    main()
