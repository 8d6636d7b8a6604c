"""Two images side by side with correspondence lines across them; hovering a line highlights it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, Qt, Signal
from PySide6.QtGui import QColor, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsLineItem, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QWidget

from vfmstudio.core.results import Correspondences
from vfmstudio.qt.imaging import qimage_from_array
from vfmstudio.qt.overlays import colour_for

GAP = 20
MAX_LINES = 400


class MatchLine(QGraphicsLineItem):
    def __init__(self, line: QLineF, colour: QColor):
        super().__init__(line)
        self.colour = colour
        self.setAcceptHoverEvents(True)
        self._pen(1.5, 200)

    def _pen(self, width: float, alpha: int) -> None:
        c = QColor(self.colour)
        c.setAlpha(alpha)
        pen = QPen(c, width)
        pen.setCosmetic(True)
        self.setPen(pen)

    def hoverEnterEvent(self, event) -> None:
        self._pen(4.0, 255)
        self.setZValue(10)

    def hoverLeaveEvent(self, event) -> None:
        self._pen(1.5, 200)
        self.setZValue(1)


class PairView(QGraphicsView):
    """``clicked`` carries a click on the left (source) image in its pixel coordinates."""

    clicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor(40, 40, 44))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.lines: list[MatchLine] = []
        self.source_size: tuple[int, int] | None = None  # (w, h)

    def show_pair(self, source: np.ndarray, target: np.ndarray, matches: Correspondences | None) -> None:
        scene = self.scene()
        scene.clear()
        self.lines = []
        self.source_size = (source.shape[1], source.shape[0])
        left = QGraphicsPixmapItem(QPixmap.fromImage(qimage_from_array(source)))
        right = QGraphicsPixmapItem(QPixmap.fromImage(qimage_from_array(target)))
        # Same display height for both, so lines are easy to follow.
        s_right = source.shape[0] / target.shape[0]
        right.setScale(s_right)
        right.setPos(source.shape[1] + GAP, 0)
        scene.addItem(left)
        scene.addItem(right)
        if matches is not None and len(matches):
            order = np.argsort(-matches.scores)[:MAX_LINES]
            for rank, i in enumerate(order):
                (sx, sy), (tx, ty) = matches.source_xy[i], matches.target_xy[i]
                line = MatchLine(
                    QLineF(
                        float(sx), float(sy), source.shape[1] + GAP + float(tx) * s_right, float(ty) * s_right
                    ),
                    QColor(*colour_for(rank)),
                )
                line.setToolTip(f"match {rank + 1}: score {float(matches.scores[i]):.3f}")
                scene.addItem(line)
                self.lines.append(line)
        self.fitInView(scene.itemsBoundingRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        if self.source_size is None or event.button() != Qt.MouseButton.LeftButton:
            return
        p = self.mapToScene(event.position().toPoint())
        w, h = self.source_size
        if 0 <= p.x() < w and 0 <= p.y() < h:
            self.clicked.emit(p.x(), p.y())

    def wheelEvent(self, event) -> None:
        f = 1.0015 ** (event.angleDelta().y() or 0)
        self.scale(f, f)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.scene().items():
            self.fitInView(self.scene().itemsBoundingRect(), Qt.AspectRatioMode.KeepAspectRatio)
