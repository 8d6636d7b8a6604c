"""Layers: every drawable result of a prediction, attached to the image it belongs to.

The store is keyed by image content id, so a result always lands on the image it was computed
for, whatever the view shows when it arrives. A new prediction of the same tool on the same image
replaces the old one's layers (keeping visibility, opacity and colour map), which is what makes an
interactive rerun (a threshold drag) update a layer in place instead of piling new ones up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal

from vfmstudio.core.results import (
    Correspondences,
    Detections,
    FeatureImage,
    Heatmap,
    LayerMaps,
    Masks,
    Prediction,
    Result,
)
from vfmstudio.session.model import result_image_id  # noqa: F401 - re-exported for the painters

# Result kinds drawn on the canvas; the others (text, scores, tables, rankings) go to panels.
CANVAS_KINDS = (Masks, Detections, Heatmap, FeatureImage, LayerMaps, Correspondences)
_ids = itertools.count(1)
# Outlines and boxes read best opaque; maps must let the photo show through.
DEFAULT_OPACITY = {
    "masks": 0.9,
    "detections": 1.0,
    "correspondences": 1.0,
    "heatmap": 0.55,
    "feature_image": 0.75,
    "layer_maps": 0.6,
}


@dataclass
class Layer:
    image_id: str
    prediction: Prediction
    result: Result
    name: str
    visible: bool = True
    opacity: float = -1.0  # -1: the default for the result kind
    colormap: str = "viridis"
    layer_index: int = -1  # LayerMaps: which map is shown (-1: the last)
    id: int = 0
    rasters: dict = field(default_factory=dict, repr=False)  # raster key -> RGBA, see qt/overlays.py

    def __post_init__(self) -> None:
        if self.opacity < 0:
            self.opacity = DEFAULT_OPACITY.get(self.result.kind, 0.6)
        if not self.id:
            self.id = next(_ids)

    @property
    def kind(self) -> str:
        return self.result.kind

    @property
    def tool(self) -> str:
        return self.prediction.tool


def layer_name(prediction: Prediction, result: Result) -> str:
    label = getattr(result, "label", "") or ""
    detail = f" · {label}" if label else ""
    if isinstance(result, Masks | Detections):
        detail = f" · {len(result)} item{'s' if len(result) != 1 else ''}"
    return f"{prediction.tool} {result.kind}{detail}"


class LayerStore(QObject):
    """Layers per image id; z-order is list order (last drawn on top)."""

    changed = Signal(str)  # image id
    removed = Signal(str, object)  # image id, the layers the user removed (take)
    restored = Signal(str, object)  # image id, the layers put back (undo)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._by_image: dict[str, list[Layer]] = {}

    def layers(self, image_id: str | None) -> list[Layer]:
        return list(self._by_image.get(image_id, [])) if image_id else []

    def find(self, layer_id: int) -> Layer | None:
        for layers in self._by_image.values():
            for layer in layers:
                if layer.id == layer_id:
                    return layer
        return None

    def add_prediction(self, prediction: Prediction, rasters: dict | None = None) -> list[Layer]:
        """Add the canvas results of ``prediction``; replaces the same tool's layers on those images.

        ``rasters`` (result index -> (raster key, RGBA)) are rasters already rendered off the GUI thread.
        """
        fresh: dict[str, list[Layer]] = {}
        for index, result in enumerate(prediction.results):
            if not isinstance(result, CANVAS_KINDS):
                continue
            image_id = result_image_id(result, prediction)
            if image_id is None:
                continue
            layer = Layer(image_id, prediction, result, layer_name(prediction, result))
            if rasters and index in rasters:
                key, raster = rasters[index]
                layer.rasters[key] = raster
            fresh.setdefault(image_id, []).append(layer)
        for image_id, new_layers in fresh.items():
            existing = self._by_image.setdefault(image_id, [])
            old = [layer for layer in existing if layer.tool == prediction.tool]
            for new in new_layers:  # carry the user's settings over from the layer it replaces
                match = next((o for o in old if o.kind == new.kind), None)
                if match is not None:
                    old.remove(match)
                    new.visible, new.opacity, new.colormap = match.visible, match.opacity, match.colormap
                    if isinstance(new.result, LayerMaps) and match.layer_index < len(new.result.names):
                        new.layer_index = match.layer_index
            position = next(
                (i for i, layer in enumerate(existing) if layer.tool == prediction.tool), len(existing)
            )
            kept = [layer for layer in existing if layer.tool != prediction.tool]
            position = min(position, len(kept))
            self._by_image[image_id] = kept[:position] + new_layers + kept[position:]
            self.changed.emit(image_id)
        return [layer for layers in fresh.values() for layer in layers]

    def remove(self, layer_id: int) -> None:
        for image_id, layers in self._by_image.items():
            for layer in layers:
                if layer.id == layer_id:
                    layers.remove(layer)
                    self.changed.emit(image_id)
                    return

    def move(self, layer_id: int, delta: int) -> None:
        """Raise (+1) or lower (-1) a layer in the z-order."""
        for image_id, layers in self._by_image.items():
            for i, layer in enumerate(layers):
                if layer.id == layer_id:
                    j = max(0, min(len(layers) - 1, i + delta))
                    layers.insert(j, layers.pop(i))
                    self.changed.emit(image_id)
                    return

    def update(self, layer_id: int, **changes) -> None:
        layer = self.find(layer_id)
        if layer is None:
            return
        for name, value in changes.items():
            setattr(layer, name, value)
        self.changed.emit(layer.image_id)

    def take(self, image_id: str, layer_ids: list[int] | None = None) -> list[tuple[int, Layer]]:
        """Remove layers of ``image_id`` (all when ``layer_ids`` is None); returns them with their
        positions, for :meth:`put_back` (undo)."""
        layers = self._by_image.get(image_id, [])
        taken = [(i, layer) for i, layer in enumerate(layers) if layer_ids is None or layer.id in layer_ids]
        if not taken:
            return []
        self._by_image[image_id] = [layer for layer in layers if all(layer is not t for _, t in taken)]
        self.removed.emit(image_id, [layer for _, layer in taken])
        self.changed.emit(image_id)
        return taken

    def put_back(self, image_id: str, taken: list[tuple[int, Layer]]) -> None:
        layers = self._by_image.setdefault(image_id, [])
        for position, layer in taken:
            layers.insert(min(position, len(layers)), layer)
        self.restored.emit(image_id, [layer for _, layer in taken])
        self.changed.emit(image_id)

    def clear_image(self, image_id: str) -> None:
        if self._by_image.pop(image_id, None):
            self.changed.emit(image_id)

    def clear(self) -> None:
        ids = list(self._by_image)
        self._by_image.clear()
        for image_id in ids:
            self.changed.emit(image_id)
