"""Annotations of the image on view, painted as one canvas item in image pixel coordinates.

Boxes and polygons are vector paths with cosmetic pens (same width at every zoom); masks are
RGBA images made once per mask value (shapes are immutable, so the shape object is the cache
key). The selected annotations show their handles; an edit in progress is drawn as a preview.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from vfmstudio.core.annotations import Annotation, Box, LabelSet, Mask, Points, Polygon, Shape
from vfmstudio.qt.imaging import qimage_from_array

HANDLE_PX = 7  # handle size on screen, whatever the zoom


def shape_path(shape: Shape) -> QPainterPath:
    """Outline of a box or polygon (holes cut out by the odd-even rule)."""
    path = QPainterPath()
    path.setFillRule(Qt.FillRule.OddEvenFill)
    if isinstance(shape, Box):
        path.addRect(QRectF(shape.x0, shape.y0, shape.x1 - shape.x0, shape.y1 - shape.y0))
    elif isinstance(shape, Polygon):
        for ring in shape.rings():
            path.moveTo(*ring[0])
            for x, y in ring[1:]:
                path.lineTo(x, y)
            path.closeSubpath()
    return path


def handles_of(shape: Shape) -> list[tuple[str, tuple, QPointF]]:
    """Draggable handles: ``("box", (corner_x, corner_y), point)`` with 0/0.5/1 positions for the
    eight box handles, ``("vertex", (part, ring, index), point)`` for polygon vertices."""
    out: list[tuple[str, tuple, QPointF]] = []
    if isinstance(shape, Box):
        for fx in (0.0, 0.5, 1.0):
            for fy in (0.0, 0.5, 1.0):
                if (fx, fy) != (0.5, 0.5):
                    out.append(("box", (fx, fy), QPointF(shape.x0 + fx * (shape.x1 - shape.x0),
                                                         shape.y0 + fy * (shape.y1 - shape.y0))))
    elif isinstance(shape, Polygon):
        for p, part in enumerate(shape.parts):
            for r, ring in enumerate((part.exterior, *part.holes)):
                for i, (x, y) in enumerate(ring):
                    out.append(("vertex", (p, r, i), QPointF(x, y)))
    return out


def _mask_image(mask: Mask, rgb: tuple[int, int, int], alpha: int) -> QImage:
    arr = mask.to_array()
    rgba = np.zeros(arr.shape + (4,), dtype=np.uint8)
    rgba[arr] = (*rgb, alpha)
    return qimage_from_array(rgba)


class AnnotationItem(QGraphicsItem):
    """Paints a label set's annotations of one image; a child of the canvas image item."""

    def __init__(self, width: int, height: int):
        super().__init__()
        self._rect = QRectF(0, 0, width, height)
        self.labels: LabelSet | None = None
        self.image_key: str | None = None
        self.selected: list[str] = []
        self.preview: QPainterPath | None = None
        self.preview_color = QColor(255, 255, 255)
        self._mask_images: dict[str, tuple[Mask, str, QImage]] = {}
        self.setZValue(10_000)  # above every prediction layer
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def boundingRect(self) -> QRectF:
        return self._rect.adjusted(-50, -50, 50, 50)

    def annotations(self) -> tuple[Annotation, ...]:
        if self.labels is None or self.image_key is None:
            return ()
        return self.labels.annotations(self.image_key)

    def refresh(self) -> None:
        live = {a.id for a in self.annotations()}
        for gone in [k for k in self._mask_images if k not in live]:
            del self._mask_images[gone]
        self.update()

    def _mask(self, ann: Annotation, color: str) -> QImage:
        cached = self._mask_images.get(ann.id)
        if cached is None or cached[0] is not ann.shape or cached[1] != color:
            qc = QColor(color)
            cached = (ann.shape, color, _mask_image(ann.shape, (qc.red(), qc.green(), qc.blue()), 110))
            self._mask_images[ann.id] = cached
        return cached[2]

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        labels = self.labels
        if labels is None:
            return
        scale = painter.worldTransform().m11() or 1.0
        selected = set(self.selected)
        for ann in self.annotations():
            color = QColor(labels.color_of(ann.label))
            chosen = ann.id in selected
            pen = QPen(color, 3 if chosen else 2)
            pen.setCosmetic(True)
            if isinstance(ann.shape, Mask):
                painter.drawImage(QPointF(0, 0), self._mask(ann, color.name()))
                if chosen:
                    x0, y0, x1, y1 = ann.shape.bbox()
                    dashed = QPen(color, 1, Qt.PenStyle.DashLine)
                    dashed.setCosmetic(True)
                    painter.setPen(dashed)
                    painter.setBrush(Qt.BrushStyle.NoBrush)
                    painter.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))
                continue
            if isinstance(ann.shape, Points):
                painter.setPen(pen)
                painter.setBrush(QBrush(color))
                r = 4 / scale
                for x, y in ann.shape.points:
                    painter.drawEllipse(QPointF(x, y), r, r)
                continue
            fill = QColor(color)
            fill.setAlpha(70 if chosen else 35)
            painter.setPen(pen)
            painter.setBrush(QBrush(fill))
            painter.drawPath(shape_path(ann.shape))
            if chosen:
                self._paint_handles(painter, ann.shape, scale)
        if self.preview is not None:
            pen = QPen(self.preview_color, 2, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            painter.setPen(pen)
            fill = QColor(self.preview_color)
            fill.setAlpha(50)
            painter.setBrush(QBrush(fill))
            painter.drawPath(self.preview)

    def _paint_handles(self, painter: QPainter, shape: Shape, scale: float) -> None:
        size = HANDLE_PX / scale
        pen = QPen(QColor(20, 20, 20), 1)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setBrush(QBrush(QColor(255, 255, 255)))
        for _kind, _where, p in handles_of(shape):
            painter.drawRect(QRectF(p.x() - size / 2, p.y() - size / 2, size, size))
