"""Accepting predictions as annotations: which items, masks as polygons or not, one undo step.

:func:`acceptable_items` lists what the predictions on an image offer (boxes, masks, tags from a
classification, a caption from text); :func:`accept_command` turns the chosen ones into one core
command (provenance kept by :func:`vfmstudio.core.annotations.accept_prediction`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.core import commands as cmd
from vfmstudio.core.annotations import Accepted, LabelSet, accept_prediction
from vfmstudio.core.results import Classification, Detections, Masks, Prediction, Text
from vfmstudio.qt.layers import result_image_id


@dataclass(frozen=True)
class Item:
    prediction: Prediction
    result: int
    index: int
    text: str
    default: bool  # checked when the dialog opens


def acceptable_items(predictions: list[Prediction], image_id: str) -> list[Item]:
    out = []
    for pred in predictions:
        for r, result in enumerate(pred.results):
            if result_image_id(result, pred) != image_id:
                continue
            if isinstance(result, Detections | Masks):
                kind = "box" if isinstance(result, Detections) else "mask"
                for i in range(len(result)):
                    score = "" if result.scores is None else f" {float(result.scores[i]):.2f}"
                    out.append(Item(pred, r, i, f"{pred.tool} · {kind} · {result.labels[i]}{score}", True))
            elif isinstance(result, Classification):
                for i, label in enumerate(result.labels):
                    top = bool(result.multi_label) or i == int(result.scores.argmax())
                    out.append(Item(pred, r, i, f"{pred.tool} · tag · {label} {float(result.scores[i]):.2f}", top))
            elif isinstance(result, Text):
                short = result.text if len(result.text) <= 60 else result.text[:57] + "…"
                out.append(Item(pred, r, 0, f"{pred.tool} · caption · {short}", True))
    return out


def layer_items(items: list[Item], layer) -> list[Item]:
    """The items drawn by one layer (its prediction's result), all of them."""
    return [it for it in items if it.prediction is layer.prediction and it.prediction.results[it.result] is layer.result]


def accept_command(items: list[Item], key: str, labels: LabelSet, *, masks_as_polygons: bool = False,
                   tolerance: float = 1.0) -> cmd.Command | None:
    """One undoable step adding every chosen item to image ``key`` (None when nothing is added)."""
    merged = Accepted()
    by_prediction: dict[int, tuple[Prediction, list[tuple[int, int]]]] = {}
    for it in items:
        by_prediction.setdefault(id(it.prediction), (it.prediction, []))[1].append((it.result, it.index))
    for pred, select in by_prediction.values():
        acc = accept_prediction(pred, key, select=select, masks_as_polygons=masks_as_polygons, tolerance=tolerance)
        merged.annotations += acc.annotations
        for k, tags in acc.tags.items():
            merged.tags.setdefault(k, []).extend(tags)
        merged.captions.update(acc.captions)
    if not (merged.annotations or merged.tags or merged.captions):
        return None
    n = len(merged.annotations)
    text = f"Accept {n} annotation{'s' if n != 1 else ''}" if n else "Accept tags/caption"
    return cmd.accept(merged, labels, text)


class AcceptDialog(QDialog):
    """Check the items to accept; masks may become polygons simplified by a tolerance."""

    def __init__(self, items: list[Item], parent: QWidget | None = None, *,
                 preselect: Callable[[Item], bool] | None = None, can_refine: bool = False):
        super().__init__(parent)
        self.setWindowTitle("Accept predictions")
        self.items = items
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Checked items become annotations, tags or the caption (one undo step):", self))
        self.list = QListWidget(self)
        for it in items:
            row = QListWidgetItem(it.text, self.list)
            row.setFlags(row.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = it.default and (preselect is None or preselect(it))
            row.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        layout.addWidget(self.list, 1)
        options = QHBoxLayout()
        self.polygons = QCheckBox("Masks as polygons, tolerance", self)
        self.tolerance = QDoubleSpinBox(self)
        self.tolerance.setRange(0.0, 50.0)
        self.tolerance.setValue(1.0)
        self.tolerance.setSuffix(" px")
        options.addWidget(self.polygons)
        options.addWidget(self.tolerance)
        options.addStretch(1)
        layout.addLayout(options)
        # Refine with SAM: the checked boxes become masks (sam.refine), keeping their classes.
        self.refine = QCheckBox("Refine boxes to masks with SAM", self)
        self.refine.setVisible(can_refine and any(
            isinstance(it.prediction.results[it.result], Detections) for it in items))
        layout.addWidget(self.refine)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(520, 360)

    def chosen(self) -> list[Item]:
        return [it for i, it in enumerate(self.items)
                if self.list.item(i).checkState() == Qt.CheckState.Checked]
