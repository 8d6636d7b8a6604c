"""Dataset imports at size, in one process.

- COCO: ``import_dataset(coco)`` of N annotations (half polygons, half boxes, on N/50 images) vs
  ``pycocotools.coco.COCO`` loading and indexing the same file (the reference reader; it builds no
  shapes). Target (issue 14): 100k annotations in under 10 s on the 2-core box.
- Class lists: a VOC folder whose ``labels.txt`` has n distinct lines and no annotations, timed at
  n, 2n and 4n. A linear lookup doubles the time per doubling (ratio ~2), a quadratic one
  quadruples it (ratio ~4); the reference is building a dict of the same names.

    .venv/bin/python benchmarks/bench_import.py [--annotations 100000] [--classes 12500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.exchange import import_dataset


def _coco_file(folder: Path, n: int) -> Path:
    n_images = max(1, n // 50)
    images = [{"id": i + 1, "file_name": f"img{i}.jpg", "width": 640, "height": 480} for i in range(n_images)]
    anns = []
    for k in range(n):
        x, y = 10 + (k * 7) % 500, 10 + (k * 13) % 380
        a = {
            "id": k + 1,
            "image_id": k % n_images + 1,
            "category_id": k % 80 + 1,
            "iscrowd": 0,
            "bbox": [x, y, 40, 30],
            "area": 1200,
        }
        a["segmentation"] = [[x, y, x + 40, y, x + 40, y + 30, x + 20, y + 40, x, y + 30]] if k % 2 else []
        anns.append(a)
    cats = [{"id": i + 1, "name": f"class{i}", "supercategory": ""} for i in range(80)]
    path = folder / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_coco(host, n: int) -> None:
    from pycocotools.coco import COCO

    with tempfile.TemporaryDirectory() as tmp:
        path = _coco_file(Path(tmp), n)
        ours = _timed(lambda: import_dataset(host.format("coco"), path, {"image_root": tmp}))
        ref = _timed(lambda: COCO(str(path)))
    print(
        f"COCO import of {n} annotations: ours {ours:.2f} s, pycocotools COCO() {ref:.2f} s, "
        f"ratio {ours / ref:.1f} (target: ours < 10 s)"
    )


def bench_classes(host, n: int) -> None:
    times = []
    for size in (n, 2 * n, 4 * n):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "Annotations").mkdir()
            names = [f"class_{i}" for i in range(size)]
            (root / "labels.txt").write_text("\n".join(names) + "\n")
            ours = _timed(lambda: import_dataset(host.format("voc"), root))  # noqa: B023 - called at once
            ref = _timed(lambda: {name: i for i, name in enumerate(names)})  # noqa: B023
            times.append(ours)
            print(f"labels.txt of {size} lines: ours {ours:.3f} s, dict of the names {ref * 1000:.1f} ms")
    print(
        f"growth per doubling: {times[1] / times[0]:.1f}, {times[2] / times[1]:.1f} (linear ~2, quadratic ~4)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--annotations", type=int, default=100_000)
    p.add_argument("--classes", type=int, default=12_500)
    args = p.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    host = PluginHost(builtins=("vfmstudio_formats",), entry_points=False).load()
    bench_coco(host, args.annotations)
    bench_classes(host, args.classes)


if __name__ == "__main__":
    main()
