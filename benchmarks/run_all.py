"""Run every benchmark script in turn (``make bench``), each in its own process.

Each script prints its own figures and ratios; this prints them as they come and a summary of
which scripts finished, with their wall time. By default each script gets the smaller sizes in
:data:`SUITE_ARGS`, so the whole suite stays inside ten minutes on a 2-core machine (the figures in
benchmarks/README.md come from the scripts' own, larger defaults: ``--full``). ``--only NAME`` runs a
subset; ``--timeout`` bounds each script.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Order: quick core figures first, then models, then the window (which needs a display or offscreen).
ORDER = [
    "bench_formats",
    "bench_plugin_probe",
    "bench_dinov2_interaction",
    "bench_dinov2_extraction",
    "bench_clip_classify",
    "bench_clip_segment",
    "bench_paligemma",
    "bench_batch",
    "bench_compile",
    "bench_startup",
    "bench_gui_stall",
]
# Sizes for `make bench` (same measurements, fewer images and repeats); --full drops them.
SUITE_ARGS = {
    "bench_formats": ["--masks", "20", "--repeat", "3"],
    "bench_plugin_probe": ["--plugins", "3", "--repeat", "3"],
    "bench_dinov2_interaction": ["--repeat", "15"],
    "bench_dinov2_extraction": ["--repeat", "3"],
    "bench_clip_classify": ["--images", "16", "--repeat", "1"],
    "bench_clip_segment": ["--resolution", "224", "--repeat", "2"],
    "bench_paligemma": ["--repeat", "2"],
    "bench_batch": ["--rss-images", "100", "--repeat", "1"],
    "bench_compile": ["--resolution", "112", "--repeat", "5"],
    "bench_startup": ["--repeat", "3"],
    "bench_gui_stall": ["--runs", "1", "--model", "small"],
    "bench_labelling": ["--repeat", "3"],
    "bench_tool_timeout": ["--runs", "500", "--repeat", "3"],
    "bench_sam": [
        "--only",
        "sam2",
        "--repeat",
        "1",
        "--clicks",
        "5",
    ],  # SAM ViT-B's encoder alone takes minutes
}


def scripts(only: list[str]) -> list[Path]:
    found = {p.stem: p for p in HERE.glob("bench_*.py")}
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    if only:
        names = [n for n in names if any(o in n for o in only)]
    return [found[n] for n in names]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=[], help="substrings of script names to run")
    ap.add_argument("--timeout", type=float, default=150.0, help="seconds per script")
    ap.add_argument("--full", action="store_true", help="the scripts' own (larger) defaults, not SUITE_ARGS")
    args = ap.parse_args(argv)
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
    }
    summary = []
    for script in scripts(args.only):
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            extra = [] if args.full else SUITE_ARGS.get(script.stem, [])
            if extra:
                print(f"(suite sizes: {' '.join(extra)})", flush=True)
            proc = subprocess.run(
                [sys.executable, str(script), *extra], env=env, timeout=args.timeout, cwd=HERE.parent
            )
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            status = f"timed out after {args.timeout:.0f} s"
        summary.append((script.name, status, time.perf_counter() - t0))
    print("\n=== summary ===")
    for name, status, seconds in summary:
        print(f"{name:<32} {status:<24} {seconds:7.1f} s")
    print(
        f"{'total':<32} {'':<24} {sum(s for _, _, s in summary):7.1f} s; load average now "
        f"{os.getloadavg()[0]:.1f}"
    )
    return 0 if all(s == "ok" for _, s, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
