"""The Review dock's widget: the open items of the image on view (checkable, grouped by run),
the score slider, the review buttons, the masks choice and the class map. It only shows and
reports; :mod:`vfmstudio.qt.review_panel` decides."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.qt.review_class_map import ClassMapTable

if TYPE_CHECKING:
    from vfmstudio.core.review import PendingItem

SLIDER_STEPS = 100
ITEM_ROLE = Qt.ItemDataRole.UserRole  # (entry index, item ref) on a child row
KEYS_HELP = (
    "<b>A</b> accept all shown · <b>X</b>/<b>Del</b> reject all · <b>Enter</b> accept selected · "
    "<b>N</b>/<b>P</b> next/previous to review · <b>Ctrl+Z</b> undo"
)


class ReviewPanel(QWidget):
    """The dock's content; the :class:`Review` controller fills it and reacts to it."""

    slider_moved = Signal(float)
    checks_changed = Signal()

    def __init__(self, push, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel("No image", self)
        self.title.setWordWrap(True)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setToolTip("Minimum score: what is shown, and what accept all takes")
        self.slider_label = QLabel("≥ 0.00", self)
        self.slider_label.setMinimumWidth(48)
        self.slider.valueChanged.connect(self._on_slider)
        slider_row = QHBoxLayout()
        slider_row.addWidget(QLabel("Score", self))
        slider_row.addWidget(self.slider, 1)
        slider_row.addWidget(self.slider_label)

        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Prediction", "Class", "Score"])
        self.tree.setSelectionMode(QTreeWidget.SelectionMode.ExtendedSelection)
        self.tree.setRootIsDecorated(True)
        self.tree.itemChanged.connect(self._on_item_changed)

        buttons = QHBoxLayout()
        self.accept_button = QPushButton("Accept shown (A)", self)
        self.reject_button = QPushButton("Reject all (X)", self)
        self.accept_selected_button = QPushButton("Accept selected (Enter)", self)
        self.accept_selected_button.setToolTip("Accept the items selected in the list above")
        for b in (self.accept_button, self.reject_button, self.accept_selected_button):
            buttons.addWidget(b)
        nav = QHBoxLayout()
        self.previous_button = QPushButton("◀ Previous (P)", self)
        self.next_button = QPushButton("Next (N) ▶", self)
        for b in (self.previous_button, self.next_button):
            b.setToolTip("The previous / next image with predictions still to review")
            nav.addWidget(b)

        options = QHBoxLayout()
        self.masks_combo = QComboBox(self)
        self.masks_combo.addItem("masks", "mask")
        self.masks_combo.addItem("polygons", "polygon")
        self.masks_combo.addItem("rotated boxes", "rotated")
        self.masks_combo.setToolTip(
            "Accepted masks become mask annotations, simplified polygons or the smallest rotated boxes"
        )
        self.advance_check = QCheckBox("then next image", self)
        self.advance_check.setToolTip("After accept all / reject all, go to the next image to review")
        options.addWidget(QLabel("Masks as", self))
        options.addWidget(self.masks_combo)
        options.addStretch(1)
        options.addWidget(self.advance_check)

        self.class_map = ClassMapTable(push, self)
        map_box = QGroupBox("Class map (remembered per tool)", self)
        map_layout = QVBoxLayout(map_box)
        map_layout.setContentsMargins(4, 4, 4, 4)
        map_layout.addWidget(self.class_map)

        self.keys_label = QLabel(KEYS_HELP, self)
        self.keys_label.setWordWrap(True)
        self.keys_label.setTextFormat(Qt.TextFormat.RichText)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(slider_row)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        layout.addLayout(nav)
        layout.addLayout(options)
        layout.addWidget(map_box, 1)
        layout.addWidget(self.keys_label)
        self._filling = False

    @property
    def min_score(self) -> float:
        return self.slider.value() / SLIDER_STEPS

    def set_min_score(self, value: float) -> None:
        self.slider.setValue(round(max(0.0, min(1.0, value)) * SLIDER_STEPS))

    def _on_slider(self, value: int) -> None:
        self.slider_label.setText(f"≥ {value / SLIDER_STEPS:.2f}")
        self.slider_moved.emit(value / SLIDER_STEPS)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if not self._filling and column == 0 and item.data(0, ITEM_ROLE) is not None:
            self.checks_changed.emit()

    # ---------------------------------------------------------------- content
    def fill(self, groups: list[tuple[str, list[tuple[int, PendingItem, str | None, bool]]]]) -> None:
        """``groups``: (run title, [(entry index, item, mapped class or None, checked)])."""
        self._filling = True
        self.tree.clear()
        for title, rows in groups:
            top = QTreeWidgetItem([title, "", ""])
            top.setFirstColumnSpanned(True)
            self.tree.addTopLevelItem(top)
            for entry_index, it, mapped, checked in rows:
                text = it.label if it.kind != "caption" else f"“{it.label[:60]}”"
                child = QTreeWidgetItem(
                    [
                        f"{it.kind}: {text}",
                        "" if it.kind == "caption" else (mapped or "(drop)"),
                        "" if it.score is None else f"{it.score:.2f}",
                    ]
                )
                child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                child.setCheckState(0, Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
                child.setData(0, ITEM_ROLE, (entry_index, it.ref))
                top.addChild(child)
            top.setExpanded(True)
        for c in range(3):
            self.tree.resizeColumnToContents(c)
        self._filling = False

    def set_checks(self, checked: set[tuple[int, tuple[int, int]]]) -> None:
        self._filling = True
        for child in self.rows():
            want = child.data(0, ITEM_ROLE) in checked
            child.setCheckState(0, Qt.CheckState.Checked if want else Qt.CheckState.Unchecked)
        self._filling = False

    def rows(self) -> list[QTreeWidgetItem]:
        out = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            out.extend(top.child(j) for j in range(top.childCount()))
        return out

    def checked(self) -> set[tuple[int, tuple[int, int]]]:
        return {c.data(0, ITEM_ROLE) for c in self.rows() if c.checkState(0) == Qt.CheckState.Checked}

    def selected(self) -> list[tuple[int, tuple[int, int]]]:
        return [i.data(0, ITEM_ROLE) for i in self.tree.selectedItems() if i.data(0, ITEM_ROLE) is not None]
