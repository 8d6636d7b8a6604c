"""Painters: one function per canvas result type, turning a layer into QGraphicsItems.

The numpy part (colouring, outlines) is separate from the Qt part so it can be tested directly.
Items are children of the canvas image item, so their coordinates are image pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsItemGroup,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
)

from vfmstudio.core.results import Correspondences, Detections, FeatureImage, Heatmap, LayerMaps, Masks
from vfmstudio.qt.imaging import qimage_from_array
from vfmstudio.qt.layers import Layer
from vfmstudio.qt.overlays import colour_for, layer_maps_range, raster_key, render_raster

MAX_RASTERS_PER_LAYER = 8  # colour maps / stack indices kept per layer while the user scrubs

# ------------------------------------------------------------------------- Qt items


class RasterItem(QGraphicsItem):
    """An RGBA array drawn over ``extent`` (image pixels), without copying it into a pixmap: only
    the exposed part is painted, so a full-size mask layer on a 12-megapixel photo repaints fast."""

    def __init__(self, rgba: np.ndarray, extent, image_size: tuple[int, int], smooth: bool):
        super().__init__()
        self._rgba = rgba  # keeps the memory the QImage borrows alive
        self._image = qimage_from_array(rgba, copy=False)
        x0, y0, x1, y1 = (
            extent if extent is not None else (0.0, 0.0, float(image_size[0]), float(image_size[1]))
        )
        self._rect = QRectF(x0, y0, x1 - x0, y1 - y0)
        self._sx = rgba.shape[1] / (x1 - x0)
        self._sy = rgba.shape[0] / (y1 - y0)
        self._smooth = smooth
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        target = option.exposedRect.intersected(self._rect)
        if target.isEmpty():
            return
        r = self._rect
        source = QRectF(
            (target.left() - r.left()) * self._sx,
            (target.top() - r.top()) * self._sy,
            target.width() * self._sx,
            target.height() * self._sy,
        )
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth)
        painter.drawImage(target, self._image, source)


def layer_raster(layer: Layer) -> np.ndarray | None:
    """The layer's raster for its current colour map and stack index, rendered once and cached."""
    key = raster_key(layer.result, layer.colormap, layer.layer_index)
    raster = layer.rasters.get(key)
    if raster is None:
        raster = render_raster(layer.result, layer.colormap, layer.layer_index)
        if raster is not None:
            if len(layer.rasters) >= MAX_RASTERS_PER_LAYER:
                layer.rasters.pop(next(iter(layer.rasters)))
            layer.rasters[key] = raster
    return raster


LABEL_ANCHOR = 0  # QGraphicsItem data key: the corner a canvas label belongs at


def canvas_labels(items: list[QGraphicsItem]) -> list[QGraphicsSimpleTextItem]:
    out, todo = [], list(items)
    while todo:
        item = todo.pop()
        if isinstance(item, QGraphicsSimpleTextItem) and item.data(LABEL_ANCHOR) is not None:
            out.append(item)
        todo.extend(item.childItems())
    return out


def place_labels(items: list[QGraphicsItem], scale: float) -> None:
    """Move the labels of ``items`` so that none covers another at view ``scale`` (labels keep
    their screen size, so their size in image pixels is their pixel size / scale)."""
    from vfmstudio.session.label_layout import place_labels as layout

    labels = canvas_labels(items)
    scale = scale if scale > 0 else 1.0
    wanted = []
    for label in labels:
        x, y = label.data(LABEL_ANCHOR)
        box = label.boundingRect().adjusted(-2, -1, 2, 1)
        wanted.append((float(x), float(y), box.width() / scale, box.height() / scale))
    for label, (x, y) in zip(labels, layout(wanted)):
        label.setPos(x, y)


def _label_item(text: str, colour: tuple[int, int, int], parent: QGraphicsItem, x: float, y: float) -> None:
    label = QGraphicsSimpleTextItem(text, parent)
    font = QFont()
    font.setPointSize(9)
    font.setBold(True)
    label.setFont(font)
    label.setBrush(QBrush(QColor(255, 255, 255)))
    # Labels keep their screen size at any zoom.
    label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
    label.setPos(x, y)
    label.setData(LABEL_ANCHOR, (x, y))  # where it wants to be; place_labels may move it down
    bg = QGraphicsRectItem(label.boundingRect().adjusted(-2, -1, 2, 1), label)
    bg.setBrush(QBrush(QColor(*colour, 200)))
    bg.setPen(QPen(Qt.PenStyle.NoPen))
    bg.setZValue(-1)
    bg.setFlag(QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent, True)


