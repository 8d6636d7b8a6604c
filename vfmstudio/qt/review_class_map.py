"""The Review panel's class map: prediction label -> project class, per tool.

Each row is one label a tool of the image on view predicts (anywhere in the project); its combo
offers the label itself (kept as it is), the project's classes, "(drop)" and "New class…". A
choice is one undoable :class:`~vfmstudio.core.review.SetClassMap` step (with the new class, for
"New class…"), saved in the project, so it is remembered per tool and applied on every accept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from vfmstudio.core import commands as cmd
from vfmstudio.core.review import SKIP, SetClassMap

KEEP, DROP, NEW = "\x00keep", "\x00drop", "\x00new"  # combo data of the special entries


class ClassMapTable(QTableWidget):
    """``changed(tool, label, target)`` is emitted after a choice was pushed."""

    changed = Signal(str, str, object)

    def __init__(self, push: Callable[[Any], bool], parent: QWidget | None = None):
        super().__init__(0, 3, parent)
        self._push = push
        #: Asked for a new class's name (label -> name or None); tests replace the dialog.
        self.ask_class_name: Callable[[str], str | None] = self._ask_class_name_dialog
        self.setHorizontalHeaderLabels(["Tool", "Predicted", "Project class"])
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self._rows: list[tuple[str, str]] = []
        self._labels: Any = None

    def show_map(self, labels: Any, rows: list[tuple[str, str]]) -> None:
        """One row per (tool, prediction label), its combo showing the current mapping."""
        self._labels = labels
        classes = [c.name for c in labels.classes]
        signature = (tuple(rows), tuple(classes), repr(sorted(labels.class_maps.items())))
        if getattr(self, "_signature", None) == signature:
            return  # unchanged: keep the widgets (and an open combo popup)
        self._signature = signature
        self._rows = list(rows)
        self.setRowCount(0)  # drops the old rows' combos at once (not one paint later)
        self.setRowCount(len(rows))
        for r, (tool, label) in enumerate(rows):
            short = tool.rsplit(".", 1)[-1]
            tool_item = QTableWidgetItem(short)
            tool_item.setToolTip(tool)
            self.setItem(r, 0, tool_item)
            self.setItem(r, 1, QTableWidgetItem(label))
            combo = QComboBox()  # the table's viewport owns it once set
            combo.addItem(f"{label} (as predicted)", KEEP)
            for name in classes:
                if name != label:
                    combo.addItem(name, name)
            combo.addItem("(drop)", DROP)
            combo.addItem("New class…", NEW)
            target = labels.class_maps.get(tool, {}).get(label, label)
            data = KEEP if target == label else DROP if target == SKIP else target
            at = combo.findData(data)
            if at < 0:  # mapped to a class the project no longer has: still shown as it is
                combo.insertItem(1, target, target)
                at = 1
            combo.setCurrentIndex(at)
            combo.activated.connect(lambda _i, c=combo, t=tool, lab=label: self._chosen(c, t, lab))
            self.setCellWidget(r, 2, combo)
        self.resizeRowsToContents()

    def combo(self, tool: str, label: str) -> QComboBox | None:
        try:
            return self.cellWidget(self._rows.index((tool, label)), 2)
        except ValueError:
            return None

    def choose(self, tool: str, label: str, target: str | None) -> bool:
        """Map ``label`` of ``tool`` to ``target`` (None: keep the label, "": drop it), as the combo
        does; a class the project lacks is created in the same undo step."""
        labels = self._labels
        if labels is None:
            return False
        mapping = SetClassMap(tool, {label: None if target in (None, label) else target})
        if target and target != label and labels.get_class(target) is None:
            command: Any = cmd.Macro([cmd.AddClass(target), mapping], f"Map {label} to new class {target}")
        else:
            command = mapping
        ok = self._push(command)
        if ok:
            self.changed.emit(tool, label, target)
        return ok

    def _chosen(self, combo: QComboBox, tool: str, label: str) -> None:
        data = combo.currentData()
        if data == NEW:
            name = (self.ask_class_name(label) or "").strip()
            if not name:
                self._signature = None  # put the combo back to what the map says
                self.show_map(self._labels, self._rows)
                return
            target: str | None = name
        else:
            target = None if data == KEEP else SKIP if data == DROP else str(data)
        self.choose(tool, label, target)

    def _ask_class_name_dialog(self, label: str) -> str | None:
        from PySide6.QtWidgets import QInputDialog

        name, ok = QInputDialog.getText(
            self, "New class", f"Class for the predicted label {label!r}:", text=label
        )
        return name if ok else None
