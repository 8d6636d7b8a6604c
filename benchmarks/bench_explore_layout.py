"""The Explore map's layouts at 100k points: PCA (instant) and t-SNE (background), and how responsive
the GUI thread stays while t-SNE runs on another thread.

Synthetic vectors (20 Gaussian clusters in 768-d). t-SNE is fitted on a 20k sample of the 50
principal components and places the other 80k by their neighbours (``vfmstudio.index.layout``). While
it runs on a worker thread (as on the window's inference runner), a 10 ms timer ticks on the main
thread; the longest gap between ticks is the longest the window would freeze. Also reports how well
the map keeps clusters: the share of points whose nearest point on the map is from the same cluster.

    .venv/bin/python benchmarks/bench_explore_layout.py [--points 100000] [--fit-rows 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time

import numpy as np


def agreement(xy: np.ndarray, label: np.ndarray, sample: int = 2000, seed: int = 0) -> float:
    """Share of ``sample`` points whose nearest other point on the map has their cluster."""
    rows = np.random.default_rng(seed).choice(len(xy), size=min(sample, len(xy)), replace=False)
    hits = 0
    for r in rows:
        d = ((xy - xy[r]) ** 2).sum(axis=1)
        d[r] = np.inf
        hits += int(label[int(d.argmin())] == label[r])
    return hits / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--fit-rows", type=int, default=20_000)
    args = parser.parse_args()
    from vfmstudio.index.layout import pca_2d, tsne_2d

    print(f"{platform.machine()}, {os.cpu_count()} cores, loadavg {' '.join(map(str, os.getloadavg()))}")
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, args.dim)).astype(np.float32) * 0.6
    label = rng.integers(0, 20, args.points)
    vectors = centres[label] + rng.standard_normal((args.points, args.dim)).astype(np.float32) * 0.5

    t0 = time.perf_counter()
    pca = pca_2d(vectors)
    print(f"PCA layout of {args.points} x {args.dim}: {time.perf_counter() - t0:.2f} s")

    result: dict = {}
    stages: list[tuple[float, str]] = []
    start = time.perf_counter()

    def work() -> None:
        result["xy"] = tsne_2d(
            vectors,
            fit_rows=args.fit_rows,
            progress=lambda f, m: stages.append((time.perf_counter() - start, m)) if f is None else None,
        )
        result["s"] = time.perf_counter() - start

    worker = threading.Thread(target=work)
    worker.start()
    last, worst, ticks = time.perf_counter(), 0.0, 0
    while worker.is_alive():
        time.sleep(0.01)  # what a 10 ms Qt timer asks of the GUI thread
        now = time.perf_counter()
        worst, last, ticks = max(worst, now - last), now, ticks + 1
    worker.join()
    placing = stages[0][0] if stages else result["s"]
    print(
        f"t-SNE layout of {args.points} points (fit on {min(args.fit_rows, args.points)}): "
        f"{result['s']:.1f} s (fit {placing:.1f} s, placing the rest {result['s'] - placing:.1f} s)"
    )
    print(f"GUI thread while it ran: {ticks} ticks of 10 ms, longest gap {worst * 1000:.0f} ms")
    print(
        f"nearest point from the same cluster: PCA {agreement(pca, label):.3f}, "
        f"t-SNE {agreement(result['xy'], label):.3f}"
    )


if __name__ == "__main__":
    main()
