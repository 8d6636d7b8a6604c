"""Run every benchmark script in turn (``make bench``), each in its own process.

Each script prints its own figures and ratios; this prints them as they come and a summary of
which scripts finished, with their wall time. ``--only NAME`` runs a subset; ``--timeout`` bounds
each script so the whole suite stays inside about ten minutes on a 2-core machine.
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
ORDER = ["bench_formats", "bench_dinov2_interaction", "bench_dinov2_extraction", "bench_clip_classify",
         "bench_paligemma", "bench_batch", "bench_startup", "bench_gui_stall"]


def scripts(only: list[str]) -> list[Path]:
    found = {p.stem: p for p in HERE.glob("bench_*.py")}
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    if only:
        names = [n for n in names if any(o in n for o in only)]
    return [found[n] for n in names]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=[], help="substrings of script names to run")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per script")
    args = ap.parse_args(argv)
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
           "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    summary = []
    for script in scripts(args.only):
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(script)], env=env, timeout=args.timeout, cwd=HERE.parent)
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            status = f"timed out after {args.timeout:.0f} s"
        summary.append((script.name, status, time.perf_counter() - t0))
    print("\n=== summary ===")
    for name, status, seconds in summary:
        print(f"{name:<32} {status:<24} {seconds:7.1f} s")
    return 0 if all(s == "ok" for _, s, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
