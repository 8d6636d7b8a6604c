"""The image browser dock: a filterable list of images with thumbnails, next/previous."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.qt.thumbnails import THUMB_SIZE, ThumbnailLoader

PATH_ROLE = Qt.ItemDataRole.UserRole


class ImageBrowser(QWidget):
    """Lists image files. ``current_changed(path)`` fires when the current image changes."""

    current_changed = Signal(object)  # Path or None

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter by name…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._apply_filter)
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(THUMB_SIZE // 2, THUMB_SIZE // 2))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setUniformItemSizes(True)
        self.list.currentItemChanged.connect(self._on_current)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.list)
        self.thumbnails = ThumbnailLoader(self)
        self.thumbnails.ready.connect(self._on_thumbnail)
        self.thumbnails.failed.connect(self._on_no_thumbnail)
        self._items: dict[str, QListWidgetItem] = {}
        self._with_thumbnail: set[str] = set()
        # Every row starts with an icon of the final size: with uniform item sizes, a row without
        # one (an unreadable file, a thumbnail not made yet) would set a collapsed height for all.
        blank = QPixmap(self.list.iconSize())
        blank.fill(Qt.GlobalColor.transparent)
        self._blank = QIcon(blank)

    # ---------------------------------------------------------------- content
    def set_paths(self, paths: list[Path]) -> None:
        self.thumbnails.reset()
        self.list.blockSignals(True)
        self.list.clear()
        self._items.clear()
        self._with_thumbnail.clear()
        for p in paths:
            item = QListWidgetItem(self._blank, p.name)
            item.setData(PATH_ROLE, str(p))
            item.setToolTip(str(p))
            self.list.addItem(item)
            self._items[str(p)] = item
        self.list.blockSignals(False)
        self._apply_filter(self.filter_edit.text())
        self.thumbnails.request(paths)
        if paths:
            self.list.setCurrentRow(0)
        else:
            self.current_changed.emit(None)

    def paths(self) -> list[Path]:
        return [Path(self.list.item(i).data(PATH_ROLE)) for i in range(self.list.count())]

    def current_path(self) -> Path | None:
        item = self.list.currentItem()
        return Path(item.data(PATH_ROLE)) if item is not None else None

    def selected_paths(self) -> list[Path]:
        """Selected images in list order (the first is the source of a pair)."""
        rows = sorted(self.list.row(i) for i in self.list.selectedItems())
        return [Path(self.list.item(r).data(PATH_ROLE)) for r in rows]

    def has_thumbnail(self, path: Path) -> bool:
        item = self._items.get(str(path))
        return item is not None and str(path) in self._with_thumbnail

    def thumbnail(self, path: Path) -> QIcon | None:
        item = self._items.get(str(path))
        return item.icon() if item is not None and str(path) in self._with_thumbnail else None

    def select_paths(self, paths: list[Path]) -> int:
        """Select exactly these images (e.g. a lasso on the Explore map); returns how many were found."""
        items = [self._items.get(str(p)) for p in paths]
        items = [it for it in items if it is not None]
        self.list.clearSelection()
        for it in items:
            it.setHidden(False)
            it.setSelected(True)
        if items:
            self.list.scrollToItem(items[0])
        return len(items)

    def select_path(self, path: Path) -> bool:
        """Make ``path`` the current image (shown even if the filter hid it)."""
        item = self._items.get(str(path))
        if item is None:
            return False
        item.setHidden(False)
        self.list.setCurrentItem(item)
        return True

    # ---------------------------------------------------------------- navigation
    def step(self, delta: int) -> None:
        """Next (+1) / previous (-1) visible image, stopping at the ends."""
        rows = [i for i in range(self.list.count()) if not self.list.item(i).isHidden()]
        if not rows:
            return
        cur = self.list.currentRow()
        later = [r for r in rows if (r > cur if delta > 0 else r < cur)]
        if later:
            self.list.setCurrentRow(later[0] if delta > 0 else later[-1])

    # ---------------------------------------------------------------- slots
    def _apply_filter(self, text: str) -> None:
        needle = text.strip().casefold()
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setHidden(bool(needle) and needle not in item.text().casefold())

    def _on_current(self, current: QListWidgetItem | None, _previous) -> None:
        self.current_changed.emit(Path(current.data(PATH_ROLE)) if current is not None else None)

    def _on_thumbnail(self, path: str, image: QImage) -> None:
        item = self._items.get(path)
        if item is not None:
            self._with_thumbnail.add(path)
            item.setIcon(QIcon(QPixmap.fromImage(image)))

    def _on_no_thumbnail(self, path: str) -> None:
        item = self._items.get(path)
        if item is not None:
            item.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
            item.setToolTip(f"{path}\ncannot be read as an image")
