"""What the run time limit (ADR 0080) costs per run: a trivial tool through ``run_tool`` and a trivial
job through ``JobRunner``, each with and without a limit, in one process; prints the ratio.

The limit adds a thread (run_tool) or a timer thread (JobRunner) per run; the point is to show
that this stays far below the milliseconds an interactive rerun takes.

    python benchmarks/bench_tool_timeout.py [--runs 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import types

import numpy as np

from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.image import LoadedImage
from vfmstudio.core.jobs import JobRunner
from vfmstudio.core.results import Heatmap
from vfmstudio.core.tools import ToolSpec
from vfmstudio.execution import Services, run_tool


def _setup():
    mod = types.ModuleType("bench_timeout_tools")

    def tool(ctx, images, params):
        grey = ctx.cached(("grey", images[0].id), lambda: images[0].pixels.mean(axis=2).astype(np.float32))
        return [Heatmap(grey, image_id=images[0].id)]

    mod.tool = tool
    sys.modules[mod.__name__] = mod
    spec = ToolSpec(id="bench.grey", title="Grey", run=f"{mod.__name__}:tool", returns=("heatmap",))
    image = LoadedImage(
        path=None, pixels=np.zeros((64, 64, 3), np.uint8), id="img", width=64, height=64, format="PNG"
    )
    services = Services(
        models=ByteLRUCache(1 << 20, name="models"), features=ByteLRUCache(1 << 24, name="features")
    )
    return spec, image, services


def time_run_tool(runs: int, timeout: float | None) -> float:
    spec, image, services = _setup()
    run_tool(spec, [image], services=services, timeout=timeout)  # warm: import, cache fill
    t0 = time.perf_counter()
    for _ in range(runs):
        run_tool(spec, [image], services=services, timeout=timeout)
    return (time.perf_counter() - t0) / runs


def time_jobs(runs: int, timeout: float | None) -> float:
    runner = JobRunner()
    runner.submit(lambda ctx: None, timeout=timeout).result(10)
    t0 = time.perf_counter()
    jobs = [runner.submit(lambda ctx: None, timeout=timeout) for _ in range(runs)]
    for job in jobs:
        job.result(10)
    elapsed = (time.perf_counter() - t0) / runs
    runner.shutdown()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"{args.runs} runs, median of {args.repeat}"
    )
    for name, fn in (("run_tool", time_run_tool), ("JobRunner job", time_jobs)):
        plain = statistics.median(fn(args.runs, None) for _ in range(args.repeat))
        limited = statistics.median(fn(args.runs, 900.0) for _ in range(args.repeat))
        print(
            f"{name:<14} no limit {plain * 1e6:8.1f} us   900 s limit {limited * 1e6:8.1f} us   "
            f"ratio {limited / plain:5.2f}   (+{(limited - plain) * 1e6:.0f} us per run)"
        )


if __name__ == "__main__":
    main()
