"""The "Browse for a local folder…" entry of the Model box: picks a folder holding a checkpoint
(config.json + safetensors) and puts it in the box, as if it had been typed."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QFileDialog, QWidget

BROWSE = "\x00browse"  # item data of the entry; never a model reference
BROWSE_TEXT = "Browse for a local folder…"


def choose_folder(parent: QWidget) -> str:
    """The folder dialog (a module function so tests can replace it)."""
    return QFileDialog.getExistingDirectory(parent, "Model folder (config.json + model.safetensors)")


def add_browse_item(combo: QComboBox) -> None:
    """Append the entry to ``combo`` (call after refilling it); wires the combo once."""
    combo.addItem(BROWSE_TEXT, BROWSE)
    if combo.currentData() == BROWSE:  # the only entry became current: it is not a model
        combo.setCurrentIndex(-1)
    if combo.property("vfm_browse_wired"):
        return
    combo.setProperty("vfm_browse_wired", True)
    combo.setProperty("vfm_last_index", combo.currentIndex())

    def remember(index: int) -> None:
        if combo.itemData(index) != BROWSE:
            combo.setProperty("vfm_last_index", index)

    def activated(index: int) -> None:
        if combo.itemData(index) != BROWSE:
            return
        folder = choose_folder(combo.window())
        previous = int(combo.property("vfm_last_index"))
        if not folder:
            if previous >= 0:
                combo.setCurrentIndex(previous)
            else:
                combo.setEditText("")
            return
        existing = combo.findData(folder)
        if existing < 0:
            existing = combo.count() - 1  # just above the browse entry
            combo.insertItem(existing, folder, folder)
        combo.setCurrentIndex(existing)

    combo.currentIndexChanged.connect(remember)
    combo.activated.connect(activated)
