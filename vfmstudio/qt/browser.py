"""The image browser dock: a filterable list of images with thumbnails, next/previous.

Each row may carry a review state (unlabelled, labelled, predicted, reviewed: a coloured dot at its
right end) and the classes on its image, set by the review side (:mod:`vfmstudio.qt.review_states`);
the list then filters by name, state and class together. Filtering reads only cached row data and
touches only the rows whose visibility changes, so a 10 000-image list filters in a few ms.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.qt.thumbnails import THUMB_SIZE, ThumbnailLoader

PATH_ROLE = Qt.ItemDataRole.UserRole
STATE_ROLE = Qt.ItemDataRole.UserRole + 1  # the row's review state ("" when none is known)
#: The review states in the order the state filter offers them, with their marker colours.
STATE_COLOURS = {
    "unlabelled": "#9e9e9e",
    "labelled": "#2e7d32",
    "predicted": "#f9a825",
    "reviewed": "#1565c0",
}
ALL = ""  # the state / class combos' "no filter" entry


class StateMarkerDelegate(QStyledItemDelegate):
    """Draws the row as usual plus a small dot in its review state's colour at the right end."""

    RADIUS = 4

    def paint(self, painter: QPainter, option, index) -> None:
        super().paint(painter, option, index)
        colour = STATE_COLOURS.get(index.data(STATE_ROLE) or "")
        if colour is None:
            return
        r = self.RADIUS
        rect = option.rect
        dot = QRect(rect.right() - 3 * r, rect.center().y() - r, 2 * r, 2 * r)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(QColor(colour)))
        painter.drawEllipse(dot)
        painter.restore()


