"""The canvas: one image in a QGraphicsView with zoom about the cursor, pan, fit and 1:1.

Layers are child items of the image item, so they live in image pixel coordinates and follow
every zoom and pan for free. The image is drawn by :class:`ImageItem`, which paints only the
exposed part of a QImage that borrows the numpy frame: an 8000x8000 image costs no copy and a
repaint touches only what is on screen.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QGraphicsView, QStyleOptionGraphicsItem, QWidget

from vfmstudio.core import render as colormaps
from vfmstudio.qt.imaging import qimage_from_array

MIN_SCALE = 1 / 64
MAX_SCALE = 64.0
_CLICK_SLOP_PX = 4


class ImageItem(QGraphicsItem):
    """Paints a numpy RGB frame without copying it; only the exposed rectangle is drawn."""

    def __init__(self, pixels: np.ndarray):
        super().__init__()
        self._pixels = pixels  # keeps the memory the QImage borrows alive
        self._image = qimage_from_array(pixels, copy=False)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self._image.width(), self._image.height())

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        rect = option.exposedRect.intersected(self.boundingRect()).toAlignedRect()
        if rect.isEmpty():
            return
        # Smooth when shrinking (no aliasing), crisp pixels when magnified (a pixel-level tool).
        scale = painter.worldTransform().m11()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 1.0)
        painter.drawImage(QRectF(rect), self._image, QRectF(rect))


class Canvas(QGraphicsView):
    """Shows one image and its layers. Signals carry image pixel coordinates."""

    cursor_moved = Signal(object)  # (x, y, (r, g, b)) or None when off the image
    clicked = Signal(float, float)  # a click that was not a pan
    zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setMouseTracking(True)
        self.setBackgroundBrush(QColor(40, 40, 44))
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        # The scene has a wide margin for panning; scroll bars over it would only add noise.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._pixels: np.ndarray | None = None
        self._image_item: ImageItem | None = None
        self._press_pos = None
        self._fit_on_resize = True
        self.legend: tuple[str, float, float, str] | None = None  # colour map, low, high, label

    # ---------------------------------------------------------------- content
    @property
    def image_item(self) -> ImageItem | None:
        return self._image_item

    def set_pixels(self, pixels: np.ndarray | None) -> None:
        """Show a new frame (None clears); the view fits it."""
        scene = self.scene()
        scene.clear()
        self._image_item = None
        self._pixels = pixels
        self.legend = None
        if pixels is None:
            scene.setSceneRect(QRectF())
            return
        self._image_item = ImageItem(pixels)
        scene.addItem(self._image_item)
        h, w = pixels.shape[:2]
        # A margin lets the user pan an edge to the middle of the view.
        scene.setSceneRect(QRectF(-w, -h, 3 * w, 3 * h))
        self.fit()

    def pixel_at(self, x: float, y: float) -> tuple[int, int, tuple[int, int, int]] | None:
        if self._pixels is None:
            return None
        ix, iy = int(np.floor(x)), int(np.floor(y))
        h, w = self._pixels.shape[:2]
        if not (0 <= ix < w and 0 <= iy < h):
            return None
        r, g, b = (int(v) for v in self._pixels[iy, ix])
        return ix, iy, (r, g, b)

    # ---------------------------------------------------------------- zoom
    @property
    def scale_factor(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        if self._image_item is None:
            return
        self._fit_on_resize = True
        self.fitInView(self._image_item.boundingRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self.zoom_changed.emit(self.scale_factor)

    def actual_size(self) -> None:
        """1:1: one image pixel per screen pixel, centred where the view was looking."""
        centre = self.mapToScene(self.viewport().rect().center())
        self._fit_on_resize = False
        self.resetTransform()
        self.centerOn(centre)
        self.zoom_changed.emit(self.scale_factor)

    def zoom_by(self, factor: float, anchor: QPoint | None = None) -> None:
        """Scale by ``factor`` keeping the scene point under ``anchor`` (viewport pixels) fixed."""
        new = self.scale_factor * factor
        if new < MIN_SCALE or new > MAX_SCALE:
            factor = max(MIN_SCALE, min(MAX_SCALE, new)) / self.scale_factor
        if anchor is None:
            anchor = self.viewport().rect().center()
        before = self.mapToScene(anchor)
        self._fit_on_resize = False
        saved = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.scale(factor, factor)
        after = self.mapToScene(anchor)
        self.translate(after.x() - before.x(), after.y() - before.y())
        self.setTransformationAnchor(saved)
        self.zoom_changed.emit(self.scale_factor)

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y() or event.pixelDelta().y()
        if delta:
            # One notch (120) is ~20 %; the event's own position is the anchor, so the pixel under
            # the cursor stays under it.
            self.zoom_by(1.0015**delta, event.position().toPoint())
        event.accept()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit_on_resize and self._image_item is not None:
            self.fitInView(self._image_item.boundingRect(), Qt.AspectRatioMode.KeepAspectRatio)
            self.zoom_changed.emit(self.scale_factor)  # the status bar's zoom follows the refit

    # ---------------------------------------------------------------- mouse
    def mousePressEvent(self, event) -> None:
        self._press_pos = event.position()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        press, self._press_pos = self._press_pos, None
        if press is None or event.button() != Qt.MouseButton.LeftButton:
            return
        moved = event.position() - press
        if abs(moved.x()) + abs(moved.y()) <= _CLICK_SLOP_PX and self._pixels is not None:
            p = self.mapToScene(event.position().toPoint())
            if self.pixel_at(p.x(), p.y()) is not None:
                self.clicked.emit(p.x(), p.y())

    def mouseMoveEvent(self, event) -> None:
        super().mouseMoveEvent(event)
        p: QPointF = self.mapToScene(event.position().toPoint())
        self.cursor_moved.emit(self.pixel_at(p.x(), p.y()))

    def leaveEvent(self, event) -> None:
        super().leaveEvent(event)
        self.cursor_moved.emit(None)

    # ---------------------------------------------------------------- legend
    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        if self.legend is None:
            return
        name, lo, hi, label = self.legend
        painter.save()
        painter.resetTransform()  # draw in viewport pixels, independent of zoom
        w, h, margin = 180, 12, 12
        x = self.viewport().width() - w - margin
        y = self.viewport().height() - h - margin - 16
        painter.fillRect(QRectF(x - 6, y - 20, w + 12, h + 42), QColor(0, 0, 0, 150))
        grad = QLinearGradient(x, 0, x + w, 0)
        table = colormaps.lut(name)
        for i in range(0, 256, 32):
            grad.setColorAt(i / 255, QColor(*(int(v) for v in table[i])))
        grad.setColorAt(1.0, QColor(*(int(v) for v in table[255])))
        painter.fillRect(QRectF(x, y, w, h), grad)
        painter.setPen(QPen(QColor(235, 235, 235)))
        painter.drawText(QRectF(x, y - 18, w, 16), Qt.AlignmentFlag.AlignLeft, label or name)
        painter.drawText(QRectF(x, y + h + 2, w, 16), Qt.AlignmentFlag.AlignLeft, f"{lo:.3g}")
        painter.drawText(QRectF(x, y + h + 2, w, 16), Qt.AlignmentFlag.AlignRight, f"{hi:.3g}")
        painter.restore()
