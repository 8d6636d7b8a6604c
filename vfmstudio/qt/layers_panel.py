"""The layers dock: the current image's layers with visibility, opacity, colour map, z-order,
delete and PNG export, a layer slider for layer maps, and the live threshold histogram."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSlider,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.core.render import COLORMAPS
from vfmstudio.core.results import Heatmap, LayerMaps
from vfmstudio.qt.histogram import HistogramView
from vfmstudio.qt.layers import Layer, LayerStore

LAYER_ROLE = Qt.ItemDataRole.UserRole


class RemoveLayers(QUndoCommand):
    """Deleting or clearing layers, undoable (the predictions they drew come back with them)."""

    def __init__(self, store: LayerStore, image_id: str, layer_ids: list[int] | None, text: str):
        super().__init__(text)
        self.store, self.image_id, self.layer_ids = store, image_id, layer_ids
        self.taken: list = []

    def redo(self) -> None:
        self.taken = self.store.take(self.image_id, self.layer_ids)

    def undo(self) -> None:
        self.store.put_back(self.image_id, self.taken)


class LayersPanel(QWidget):
    export_requested = Signal(int)  # layer id
    layer_scrubbed = Signal(int, int)  # layer id, stack index: lets the window rerun "layer" tools

    def __init__(self, store: LayerStore, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.image_id: str | None = None
        self._selected_key: tuple[str, str] | None = None
        style = QApplication.style()
        self.list = QListWidget(self)
        self.list.setMinimumHeight(60)
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.itemChanged.connect(self._on_item_changed)

        def button(icon, tip, slot) -> QToolButton:
            b = QToolButton(self)
            b.setIcon(style.standardIcon(icon))
            b.setToolTip(tip)
            b.clicked.connect(slot)
            return b

        self.up_button = button(QStyle.StandardPixmap.SP_ArrowUp, "Raise layer", lambda: self._move(+1))
        self.down_button = button(QStyle.StandardPixmap.SP_ArrowDown, "Lower layer", lambda: self._move(-1))
        self.delete_button = button(QStyle.StandardPixmap.SP_TrashIcon, "Delete layer", self._delete)
        self.export_button = button(
            QStyle.StandardPixmap.SP_DialogSaveButton, "Export layer as PNG", self._export
        )
        self.clear_button = button(
            QStyle.StandardPixmap.SP_DialogResetButton, "Remove every layer of this image", self._clear
        )
        # Layer removals have their own history (they are not label edits of the project).
        self.undo_stack = QUndoStack(self)
        self.undo_action = self.undo_stack.createUndoAction(self, "Undo")
        self.undo_button = QToolButton(self)
        self.undo_button.setDefaultAction(self.undo_action)
        self.undo_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_ArrowBack))
        buttons = QHBoxLayout()
        for b in (
            self.up_button,
            self.down_button,
            self.delete_button,
            self.export_button,
            self.clear_button,
            self.undo_button,
        ):
            buttons.addWidget(b)
        buttons.addStretch(1)

        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.valueChanged.connect(lambda v: self._set(opacity=v / 100))
        self.colormap = QComboBox(self)
        self.colormap.addItems(list(COLORMAPS))
        self.colormap.currentTextChanged.connect(lambda name: self._set(colormap=name))
        self.layer_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.layer_slider.setObjectName("layer_slider")
        self.layer_slider.valueChanged.connect(self._on_layer_slider)
        self.layer_name = QLabel(self)
        form = QFormLayout()
        form.addRow("Opacity", self.opacity)
        form.addRow("Colours", self.colormap)
        form.addRow("Layer", self.layer_slider)
        form.addRow("", self.layer_name)

        self.histogram = HistogramView(self)
        self.histogram_box = QGroupBox("Live threshold (drag)", self)
        hl = QVBoxLayout(self.histogram_box)
        hl.setContentsMargins(4, 4, 4, 4)
        hl.addWidget(self.histogram)
        self.histogram_box.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        layout.addLayout(form)
        layout.addWidget(self.histogram_box)
        store.changed.connect(self._on_store_changed)
        self._sync_controls()

    # ---------------------------------------------------------------- content
    def show_image(self, image_id: str | None) -> None:
        self.image_id = image_id
        self._rebuild()

    def selected_layer(self) -> Layer | None:
        item = self.list.currentItem()
        return self.store.find(item.data(LAYER_ROLE)) if item is not None else None

    def _on_store_changed(self, image_id: str) -> None:
        if image_id == self.image_id:
            self._rebuild()

    def _on_current_changed(self, *_args) -> None:
        layer = self.selected_layer()
        if layer is not None:
            # Remembered by tool and kind: a rerun replaces the layer, the selection stays on its successor.
            self._selected_key = (layer.tool, layer.kind)
        self._sync_controls()

    def _rebuild(self) -> None:
        keep_key = self._selected_key
        self.list.blockSignals(True)
        self.list.clear()
        select_row = 0
        # Top of the list = top of the z-order, as in image editors.
        for row, layer in enumerate(reversed(self.store.layers(self.image_id))):
            item = QListWidgetItem(layer.name)
            item.setData(LAYER_ROLE, layer.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
            self.list.addItem(item)
            if keep_key == (layer.tool, layer.kind):
                select_row = row
        if self.list.count():
            self.list.setCurrentRow(select_row)
        self.list.blockSignals(False)
        self._sync_controls()

    def _sync_controls(self) -> None:
        layer = self.selected_layer()
        has = layer is not None
        for w in (self.up_button, self.down_button, self.delete_button, self.export_button, self.opacity):
            w.setEnabled(has)
        is_map = has and isinstance(layer.result, Heatmap | LayerMaps)
        self.colormap.setEnabled(is_map)
        stack = has and isinstance(layer.result, LayerMaps)
        self.layer_slider.setEnabled(stack)
        for w in (self.opacity, self.colormap, self.layer_slider):
            w.blockSignals(True)
        if has:
            self.opacity.setValue(round(layer.opacity * 100))
            self.colormap.setCurrentText(layer.colormap)
        if stack:
            n = layer.result.values.shape[0]
            self.layer_slider.setRange(0, n - 1)
            self.layer_slider.setValue(layer.layer_index % n)
            self.layer_name.setText(layer.result.names[layer.layer_index % n])
        else:
            self.layer_slider.setRange(0, 0)
            self.layer_name.setText("")
        for w in (self.opacity, self.colormap, self.layer_slider):
            w.blockSignals(False)

    # ---------------------------------------------------------------- edits
    def _set(self, **changes) -> None:
        layer = self.selected_layer()
        if layer is not None:
            self.store.update(layer.id, **changes)

    def _on_layer_slider(self, index: int) -> None:
        layer = self.selected_layer()
        if layer is None:
            return
        self.store.update(layer.id, layer_index=index)
        self.layer_name.setText(layer.result.names[index % len(layer.result.names)])
        self.layer_scrubbed.emit(layer.id, index)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        self.store.update(item.data(LAYER_ROLE), visible=item.checkState() == Qt.CheckState.Checked)

    def _move(self, delta: int) -> None:
        layer = self.selected_layer()
        if layer is not None:
            self.store.move(layer.id, delta)

    def _delete(self) -> None:
        layer = self.selected_layer()
        if layer is not None:
            self.undo_stack.push(
                RemoveLayers(self.store, layer.image_id, [layer.id], f"Delete layer {layer.name}")
            )

    def _clear(self) -> None:
        if self.image_id is not None and self.store.layers(self.image_id):
            self.undo_stack.push(RemoveLayers(self.store, self.image_id, None, "Clear layers"))

    def _export(self) -> None:
        layer = self.selected_layer()
        if layer is not None:
            self.export_requested.emit(layer.id)
