"""The central views (Image, Pair, Set tabs) and the canvas items of the image on view's layers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QTabWidget, QWidget

from vfmstudio.qt.canvas import Canvas
from vfmstudio.qt.grid_view import GridView
from vfmstudio.qt.pair_view import PairView

if TYPE_CHECKING:
    from vfmstudio.core.results import Prediction
    from vfmstudio.qt.layers import LayerStore
    from vfmstudio.session.model import Placement


class CentralViews(QObject):
    """Owns the tabs; a click on any view is reported as ``clicked(x, y, view, image_ids)``."""

    clicked = Signal(float, float, str, object)  # x, y, "image" | "pair" | "set", image ids of that view

    def __init__(self, layer_store: LayerStore, images: Any, parent: QWidget):
        super().__init__(parent)
        self.images = images
        self.layer_store = layer_store
        self.canvas = Canvas(parent)
        self.pair_view = PairView(parent)
        self.grid_view = GridView(layer_store.layers, parent)
        self.tabs = QTabWidget(parent)
        self.tabs.addTab(self.canvas, "Image")
        self.tabs.addTab(self.pair_view, "Pair")
        self.tabs.addTab(self.grid_view, "Set")
        self.tabs.setDocumentMode(True)
        self.pair_ids: tuple[str, ...] = ()
        self.image_id: str | None = None
        self._items: dict[int, tuple[tuple, Any]] = {}  # layer id -> (raster key, canvas item)
        self.canvas.clicked.connect(lambda x, y: self.clicked.emit(x, y, "image", (self.image_id,)))
        self.canvas.zoom_changed.connect(self.place_labels)
        self.pair_view.clicked.connect(lambda x, y: self.clicked.emit(x, y, "pair", self.pair_ids))
        self.grid_view.clicked.connect(
            lambda x, y: self.clicked.emit(x, y, "set", tuple(self.grid_view.image_ids))
        )

    # ---------------------------------------------------------------- placement
    def show_placement(self, placement: Placement, prediction: Prediction) -> None:
        from vfmstudio.core.results import Correspondences

        ids = list(placement.image_ids)
        if placement.view == "set":
            if self.grid_view.image_ids != ids:
                images = [self.images.by_id(i) for i in ids]
                if all(im is not None for im in images):
                    self.grid_view.show_set(images)  # type: ignore[arg-type]
            self.tabs.setCurrentWidget(self.grid_view)
        elif placement.view == "pair":
            matches = prediction.of_type(Correspondences)
            src, dst = self.images.by_id(ids[0]), self.images.by_id(ids[1])
            if matches and src is not None and dst is not None:
                self.pair_view.show_pair(src.pixels, dst.pixels, matches[0])
                self.pair_ids = tuple(ids[:2])
            self.tabs.setCurrentWidget(self.pair_view)
        elif placement.view == "image" and self.image_id in ids:
            self.tabs.setCurrentWidget(self.canvas)

    def selection_changed(self, image_ids: list[str] | None) -> None:
        """The Set tab shows one set: once the selection names other images, the old set goes
        (the next set run fills it)."""
        if self.grid_view.image_ids and image_ids is not None and image_ids != self.grid_view.image_ids:
            self.grid_view.show_set([])

    # ---------------------------------------------------------------- the canvas layers
    def show_image(self, image_id: str | None, pixels: Any) -> None:
        self.image_id = image_id
        self._items.clear()  # the scene is cleared with the old image
        self.canvas.set_pixels(pixels)

    def place_labels(self, *_args: object) -> None:
        from vfmstudio.qt.painters import place_labels

        place_labels(
            [item for _, item in self._items.values() if item.isVisible()], self.canvas.transform().m11()
        )

    def item(self, layer_id: int) -> Any:
        """The canvas item drawing ``layer_id`` (None when it is not drawn)."""
        found = self._items.get(layer_id)
        return found[1] if found is not None else None

    def redraw_layers(self, size: tuple[int, int] | None) -> None:
        """Sync the canvas items with the image's layers. An item is made once per layer (and per
        colour map / stack index); visibility, opacity and z-order only update it."""
        from vfmstudio.qt.overlays import raster_key
        from vfmstudio.qt.painters import legend_for, make_item

        parent = self.canvas.image_item
        if parent is None or size is None:
            return
        layers = self.layer_store.layers(self.image_id)
        wanted = {layer.id for layer in layers}
        for layer_id in [i for i in self._items if i not in wanted]:
            _, item = self._items.pop(layer_id)
            self.canvas.scene().removeItem(item)
        legend = None
        for z, layer in enumerate(layers):
            key = raster_key(layer.result, layer.colormap, layer.layer_index)
            cached = self._items.get(layer.id)
            if cached is not None and cached[0] != key:
                self.canvas.scene().removeItem(cached[1])
                cached = None
            if cached is None:
                item = make_item(layer, size)
                if item is None:
                    continue
                item.setParentItem(parent)
                self._items[layer.id] = (key, item)
            else:
                item = cached[1]
            item.setZValue(z + 1)
            item.setOpacity(layer.opacity)
            item.setVisible(layer.visible)
            if layer.visible:
                legend = legend_for(layer) or legend
        self.place_labels()
        self.canvas.legend = legend
        self.canvas.viewport().update()


def export_layer(w: Any, layer_id: int) -> None:
    """Layers › Export: the layer as a PNG of the image's size, where the user chooses."""
    from vfmstudio.qt.painters import export_layer_png

    layer = w.layer_store.find(layer_id)
    if layer is None or w.current is None:
        return
    name = f"{(w.current_path.stem if w.current_path else layer.image_id)}-{layer.tool}-{layer.kind}.png"
    path, _ = QFileDialog.getSaveFileName(w, "Export layer as PNG", name, "PNG (*.png)")
    if path:
        export_layer_png(layer, (w.current.width, w.current.height), Path(path))
        w.messages.post("info", f"layer saved to {path}")


def cursor_text(info: Any, w: Any) -> str:
    """The status bar's text for the pixel under the cursor (or the image's name and size)."""
    if info is None:
        if w.current is not None and w.current_path is not None:
            return f"{w.current_path.name}  {w.current.width}×{w.current.height}"
        return ""
    x, y, (r, g, b) = info
    return f"x {x}  y {y}   RGB {r} {g} {b}"
