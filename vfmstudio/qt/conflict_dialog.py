"""The question asked when the project changed on disk and both sides edited the same thing:
merge (keeping this window's version of those edits), save under another name, or cancel."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget


def ask_conflict(parent: QWidget | None, message: str, current: Path) -> str | Path:
    """ "merge", "cancel", or the path chosen for Save As (see ProjectSession.ask_conflict)."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Project changed on disk", message, parent=parent)
    merge = box.addButton("Merge", QMessageBox.ButtonRole.AcceptRole)
    save_as = box.addButton("Save As…", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(merge)
    box.exec()
    clicked = box.clickedButton()
    if clicked is merge:
        return "merge"
    if clicked is save_as:
        path, _ = QFileDialog.getSaveFileName(
            parent, "Save project as", str(current), "vfmstudio project (*.json)"
        )
        return Path(path) if path else "cancel"
    return "cancel"
