"""Painters: one function per canvas result type, turning a layer into QGraphicsItems.

The numpy part (colouring, outlines) is separate from the Qt part so it can be tested directly.
Items are children of the canvas image item, so their coordinates are image pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsItemGroup,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
)

from vfmstudio.core.results import Correspondences, Detections, FeatureImage, Heatmap, LayerMaps, Masks
from vfmstudio.qt import colormaps
from vfmstudio.qt.imaging import qimage_from_array
from vfmstudio.qt.layers import Layer

# A qualitative palette (Tableau 10) so neighbouring instances differ clearly.
PALETTE = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)],
                   dtype=np.uint8)


def colour_for(i: int) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in PALETTE[i % len(PALETTE)])
    return r, g, b


# ------------------------------------------------------------------------- numpy rendering


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside the mask (a 1-pixel inner outline)."""
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


def render_masks(masks: np.ndarray, fill_alpha: int = 110) -> np.ndarray:
    """(N, H, W) bool -> (H, W, 4) RGBA: translucent fills and opaque outlines, later masks on top."""
    n, h, w = masks.shape
    out = np.zeros((h, w, 4), dtype=np.uint8)
    for i in range(n):
        m = masks[i]
        if not m.any():
            continue
        ys = np.flatnonzero(m.any(axis=1))
        xs = np.flatnonzero(m.any(axis=0))
        y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
        sub = m[y0:y1, x0:x1]  # work on the bounding box: small masks on big images stay cheap
        region = out[y0:y1, x0:x1]
        region[sub] = (*colour_for(i), fill_alpha)
        region[mask_outline(sub)] = (*colour_for(i), 255)
    return out


def render_feature_image(rgb: np.ndarray, foreground: np.ndarray | None) -> np.ndarray:
    """RGB feature map -> RGBA, background (outside ``foreground``) transparent."""
    h, w = rgb.shape[:2]
    out = np.empty((h, w, 4), dtype=np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255 if foreground is None else np.where(foreground, 255, 0)
    return out


def layer_maps_range(values: np.ndarray) -> tuple[float, float]:
    """One range for the whole stack, so scrubbing layers compares like with like."""
    lo, hi = float(values.min()), float(values.max())
    return lo, hi if hi > lo else lo + 1.0


# ------------------------------------------------------------------------- Qt items


def _pixmap_item(rgba: np.ndarray, extent, image_size: tuple[int, int], smooth: bool) -> QGraphicsPixmapItem:
    item = QGraphicsPixmapItem(QPixmap.fromImage(qimage_from_array(rgba)))
    h, w = rgba.shape[:2]
    x0, y0, x1, y1 = extent if extent is not None else (0.0, 0.0, float(image_size[0]), float(image_size[1]))
    item.setPos(x0, y0)
    item.setScale(1.0)
    item.setTransform(item.transform().scale((x1 - x0) / w, (y1 - y0) / h))
    item.setTransformationMode(Qt.TransformationMode.SmoothTransformation if smooth
                               else Qt.TransformationMode.FastTransformation)
    return item


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
    bg = QGraphicsRectItem(label.boundingRect().adjusted(-2, -1, 2, 1), label)
    bg.setBrush(QBrush(QColor(*colour, 200)))
    bg.setPen(QPen(Qt.PenStyle.NoPen))
    bg.setZValue(-1)
    bg.setFlag(QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent, True)


def make_item(layer: Layer, image_size: tuple[int, int]) -> QGraphicsItem | None:
    """The item drawing ``layer`` (None for results not drawn on the canvas). ``image_size`` is (w, h)."""
    r = layer.result
    if isinstance(r, Masks):
        item: QGraphicsItem = _pixmap_item(render_masks(r.masks), None, (r.size[1], r.size[0]), smooth=False)
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
    elif isinstance(r, Heatmap):
        lo, hi = r.value_range
        item = _pixmap_item(colormaps.apply(r.values, lo, hi, layer.colormap), r.extent, image_size, smooth=True)
    elif isinstance(r, FeatureImage):
        item = _pixmap_item(render_feature_image(r.rgb, r.foreground), r.extent, image_size, smooth=False)
    elif isinstance(r, LayerMaps):
        lo, hi = layer_maps_range(r.values)
        idx = layer.layer_index % r.values.shape[0]
        item = _pixmap_item(colormaps.apply(r.values[idx], lo, hi, layer.colormap), r.extent, image_size,
                            smooth=True)
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
