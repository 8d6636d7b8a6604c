"""Annotations of the image on view, as canvas items in image pixel coordinates.

Boxes, polygons, rotated boxes, ellipses, polylines and points are Qt items with cosmetic pens (same width at every zoom), one per
annotation, replaced only when it changes; masks are one RGBA pixmap. The selected annotations
show their handles; an edit in progress is drawn as a preview.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from vfmstudio.core.annotations import (
    Annotation,
    Box,
    Ellipse,
    Keypoints,
    LabelSet,
    Mask,
    Points,
    Polygon,
    Polyline,
    RotatedBox,
    Shape,
)
from vfmstudio.core.shape_edits import rotation_handle
from vfmstudio.qt.imaging import qimage_from_array

HANDLE_PX = 7  # handle size on screen, whatever the zoom
ROTATE_PX = 24  # how far above a rotated box or an ellipse its rotation handle sits on screen
THIN_OUTLINES_ABOVE = 300  # annotations on one image beyond which outlines are 1 px


def shape_path(shape: Shape) -> QPainterPath:
    """Outline of a box, rotated box, ellipse or polygon (holes cut out by the odd-even rule), or
    the open line of a polyline."""
    path = QPainterPath()
    path.setFillRule(Qt.FillRule.OddEvenFill)
    if isinstance(shape, Box):
        path.addRect(QRectF(shape.x0, shape.y0, shape.x1 - shape.x0, shape.y1 - shape.y0))
    elif isinstance(shape, Polygon | RotatedBox):
        for ring in shape.rings() if isinstance(shape, Polygon) else [shape.corners()]:
            path.moveTo(*ring[0])
            for x, y in ring[1:]:
                path.lineTo(x, y)
            path.closeSubpath()
    elif isinstance(shape, Ellipse):
        path.addEllipse(QPointF(0, 0), shape.rx, shape.ry)
        path = QTransform().translate(shape.cx, shape.cy).rotate(shape.angle).map(path)
    elif isinstance(shape, Polyline):
        path.moveTo(*shape.points[0])
        for x, y in shape.points[1:]:
            path.lineTo(x, y)
    return path


def handles_of(shape: Shape, scale: float = 1.0) -> list[tuple[str, tuple, QPointF]]:
    """Draggable handles: ``("box", (corner_x, corner_y), point)`` with 0/0.5/1 positions for the
    eight box handles, ``("vertex", (part, ring, index), point)`` for polygon vertices,
    ``("point", (index,), point)`` for the points of lines and (labelled) keypoints,
    ``("corner", (index,), point)`` for the corners of a rotated box, ``("radius", (axis, side),
    point)`` for the ends of an ellipse's axes, and ``("rotate", (), point)`` for the handle that
    turns a rotated box or an ellipse, :data:`ROTATE_PX` screen pixels above it at zoom ``scale``."""
    out: list[tuple[str, tuple, QPointF]] = []
    if isinstance(shape, RotatedBox | Ellipse):
        if isinstance(shape, RotatedBox):
            for i, (x, y) in enumerate(shape.corners()):
                out.append(("corner", (i,), QPointF(x, y)))
        else:
            a = math.radians(shape.angle)
            ends = (
                (shape.rx * math.cos(a), shape.rx * math.sin(a)),
                (-shape.ry * math.sin(a), shape.ry * math.cos(a)),
            )
            for axis, (ex, ey) in enumerate(ends):
                for side in (1, -1):
                    out.append(("radius", (axis, side), QPointF(shape.cx + side * ex, shape.cy + side * ey)))
        if not (isinstance(shape, Ellipse) and shape.is_circle):  # a circle looks the same at any angle
            out.append(("rotate", (), QPointF(*rotation_handle(shape, ROTATE_PX / max(scale, 1e-6)))))
        return out
    if isinstance(shape, Box):
        for fx in (0.0, 0.5, 1.0):
            for fy in (0.0, 0.5, 1.0):
                if (fx, fy) != (0.5, 0.5):
                    out.append(
                        (
                            "box",
                            (fx, fy),
                            QPointF(
                                shape.x0 + fx * (shape.x1 - shape.x0), shape.y0 + fy * (shape.y1 - shape.y0)
                            ),
                        )
                    )
    elif isinstance(shape, Polygon):
        for p, part in enumerate(shape.parts):
            for r, ring in enumerate((part.exterior, *part.holes)):
                for i, (x, y) in enumerate(ring):
                    out.append(("vertex", (p, r, i), QPointF(x, y)))
    elif isinstance(shape, Polyline | Keypoints):  # (a point set moves as a whole, as before)
        hidden = shape.visibility if isinstance(shape, Keypoints) else ()
        for i, (x, y) in enumerate(shape.points):
            if not hidden or hidden[i] > 0:
                out.append(("point", (i,), QPointF(x, y)))
    return out


def outline_path(shape: Shape, edges: tuple[tuple[int, int], ...] = ()) -> QPainterPath:
    """A shape as one path: outlines, a points cloud, or keypoints (labelled ones only) joined by
    the class's skeleton ``edges``: a visible keypoint is a dot, a hidden one (visibility 1) a cross,
    which encloses nothing, so the item's brush fills the dots only."""
    if isinstance(shape, Points | Keypoints):
        path = QPainterPath()
        vis = shape.visibility if isinstance(shape, Keypoints) else (2,) * len(shape.points)
        shown = [v > 0 for v in vis]
        for (x, y), v in zip(shape.points, vis):
            if v == 2:
                path.addEllipse(QPointF(x, y), 2.5, 2.5)
            elif v == 1:
                for sx, sy in ((1, 1), (1, -1)):
                    path.moveTo(x - 2.5 * sx, y - 2.5 * sy)
                    path.lineTo(x + 2.5 * sx, y + 2.5 * sy)
        for a, b in edges:
            if a < len(shown) and b < len(shown) and shown[a] and shown[b]:
                path.moveTo(*shape.points[a])
                path.lineTo(*shape.points[b])
        return path
    return shape_path(shape)


