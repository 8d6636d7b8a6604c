"""A histogram with a draggable threshold line (e.g. DINOv2's first PCA component).

Dragging emits ``threshold_dragged`` continuously (the window reruns the tool on cached features
with a supersede key, so only the newest value is computed); releasing emits ``threshold_released``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from vfmstudio.core.results import Histogram

_PAD = 6


class HistogramView(QWidget):
    threshold_dragged = Signal(float)
    threshold_released = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.setCursor(Qt.CursorShape.SizeHorCursor)
        self.histogram: Histogram | None = None
        self.threshold: float | None = None
        self._dragging = False

    def set_histogram(self, hist: Histogram | None, threshold: float | None = None) -> None:
        self.histogram = hist
        if threshold is None and hist is not None:
            threshold = hist.threshold
        if not self._dragging:  # a result arriving mid-drag must not yank the line back
            self.threshold = threshold
        self.update()

    # ---------------------------------------------------------------- geometry
    def _plot_rect(self) -> QRectF:
        return QRectF(_PAD, _PAD, max(1, self.width() - 2 * _PAD), max(1, self.height() - 2 * _PAD - 12))

    def value_at(self, x: float) -> float:
        hist = self.histogram
        assert hist is not None
        r = self._plot_rect()
        lo, hi = float(hist.edges[0]), float(hist.edges[-1])
        t = min(1.0, max(0.0, (x - r.left()) / r.width()))
        return lo + t * (hi - lo)

    def x_of(self, value: float) -> float:
        hist = self.histogram
        assert hist is not None
        r = self._plot_rect()
        lo, hi = float(hist.edges[0]), float(hist.edges[-1])
        return r.left() + (value - lo) / (hi - lo) * r.width()

    # ---------------------------------------------------------------- painting
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().base())
        hist = self.histogram
        if hist is None or hist.counts.size == 0:
            p.setPen(self.palette().mid().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no histogram")
            return
        r = self._plot_rect()
        counts = hist.counts
        top = float(counts.max()) or 1.0
        edges = hist.edges
        lo, hi = float(edges[0]), float(edges[-1])
        thr = self.threshold
        for c, e0, e1 in zip(counts, edges[:-1], edges[1:]):
            x0 = r.left() + (e0 - lo) / (hi - lo) * r.width()
            x1 = r.left() + (e1 - lo) / (hi - lo) * r.width()
            h = float(c) / top * r.height()
            above = thr is not None and (e0 + e1) / 2 >= thr
            p.fillRect(
                QRectF(x0, r.bottom() - h, max(1.0, x1 - x0 - 0.5), h),
                QColor(230, 140, 40) if above else QColor(110, 130, 160),
            )
        if thr is not None:
            x = self.x_of(thr)
            p.setPen(QPen(QColor(220, 40, 40), 2))
            p.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()))
        p.setPen(self.palette().text().color())
        p.drawText(QRectF(r.left(), r.bottom() + 1, r.width(), 12), Qt.AlignmentFlag.AlignLeft, f"{lo:.3g}")
        p.drawText(QRectF(r.left(), r.bottom() + 1, r.width(), 12), Qt.AlignmentFlag.AlignRight, f"{hi:.3g}")
        if thr is not None:
            label = f"{hist.label + ' ' if hist.label else ''}threshold {thr:.3g}"
            p.drawText(QRectF(r.left(), r.bottom() + 1, r.width(), 12), Qt.AlignmentFlag.AlignHCenter, label)

    # ---------------------------------------------------------------- dragging
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.histogram is None or event.button() != Qt.MouseButton.LeftButton:
            return
        self._dragging = True
        self._move_to(event.position().x())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._dragging:
            self._move_to(event.position().x())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._dragging:
            self._dragging = False
            self._move_to(event.position().x(), final=True)

    def _move_to(self, x: float, final: bool = False) -> None:
        # Four significant digits: a pixel of drag is coarser than that, and the Threshold field,
        # the run and the mask then agree on one short number (not 0.2482517510652542).
        value = float(f"{float(np.float32(self.value_at(x))):.4g}")
        changed = value != self.threshold
        self.threshold = value
        self.update()
        if final:
            self.threshold_released.emit(value)
        elif changed:
            self.threshold_dragged.emit(value)
