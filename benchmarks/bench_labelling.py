"""Labelling in the window: what one edit costs.

- brush stroke on a 12 MP image: ours (rasterised around the stroke only, ``qt.edit_tools``)
  against the core's full-image distance field (``core.commands.brush_stroke``), same pixels;
- a brush release end to end on a 12 MP mask (stroke, ``paint_mask`` command: decode, OR, RLE
  encode) and the autosave that follows (atomic write of a project of N annotations);
- repainting an image with many annotations: ours (``AnnotationItem``: a Qt item per shape, built
  from the label set, plus the Python-painted selection overlay) against bare
  ``QGraphicsRectItem``/``QGraphicsPolygonItem``s added straight to the scene (the floor).

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_labelling.py [--repeat 5] [--annotations 2000]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

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
    ap.add_argument("--annotations", type=int, default=2000)
    args = ap.parse_args()

    from PySide6.QtCore import QPointF, QRectF
    from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPolygonF
    from PySide6.QtWidgets import QApplication, QGraphicsScene

    from vfmstudio.core import commands as cmd
    from vfmstudio.core.annotations import Annotation, Box, Mask, Polygon
    from vfmstudio.core.project import Project
    from vfmstudio.qt.annotation_item import AnnotationItem
    from vfmstudio.qt.edit_tools import local_brush_stroke

    app = QApplication.instance() or QApplication(sys.argv[:1])
    print(f"{platform.machine()} {platform.processor() or ''} · Python {platform.python_version()}")
    h, w = 3000, 4000
    rng = np.random.default_rng(0)
    points = [(1000 + 15 * i, 1200 + 40 * np.sin(i / 5)) for i in range(30)]

    ours = timed(lambda: local_brush_stroke(h, w, points, 12.0), args.repeat)
    ref = timed(lambda: cmd.brush_stroke(h, w, points, 12.0), max(1, args.repeat // 2))
    same = np.array_equal(local_brush_stroke(h, w, points, 12.0), cmd.brush_stroke(h, w, points, 12.0))
    print(
        f"brush stroke 12 MP, 30 points r=12: ours {ours * 1000:.1f} ms, full-image {ref * 1000:.0f} ms, "
        f"ratio {ref / ours:.0f}x faster, identical={same}"
    )

    tmp = Path(tempfile.mkdtemp(prefix="vfm-bench-labelling-"))
    project = Project(tmp / "vfmstudio.json")
    labels = project.labels
    base = np.zeros((h, w), bool)
    base[800:1600, 900:2000] = True
    mask_ann = labels.add(Annotation("big.jpg", "blob", Mask.from_array(base)))
    for i in range(args.annotations):
        x, y = rng.uniform(0, w - 50), rng.uniform(0, h - 50)
        shape = (
            Box(x, y, x + 40, y + 30) if i % 2 else Polygon.simple([(x, y), (x + 40, y), (x + 20, y + 35)])
        )
        labels.add(Annotation("big.jpg", "thing", shape))
    stack = cmd.UndoStack(labels)

    def release() -> None:
        stroke = local_brush_stroke(h, w, points, 12.0)
        stack.push(cmd.paint_mask(labels, mask_ann.id, stroke))

    t_release = timed(release, args.repeat)
    t_save = timed(project.save, args.repeat)
    size = (tmp / "vfmstudio.json").stat().st_size
    print(f"brush release on a 12 MP mask (stroke + paint_mask command): {t_release * 1000:.0f} ms")
    print(
        f"autosave of {args.annotations + 1} annotations ({size / 1e6:.1f} MB, atomic, backup rotated): "
        f"{t_save * 1000:.0f} ms"
    )

    # Repaint: one item for all annotations against one scene item per annotation.
    small = Project(tmp / "small.json").labels
    for i in range(args.annotations):
        x, y = rng.uniform(0, 1950), rng.uniform(0, 1450)
        shape = (
            Box(x, y, x + 40, y + 30) if i % 2 else Polygon.simple([(x, y), (x + 40, y), (x + 20, y + 35)])
        )
        small.add(Annotation("img", "thing", shape))
    target = QImage(1000, 750, QImage.Format.Format_ARGB32_Premultiplied)

    def render(scene: QGraphicsScene) -> None:
        target.fill(0)
        painter = QPainter(target)
        scene.render(painter, QRectF(0, 0, 1000, 750), QRectF(0, 0, 2000, 1500))
        painter.end()

    ours_scene = QGraphicsScene()
    item = AnnotationItem(2000, 1500)
    item.labels, item.image_key = small, "img"
    ours_scene.addItem(item)
    item.refresh()
    ref_scene = QGraphicsScene()
    from vfmstudio.qt.annotation_item import THIN_OUTLINES_ABOVE

    pen = QPen(QColor(small.color_of("thing")), 2 if args.annotations <= THIN_OUTLINES_ABOVE else 1)
    pen.setCosmetic(True)
    fill = QColor(small.color_of("thing"))
    fill.setAlpha(35)
    for ann in small.annotations("img"):
        if isinstance(ann.shape, Box):
            x0, y0, x1, y1 = ann.shape.xyxy
            ref_scene.addRect(QRectF(x0, y0, x1 - x0, y1 - y0), pen, fill)
        else:
            ref_scene.addPolygon(QPolygonF([QPointF(*p) for p in ann.shape.parts[0].exterior]), pen, fill)
    render(ours_scene)
    render(ref_scene)
    t_ours = timed(lambda: render(ours_scene), args.repeat)
    t_ref = timed(lambda: render(ref_scene), args.repeat)
    print(
        f"repaint {args.annotations} boxes/polygons: ours {t_ours * 1000:.1f} ms, one item per shape "
        f"{t_ref * 1000:.1f} ms, ratio {t_ref / t_ours:.2f}"
    )
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