class _Overlay(QGraphicsItem):
    """Handles of the selected shapes and the preview of an edit in progress (few Qt calls)."""

    def __init__(self, owner: AnnotationItem):
        super().__init__(owner)
        self.owner = owner
        self.setZValue(1e9)

    def boundingRect(self) -> QRectF:
        return self.owner.boundingRect()

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        owner = self.owner
        if owner.chosen_shapes:
            scale = painter.worldTransform().m11() or 1.0
            size = HANDLE_PX / scale
            handles, frames = QPainterPath(), QPainterPath()
            for shape in owner.chosen_shapes:
                if isinstance(shape, Mask):
                    x0, y0, x1, y1 = shape.bbox()
                    frames.addRect(QRectF(x0, y0, x1 - x0, y1 - y0))
                for kind, _where, p in handles_of(shape, scale):
                    if kind == "rotate":  # a round handle on a stalk from the middle of the top side
                        frames.moveTo(*rotation_handle(shape, 0.0))
                        frames.lineTo(p)
                        handles.addEllipse(p, size * 0.6, size * 0.6)
                    else:
                        handles.addRect(QRectF(p.x() - size / 2, p.y() - size / 2, size, size))
            dashed = QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine)
            dashed.setCosmetic(True)
            painter.setPen(dashed)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(frames)
            pen = QPen(QColor(20, 20, 20), 1)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.setBrush(QBrush(QColor(255, 255, 255)))
            painter.drawPath(handles)
        if owner.preview is not None:
            pen = QPen(owner.preview_color, 2, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            painter.setPen(pen)
            fill = QColor(owner.preview_color)
            fill.setAlpha(50)
            painter.setBrush(QBrush(fill))
            painter.drawPath(owner.preview)


class AnnotationItem(QGraphicsItem):
    """The annotations of one image, in image pixel coordinates.

    Each box, polygon or point set is a plain Qt item (painted in C++, culled by the scene), kept
    per annotation and replaced only when that annotation changes; masks are composited into one
    pixmap. Python paints only the handles of the selection and the preview of an edit, so a
    repaint (every mouse move of a drag) costs the same with 5 or 5000 annotations.
    """

    def __init__(self, width: int, height: int):
        super().__init__()
        self._rect = QRectF(0, 0, width, height)
        self._size = (width, height)
        self.labels: LabelSet | None = None
        self.image_key: str | None = None
        self.selected: list[str] = []
        self.chosen_shapes: list[Shape] = []
        self.preview: QPainterPath | None = None
        self.preview_color = QColor(255, 255, 255)
        self._items: dict[str, tuple[tuple, QGraphicsItem]] = {}  # id -> (what it shows, item)
        self._masks_key: tuple = ()
        self._masks_item: QGraphicsPixmapItem | None = None
        self._overlay = _Overlay(self)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents, True)
        self.setZValue(10_000)  # above every prediction layer

    def boundingRect(self) -> QRectF:
        return self._rect.adjusted(-50, -50, 50, 50)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        pass  # children only

    def annotations(self) -> tuple[Annotation, ...]:
        if self.labels is None or self.image_key is None:
            return ()
        return self.labels.annotations(self.image_key)

    def set_preview(self, path: QPainterPath | None, color: QColor) -> None:
        self.preview, self.preview_color = path, color
        self._overlay.update()

    def refresh(self) -> None:
        """Bring the items in line with the annotations and the selection (only what changed)."""
        labels = self.labels
        anns = self.annotations() if labels is not None else ()
        selected = set(self.selected)
        self.chosen_shapes = [a.shape for a in anns if a.id in selected]
        width = 2 if len(anns) <= THIN_OUTLINES_ABOVE else 1
        live = set()
        masks: list[tuple[Mask, str]] = []
        scene = self.scene()
        for z, ann in enumerate(anns):
            color = labels.color_of(ann.label)
            if isinstance(ann.shape, Mask):
                masks.append((ann.shape, color))
                continue
            live.add(ann.id)
            chosen = ann.id in selected
            skeleton = labels.skeletons.get(ann.label) if isinstance(ann.shape, Keypoints) else None
            edges = skeleton.edges if skeleton is not None else ()
            key = (ann.shape, color, chosen, width, edges)
            cached = self._items.get(ann.id)
            if cached is not None and cached[0] == key:
                if cached[1].zValue() != z:  # only when the order changed (a delete, an undo)
                    cached[1].setZValue(z)
                continue
            if cached is not None and scene is not None:
                scene.removeItem(cached[1])
            self._items[ann.id] = (key, self._make(ann.shape, color, chosen, width, z, edges))
        for gone in [i for i in self._items if i not in live]:
            _, item = self._items.pop(gone)
            if scene is not None:
                scene.removeItem(item)
            else:
                item.setParentItem(None)
        key = tuple((id(m), c) for m, c in masks)
        if key != self._masks_key:
            self._masks_key = key
            if self._masks_item is not None:
                (
                    scene.removeItem(self._masks_item)
                    if scene is not None
                    else self._masks_item.setParentItem(None)
                )
                self._masks_item = None
            if masks:
                self._masks_item = QGraphicsPixmapItem(QPixmap.fromImage(self._composite(masks)), self)
                self._masks_item.setZValue(-1)
        self._overlay.update()

    def _make(
        self,
        shape: Shape,
        color: str,
        chosen: bool,
        width: int,
        z: int,
        edges: tuple[tuple[int, int], ...] = (),
    ) -> QGraphicsItem:
        qc = QColor(color)
        pen = QPen(qc, 3 if chosen else width)
        pen.setCosmetic(True)
        fill = QColor(qc)
        fill.setAlpha(70 if chosen else 35)
        if isinstance(shape, Box):
            item: QGraphicsItem = QGraphicsRectItem(
                QRectF(shape.x0, shape.y0, shape.x1 - shape.x0, shape.y1 - shape.y0), self
            )
        else:
            item = QGraphicsPathItem(outline_path(shape, edges), self)
        if isinstance(shape, Polyline):
            fill.setAlpha(0)  # open lines enclose nothing; a brush would fill the closing chord
        elif isinstance(shape, Keypoints):
            fill.setAlpha(255 if chosen else 180)  # solid dots: visible; crosses: hidden
        item.setPen(pen)
        item.setBrush(QBrush(fill))
        item.setZValue(z)
        return item

    def _composite(self, masks: list[tuple[Mask, str]]) -> QImage:
        w, h = self._size
        rgba = np.zeros((h, w, 4), dtype=np.uint8)
        for mask, color in masks:  # later masks on top
            if (mask.height, mask.width) != (h, w):
                continue  # a mask made for another size of this image: listed, not drawn
            qc = QColor(color)
            rgba[mask.to_array()] = (qc.red(), qc.green(), qc.blue(), 110)
        return qimage_from_array(rgba)