def make_item(layer: Layer, image_size: tuple[int, int]) -> QGraphicsItem | None:
    """The item drawing ``layer`` (None for results not drawn on the canvas). ``image_size`` is (w, h)."""
    r = layer.result
    if isinstance(r, Masks):
        item: QGraphicsItem = RasterItem(layer_raster(layer), None, (r.size[1], r.size[0]), smooth=False)
        group = QGraphicsItemGroup()
        group.addToGroup(item)
        for i, (box, label) in enumerate(zip(r.boxes_xyxy, r.labels)):
            score = "" if r.scores is None else f" {float(r.scores[i]):.2f}"
            if label or score:
                _label_item(f"{label}{score}", colour_for(i), group, float(box[0]), float(box[1]))
        item = group
    elif isinstance(r, Detections):
        group = QGraphicsItemGroup()
        for i, (box, label) in enumerate(zip(r.boxes_xyxy, r.labels)):
            colour = colour_for(i)
            rect = QGraphicsRectItem(QRectF(QPointF(box[0], box[1]), QPointF(box[2], box[3])), group)
            pen = QPen(QColor(*colour), 2)
            pen.setCosmetic(True)  # 2 screen pixels at any zoom
            rect.setPen(pen)
            score = "" if r.scores is None else f" {float(r.scores[i]):.2f}"
            _label_item(f"{label}{score}", colour, group, float(box[0]), float(box[1]))
        item = group
    elif isinstance(r, Heatmap | LayerMaps):
        item = RasterItem(layer_raster(layer), r.extent, image_size, smooth=True)
    elif isinstance(r, FeatureImage):
        item = RasterItem(layer_raster(layer), r.extent, image_size, smooth=False)
    elif isinstance(r, Correspondences):
        # On the single-image canvas only the source points show; the pair view draws the lines.
        group = QGraphicsItemGroup()
        for i, (x, y) in enumerate(r.source_xy):
            dot = QGraphicsEllipseItem(-4, -4, 8, 8, group)
            dot.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
            dot.setPos(float(x), float(y))
            dot.setBrush(QBrush(QColor(*colour_for(i))))
            dot.setPen(QPen(QColor(255, 255, 255), 1))
        item = group
    else:
        return None
    item.setOpacity(layer.opacity)
    item.setVisible(layer.visible)
    return item


def target_markers(r: Correspondences) -> QGraphicsItemGroup:
    """Rings at the target end of each match, coloured like the source dots."""
    group = QGraphicsItemGroup()
    for i, (x, y) in enumerate(r.target_xy):
        ring = QGraphicsEllipseItem(-7, -7, 14, 14, group)
        ring.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        ring.setPos(float(x), float(y))
        ring.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        ring.setPen(QPen(QColor(*colour_for(i)), 3))
    return group


def legend_for(layer: Layer) -> tuple[str, float, float, str] | None:
    r = layer.result
    if isinstance(r, Heatmap):
        return layer.colormap, r.value_range[0], r.value_range[1], r.label or "heat map"
    if isinstance(r, LayerMaps):
        lo, hi = layer_maps_range(r.values)
        idx = layer.layer_index % r.values.shape[0]
        return layer.colormap, lo, hi, f"{r.label or 'layer maps'} · {r.names[idx]}"
    return None


def render_layer(layer: Layer, image_size: tuple[int, int]) -> QImage:
    """The layer alone, at image size, on a transparent background."""
    w, h = image_size
    image = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    item = make_item(layer, image_size)
    if item is not None:
        scene = QGraphicsScene()
        item.setVisible(True)
        scene.addItem(item)
        painter = QPainter(image)
        scene.render(painter, QRectF(0, 0, w, h), QRectF(0, 0, w, h))
        painter.end()
    return image


def export_layer_png(layer: Layer, image_size: tuple[int, int], path: Path) -> None:
    if not render_layer(layer, image_size).save(str(path), "PNG"):
        raise OSError(f"{path}: could not write the PNG")
