"""The Accept dialog: tick the items to accept; masks may become polygons or rotated boxes. What an
image offers and the command that accepts it live in :mod:`vfmstudio.session.accepting` (no Qt)."""

from __future__ import annotations

from collections.abc import Callable

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

from vfmstudio.core.results import Detections
from vfmstudio.session.accepting import Item


class AcceptDialog(QDialog):
    """Check the items to accept; masks may become polygons simplified by a tolerance."""

    def __init__(
        self,
        items: list[Item],
        parent: QWidget | None = None,
        *,
        preselect: Callable[[Item], bool] | None = None,
        can_refine: bool = False,
    ):
        super().__init__(parent)
        self.setWindowTitle("Accept predictions")
        self.items = items
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel("Checked items become annotations, tags or the caption (one undo step):", self)
        )
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
        # The smallest rotated box around each mask (oriented objects: ships, text, parts).
        self.rotated = QCheckBox("Masks as rotated boxes", self)
        self.rotated.setToolTip("each mask becomes the smallest rotated box that holds it")
        self.polygons.toggled.connect(lambda on: on and self.rotated.setChecked(False))
        self.rotated.toggled.connect(lambda on: on and self.polygons.setChecked(False))
        options.addWidget(self.polygons)
        options.addWidget(self.tolerance)
        options.addWidget(self.rotated)
        options.addStretch(1)
        layout.addLayout(options)
        # Refine with SAM: the checked boxes become masks (sam.refine), keeping their classes.
        self.refine = QCheckBox("Refine boxes to masks with SAM", self)
        self.refine.setVisible(
            can_refine and any(isinstance(it.prediction.results[it.result], Detections) for it in items)
        )
        layout.addWidget(self.refine)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(520, 360)

    def options(self) -> dict:
        """How masks are accepted: the keyword arguments of ``Labelling.accept_items``."""
        return {
            "masks_as_polygons": self.polygons.isChecked(),
            "tolerance": self.tolerance.value(),
            "masks_as_rotated_boxes": self.rotated.isChecked(),
        }

    def chosen(self) -> list[Item]:
        return [
            it for i, it in enumerate(self.items) if self.list.item(i).checkState() == Qt.CheckState.Checked
        ]
