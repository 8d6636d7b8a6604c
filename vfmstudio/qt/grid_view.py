"""A grid of the images of one set-tool run (joint PCA, similarity), each with its own layers.

Clicking on the first tile (the source of a point query) emits ``clicked`` in that image's pixel
coordinates, so the window can rerun a point tool on cached features and update every tile.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QWidget,
)

from vfmstudio.core.image import LoadedImage
from vfmstudio.core.results import Correspondences
from vfmstudio.qt.canvas import ImageItem
from vfmstudio.qt.layers import Layer
from vfmstudio.qt.painters import make_item, target_markers

TILE_HEIGHT = 400.0
GAP = 16.0


class GridView(QGraphicsView):
    clicked = Signal(float, float)  # pixel coordinates on the first image

    def __init__(self, layers_for: Callable[[str], list[Layer]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor(40, 40, 44))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.layers_for = layers_for
        self.images: list[LoadedImage] = []
        self.tiles: list[ImageItem] = []

    @property
    def image_ids(self) -> list[str]:
        return [im.id for im in self.images]

    def show_set(self, images: list[LoadedImage]) -> None:
        self.images = list(images)
        scene = self.scene()
        scene.clear()
        self.tiles = []
        cols = max(1, math.ceil(math.sqrt(len(images))))
        x = y = row_h = 0.0
        for i, image in enumerate(images):
            if i and i % cols == 0:
                x, y, row_h = 0.0, y + row_h + GAP, 0.0
            tile = ImageItem(image.pixels)
            scale = TILE_HEIGHT / image.height
            tile.setScale(scale)
            tile.setPos(x, y)
            scene.addItem(tile)
            self.tiles.append(tile)
            caption = QGraphicsSimpleTextItem(
                f"{i + 1}. {image.name}" + ("  (source: click here)" if i == 0 else "")
            )
            caption.setBrush(QColor(235, 235, 235))
            caption.setPos(x, y - 18)
            scene.addItem(caption)
            if i == 0:
                frame = QGraphicsRectItem(QRectF(x - 2, y - 2, image.width * scale + 4, TILE_HEIGHT + 4))
                pen = QPen(QColor(230, 140, 40), 2)
                pen.setCosmetic(True)
                frame.setPen(pen)
                scene.addItem(frame)
            x += image.width * scale + GAP
            row_h = max(row_h, TILE_HEIGHT + 20)
        self.refresh_layers()
        self.fitInView(scene.itemsBoundingRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def refresh_layers(self, image_id: str | None = None) -> None:
        for image, tile in zip(self.images, self.tiles):
            if image_id is not None and image.id != image_id:
                continue
            for child in tile.childItems():
                child.setParentItem(None)
                self.scene().removeItem(child)
            for z, layer in enumerate(self.layers_for(image.id)):
                item = make_item(layer, (image.width, image.height))
                if item is not None:
                    item.setZValue(z + 1)
                    item.setParentItem(tile)
            # Matches found *on* this image for a point of another one (similarity's best match).
            for other in self.images:
                for layer in self.layers_for(other.id):
                    r = layer.result
                    if isinstance(r, Correspondences) and r.target_image == image.id and layer.visible:
                        markers = target_markers(r)
                        markers.setZValue(1000)
                        markers.setParentItem(tile)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        if not self.tiles or event.button() != Qt.MouseButton.LeftButton:
            return
        p = self.tiles[0].mapFromScene(self.mapToScene(event.position().toPoint()))
        first = self.images[0]
        if 0 <= p.x() < first.width and 0 <= p.y() < first.height:
            self.clicked.emit(p.x(), p.y())

    def wheelEvent(self, event) -> None:
        f = 1.0015 ** (event.angleDelta().y() or 0)
        self.scale(f, f)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.tiles:
            self.fitInView(self.scene().itemsBoundingRect(), Qt.AspectRatioMode.KeepAspectRatio)
