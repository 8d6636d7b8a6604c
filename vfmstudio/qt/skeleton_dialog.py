"""Ask for a class's keypoint skeleton: names in drawing order and the edges joining them."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QWidget

from vfmstudio.core.annotations import Skeleton
from vfmstudio.session.skeletons import skeleton_text


class SkeletonDialog(QDialog):
    def __init__(self, class_name: str, skeleton: Skeleton | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Keypoints of {class_name}")
        names, edges = skeleton_text(skeleton)
        form = QFormLayout(self)
        hint = QLabel(
            "The keypoint tool (K) asks for the points in this order. Leave the names empty to draw "
            "free points.",
            self,
        )
        hint.setWordWrap(True)
        form.addRow(hint)
        self.names = QLineEdit(names, self)
        self.names.setPlaceholderText("nose, neck, left hand, right hand")
        form.addRow("Keypoints", self.names)
        self.edges = QLineEdit(edges, self)
        self.edges.setPlaceholderText("nose-neck, neck-left hand, neck-right hand")
        form.addRow("Edges", self.edges)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.resize(460, 0)


def ask_skeleton(
    parent: QWidget | None, class_name: str, skeleton: Skeleton | None
) -> tuple[str, str] | None:
    """The two fields as typed, or None when cancelled."""
    dialog = SkeletonDialog(class_name, skeleton, parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.names.text(), dialog.edges.text()
