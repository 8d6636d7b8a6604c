"""What running a third-party tool in a worker process costs per call (ADR 0106): the same trivial
tool through ``run_tool`` in-process and isolated, in one process; prints the ratio, plus the
one-off cost of starting the worker.

The tool computes a grey heatmap from features it caches, so a call is dominated by the call
path: the isolated figure is the price of pickling the image there and the result back.

    python benchmarks/bench_isolation.py [--runs 200] [--repeat 3] [--size 512]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.image import LoadedImage
from vfmstudio.core.tools import ToolSpec
from vfmstudio.execution import Services, run_tool
from vfmstudio.isolation import shutdown_workers

TOOL = textwrap.dedent("""
    import numpy as np
    from vfmstudio.core.results import Heatmap

    def grey(ctx, images, params):
        image = images[0]
        feats = ctx.cached(("grey", image.id), lambda: image.pixels.mean(axis=2).astype(np.float32))
        return [Heatmap(feats[::8, ::8] * 1.0, image_id=image.id)]
""")


def _setup(folder: Path, size: int):
    (folder / "bench_isolated_tools.py").write_text(TOOL)
    sys.path.insert(0, str(folder))
    spec = ToolSpec(
        id="bench.grey", title="Grey", run="bench_isolated_tools:grey", returns=("heatmap",), plugin="bench"
    )
    rng = np.random.default_rng(0)
    image = LoadedImage(
        path=None,
        pixels=rng.integers(0, 255, (size, size, 3), np.uint8),
        id="img",
        width=size,
        height=size,
        format="PNG",
    )
    services = Services(
        models=ByteLRUCache(1 << 20, name="models"), features=ByteLRUCache(1 << 26, name="features")
    )
    return spec, image, services


def per_call(spec, image, services, runs: int, isolate: bool) -> float:
    t0 = time.perf_counter()
    for _ in range(runs):
        run_tool(spec, [image], services=services, isolate=isolate)
    return (time.perf_counter() - t0) / runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=512, help="image side in pixels")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec, image, services = _setup(Path(tmp), args.size)
        t0 = time.perf_counter()
        run_tool(spec, [image], services=services, isolate=True)  # starts the worker, imports there
        start = time.perf_counter() - t0
        run_tool(spec, [image], services=services, isolate=False)  # warm in-process too
        inproc, isolated = [], []
        for _ in range(args.repeat):
            inproc.append(per_call(spec, image, services, args.runs, False))
            isolated.append(per_call(spec, image, services, args.runs, True))
        shutdown_workers()
    a, b = statistics.median(inproc), statistics.median(isolated)
    print(
        f"python {platform.python_version()}, {platform.machine()}, image {args.size}x{args.size}, "
        f"{args.runs} calls x {args.repeat}"
    )
    print(f"worker start + first call: {start * 1000:.0f} ms (once per plugin and process)")
    print(
        f"in-process: {a * 1000:.3f} ms/call   isolated: {b * 1000:.3f} ms/call   "
        f"ratio {b / a:.1f}x   cost {(b - a) * 1000:.3f} ms/call"
    )


if __name__ == "__main__":
    main()