class ImageBrowser(QWidget):
    """Lists image files. ``current_changed(path)`` fires when the current image changes."""

    current_changed = Signal(object)  # Path or None
    listed = Signal()  # set_paths filled the list (the review side then sets the rows' states)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter by name…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._apply_filter)
        self.state_combo = QComboBox(self)
        self.state_combo.setToolTip("Show only images in this review state")
        self.state_combo.addItem("All states", ALL)
        for state, colour in STATE_COLOURS.items():
            self.state_combo.addItem(_dot_icon(colour), state.capitalize(), state)
        self.state_combo.currentIndexChanged.connect(lambda _i: self._apply_filter())
        self.class_combo = QComboBox(self)
        self.class_combo.setToolTip("Show only images with this class (labels or open predictions)")
        self.class_combo.addItem("All classes", ALL)
        self.class_combo.currentIndexChanged.connect(lambda _i: self._apply_filter())
        filters = QHBoxLayout()
        filters.setContentsMargins(0, 0, 0, 0)
        filters.addWidget(self.state_combo, 1)
        filters.addWidget(self.class_combo, 1)
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(THUMB_SIZE // 2, THUMB_SIZE // 2))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setUniformItemSizes(True)
        self.list.currentItemChanged.connect(self._on_current)
        self.list.setItemDelegate(StateMarkerDelegate(self.list))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter_edit)
        layout.addLayout(filters)
        layout.addWidget(self.list)
        self.thumbnails = ThumbnailLoader(self)
        self.thumbnails.ready.connect(self._on_thumbnail)
        self.thumbnails.failed.connect(self._on_no_thumbnail)
        self._items: dict[str, QListWidgetItem] = {}
        self._with_thumbnail: set[str] = set()
        self._names: dict[str, str] = {}  # path -> casefolded file name (the name filter's haystack)
        self._states: dict[str, str] = {}  # path -> review state (mirrors STATE_ROLE, cheaper to read)
        self._classes: dict[str, frozenset[str]] = {}  # path -> classes on the image (class filter)
        self._hidden: set[str] = set()  # paths of hidden rows (mirrors isHidden, cheaper to read)
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
        self._names.clear()
        self._states.clear()
        self._classes.clear()
        self._hidden.clear()
        for p in paths:
            item = QListWidgetItem(self._blank, p.name)
            item.setData(PATH_ROLE, str(p))
            item.setToolTip(str(p))
            self.list.addItem(item)
            self._items[str(p)] = item
            self._names[str(p)] = p.name.casefold()
        self.list.blockSignals(False)
        self.listed.emit()
        self._apply_filter()
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
            self._set_hidden(it.data(PATH_ROLE), it, False)
            it.setSelected(True)
        if items:
            self.list.scrollToItem(items[0])
        return len(items)

    def select_path(self, path: Path) -> bool:
        """Make ``path`` the current image (shown even if the filter hid it)."""
        item = self._items.get(str(path))
        if item is None:
            return False
        self._set_hidden(str(path), item, False)
        self.list.setCurrentItem(item)
        return True

    # ---------------------------------------------------------------- review state and class
    def set_review(self, rows: dict[str, tuple[str, frozenset[str]]], classes: list[str]) -> None:
        """Every row's (review state, classes), by path string, and the class filter's choices;
        rows not named lose their state. Filters once at the end."""
        for path, item in self._items.items():
            state, cls = rows.get(path, ("", frozenset()))
            self._set_row(path, item, state, cls)
        self.set_class_choices(classes)
        self._apply_filter()

    def update_review(self, path: str, state: str, classes: frozenset[str]) -> None:
        """One row's state changed: repaint and re-filter that row only. The current row stays
        visible (it would otherwise vanish under the user while the filter no longer matches)."""
        item = self._items.get(path)
        if item is None:
            return
        self._set_row(path, item, state, classes)
        hide = not self._matches(path, item, *self._filters())
        if not (hide and item is self.list.currentItem()):
            self._set_hidden(path, item, hide)

    def review_state(self, path: Path | str) -> str:
        return self._states.get(str(path), "")

    def set_class_choices(self, classes: list[str]) -> None:
        """The class filter's entries (the chosen one is kept when it is still offered)."""
        combo = self.class_combo
        chosen = combo.currentData()
        wanted = [ALL, *classes]
        if [combo.itemData(i) for i in range(combo.count())] == wanted:
            return
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("All classes", ALL)
        for name in classes:
            combo.addItem(name, name)
        at = combo.findData(chosen)
        combo.setCurrentIndex(max(at, 0))
        combo.blockSignals(False)
        if at < 0 and chosen:
            self._apply_filter()

    def set_filters(self, *, state: str | None = None, cls: str | None = None) -> None:
        """Choose the state / class filter ("" for all), as the combos do."""
        for combo, value in ((self.state_combo, state), (self.class_combo, cls)):
            if value is not None:
                at = combo.findData(value)
                if at < 0:
                    raise ValueError(f"{value!r} is not offered by the filter")
                combo.setCurrentIndex(at)

    def visible_paths(self) -> list[Path]:
        """The rows the filters show, in list order."""
        return [Path(p) for p in self.visible_rows()]

    def visible_rows(self) -> list[str]:
        """The path strings of the rows the filters show, in list order (no Path objects: cheap)."""
        return [p for p in self._items if p not in self._hidden]

    def _set_row(self, path: str, item: QListWidgetItem, state: str, classes: frozenset[str]) -> None:
        self._classes[path] = classes
        if self._states.get(path, "") != state:
            self._states[path] = state
            item.setData(STATE_ROLE, state)
            if "cannot be read" not in item.toolTip():  # an unreadable file keeps saying so
                item.setToolTip(f"{path}\n{state}" if state else path)

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
    def _filters(self) -> tuple[str, str, str]:
        return (
            self.filter_edit.text().strip().casefold(),
            self.state_combo.currentData() or ALL,
            self.class_combo.currentData() or ALL,
        )

    def _matches(self, path: str, item: QListWidgetItem, needle: str, state: str, cls: str) -> bool:
        if needle and needle not in self._names.get(path, ""):
            return False
        if state and self._states.get(path, "") != state:
            return False
        return not cls or cls in self._classes.get(path, ())

    def _apply_filter(self, _text: str | None = None) -> None:
        filters = self._filters()
        for path, item in self._items.items():
            self._set_hidden(path, item, not self._matches(path, item, *filters))

    def _set_hidden(self, path: str, item: QListWidgetItem, hide: bool) -> None:
        if hide != (path in self._hidden):  # setHidden relayouts the view: only where it changes
            item.setHidden(hide)
            if hide:
                self._hidden.add(path)
            else:
                self._hidden.discard(path)

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


def _dot_icon(colour: str) -> QIcon:
    pixmap = QPixmap(10, 10)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QBrush(QColor(colour)))
    painter.drawEllipse(1, 1, 8, 8)
    painter.end()
    return QIcon(pixmap)
