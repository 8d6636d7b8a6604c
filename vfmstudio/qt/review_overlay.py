"""Pending predictions drawn on the canvas in review mode: the checked items of each run as a
prediction layer, the items selected in the list highlighted."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt

if TYPE_CHECKING:
    pass

LAYERS_KEPT = 4  # item subsets the overlay keeps, with their mask rasters (full-size RGBA each)


class ReviewOverlay:
    """The pending items drawn over the canvas image: the prediction-layer painters, given only the
    checked items; the items selected in the list are drawn on top with a thicker outline."""

    Z = 10_000  # above every prediction layer

    def __init__(self, window: Any):
        self.window = window
        self.items: list[Any] = []
        self._parent: Any = None
        #: What is drawn: (tool, kind, label, score) per item, for the status line and tests.
        self.drawn: list[tuple[str, str, str, float | None]] = []
        # Layers of recent item subsets (their mask rasters are rendered once): a slider moved
        # back and forth over a large image does not colour the same masks again.
        self._layers: OrderedDict[tuple, Any] = OrderedDict()

    def clear(self) -> None:
        parent = self.window.canvas.image_item
        if parent is not None and parent is self._parent:
            scene = self.window.canvas.scene()
            for item in self.items:
                scene.removeItem(item)
        # else the scene was cleared with the previous image, and its items with it
        self.items, self._parent, self.drawn = [], None, []
        self.window.canvas.viewport().update()

    def _layer(self, prediction: Any, r: int, result: Any, keep: list[int]) -> Any:
        from vfmstudio.qt.layers import Layer

        key = (id(prediction), r, tuple(keep))
        layer = self._layers.get(key)
        if layer is None or layer.prediction is not prediction:
            layer = Layer("review", prediction, _subset(result, keep), f"review {prediction.tool}")
            self._layers[key] = layer
            while len(self._layers) > LAYERS_KEPT:
                self._layers.popitem(last=False)
        else:
            self._layers.move_to_end(key)
        return layer

    def show(self, draw: list, size: tuple[int, int]) -> None:
        from vfmstudio.qt.painters import make_item

        self.clear()
        parent = self.window.canvas.image_item
        if parent is None:
            return
        self._parent = parent
        for prediction, refs, selected in draw:
            for r, result in enumerate(prediction.results):
                keep = sorted(i for rr, i in refs if rr == r)
                if not keep or not hasattr(result, "boxes_xyxy"):
                    continue
                layer = self._layer(prediction, r, result, keep)
                kind = "mask" if hasattr(result, "masks") else "box"
                for i in keep:
                    score = None if result.scores is None else float(result.scores[i])
                    self.drawn.append((prediction.tool, kind, result.labels[i], score))
                item = make_item(layer, size)
                if item is None:
                    continue
                item.setParentItem(parent)
                item.setZValue(self.Z)
                self.items.append(item)
                sel = [i for i in keep if (r, i) in selected]
                if sel:
                    self.items.append(_highlight(result, sel, parent, self.Z + 1))
        self.window.canvas.viewport().update()


def _subset(result: Any, keep: list[int]) -> Any:
    """``result`` (Detections or Masks) with only the items ``keep``."""
    from dataclasses import replace

    import numpy as np

    idx = np.asarray(keep, dtype=np.int64)
    scores = None if result.scores is None else result.scores[idx]
    labels = tuple(result.labels[i] for i in keep)
    if hasattr(result, "masks"):
        return replace(
            result, masks=result.masks[idx], labels=labels, scores=scores, boxes_xyxy=result.boxes_xyxy[idx]
        )
    return replace(result, boxes_xyxy=result.boxes_xyxy[idx], labels=labels, scores=scores)


def _highlight(result: Any, keep: list[int], parent: Any, z: float) -> Any:
    from PySide6.QtCore import QPointF, QRectF
    from PySide6.QtGui import QColor, QPen
    from PySide6.QtWidgets import QGraphicsItemGroup, QGraphicsRectItem

    group = QGraphicsItemGroup(parent)
    for i in keep:
        x0, y0, x1, y1 = (float(v) for v in result.boxes_xyxy[i])
        rect = QGraphicsRectItem(QRectF(QPointF(x0, y0), QPointF(x1, y1)), group)
        pen = QPen(QColor(255, 255, 255), 4, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        rect.setPen(pen)
    group.setZValue(z)
    return group
