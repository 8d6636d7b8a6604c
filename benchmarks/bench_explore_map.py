"""The Explore map at 100k points: frames per second while panning and zooming, and the layout time.

Draws the real ``ExploreView`` (pyqtgraph ScatterPlotItem) offscreen at 1000x700, coloured by a value
(64 shared brushes), then pans and zooms it frame by frame: each frame changes the view range and lets
the event loop paint once, as a mouse pan does (paint events are counted: one per frame; an earlier
version also called ``repaint()`` and so timed two paints per frame). Reports the median frame time
and frames per second. Target: 30 fps.
Also times the PCA layout of 100k x 768 vectors (the instant first layout) and a lasso selection.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_explore_map.py [--points 100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np


def PaintCounter():  # noqa: N802 - builds a QObject subclass once Qt is imported
    """An event filter that counts the paint events of the map (one per frame is what is timed)."""
    from PySide6.QtCore import QEvent, QObject

    class Counter(QObject):
        count = 0

        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint:
                self.count += 1
            return False

    return Counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from vfmstudio.index.layout import pca_2d
    from vfmstudio.qt.explore_view import ExploreView

    print(
        f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"Qt platform {os.environ['QT_QPA_PLATFORM']}"
    )
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, args.dim)).astype(np.float32) * 3
    vectors = centres[rng.integers(0, 20, args.points)] + rng.standard_normal((args.points, args.dim)).astype(
        np.float32
    )
    t0 = time.perf_counter()
    xy = pca_2d(vectors)
    layout_s = time.perf_counter() - t0
    del vectors

    app = QApplication.instance() or QApplication([])
    view = ExploreView()
    view.resize(1000, 700)
    view.show()
    app.processEvents()
    rels = [f"img{i:06d}.jpg" for i in range(args.points)]
    t0 = time.perf_counter()
    view.set_map(Path("/tmp"), rels, xy)
    view.colour_by(np.linalg.norm(xy, axis=1))
    app.processEvents()
    view.plot.viewport().repaint()
    first_s = time.perf_counter() - t0

    box = view.plot.getViewBox()
    (x0, x1), (y0, y1) = box.viewRange()
    paints = PaintCounter()
    view.plot.viewport().installEventFilter(paints)
    frames = []
    for i in range(args.frames):
        t = i / args.frames
        zoom = 1.0 - 0.6 * np.sin(np.pi * t)  # zoom in and out again while panning across
        cx = x0 + (x1 - x0) * (0.3 + 0.4 * t)
        cy = y0 + (y1 - y0) * 0.5
        half_w, half_h = (x1 - x0) * zoom / 2, (y1 - y0) * zoom / 2
        t1 = time.perf_counter()
        box.setRange(xRange=(cx - half_w, cx + half_w), yRange=(cy - half_h, cy + half_h), padding=0)
        app.processEvents()  # the range change asks for one paint, as when the user pans; it happens here
        frames.append(time.perf_counter() - t1)
    median = float(np.median(frames))
    polygon = np.array(
        [
            [x0 + (x1 - x0) * a, y0 + (y1 - y0) * b]
            for a, b in ((0.2, 0.2), (0.6, 0.25), (0.7, 0.7), (0.3, 0.8))
        ]
    )
    t0 = time.perf_counter()
    chosen = view.select_polygon(polygon)
    lasso_ms = (time.perf_counter() - t0) * 1000
    print(
        f"{args.points} points: PCA layout {layout_s:.2f} s; first draw {first_s:.2f} s; pan+zoom frame "
        f"median {median * 1000:.1f} ms ({1 / median:.0f} fps, worst {max(frames) * 1000:.0f} ms, "
        f"{paints.count} paints for {args.frames} frames); "
        f"lasso over {len(chosen)} points {lasso_ms:.0f} ms"
    )


if __name__ == "__main__":
    main()
