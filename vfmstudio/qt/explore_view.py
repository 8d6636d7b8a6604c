"""The Explore map: every image of a folder index as a point (pyqtgraph, fast for 100k points).

Hover shows the image; Ctrl+drag draws a lasso that selects the images inside it; points are coloured
by any per-image value (outlier score, similarity to an image or a text); side lists show the
duplicate groups, the oddest images and search results. The widget only draws and reports what the
user picked (``selected``, ``open_requested``): the controller (``explore_window``) computes.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.index.layout import points_in_polygon

COLOUR_BINS = 64  # values are quantised to this many shared brushes (100k distinct brushes are slow)
POINT_SIZE = 6
PATH_ROLE = Qt.ItemDataRole.UserRole


LEGEND_ROWS = 12  # categories named in the legend; the rest are summed up in one line
KEEP_CHOICES = {"keep the first of each group": "first", "keep the largest of each group": "largest"}


class ExploreView(QWidget):
    selected = Signal(list)  # relative paths inside the lasso
    open_requested = Signal(str)  # a relative path double-clicked in a list
    remove_requested = Signal(list)  # relative paths checked in the duplicates list
    keep_changed = Signal(str)  # "first" | "largest": which copy the duplicates list keeps by default

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.folder: Path | None = None
        self.rels: list[str] = []
        self.xy = np.zeros((0, 2), np.float32)
        self.selection = np.zeros(0, bool)
        self.values: np.ndarray | None = None
        self._lasso: list[QPointF] = []

        self.plot = pg.PlotWidget(background="#202124")
        self.plot.setAspectLocked(False)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.scatter = pg.ScatterPlotItem(
            size=POINT_SIZE,
            pxMode=True,
            pen=None,
            hoverable=True,
            tip=self._tip,
            brush=pg.mkBrush(120, 170, 255, 200),
        )
        self.highlight = pg.ScatterPlotItem(
            size=POINT_SIZE + 4, pxMode=True, brush=None, pen=pg.mkPen("#ffd54f", width=1.5)
        )
        self.lasso_curve = pg.PlotCurveItem(pen=pg.mkPen("#ffd54f", width=1, style=Qt.PenStyle.DashLine))
        for item in (self.scatter, self.highlight, self.lasso_curve):
            self.plot.addItem(item)
        self.plot.viewport().installEventFilter(self)

        self.status = QLabel("no index yet")
        self.status.setWordWrap(True)
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.lists = QTabWidget()
        self.results = self._list("Results")
        self.duplicates = self._duplicates_tab()
        self.outliers = self._list("Outliers")

        splitter = QSplitter()
        splitter.addWidget(self.plot)
        splitter.addWidget(self.lists)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([700, 300])
        self.lists.setMinimumWidth(220)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.legend)
        layout.addWidget(self.status)

    def _list(self, title: str) -> QListWidget:
        widget = QListWidget()
        widget.setWordWrap(True)  # duplicate groups name several files
        widget.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        widget.itemDoubleClicked.connect(lambda item: self.open_requested.emit(item.data(PATH_ROLE)))
        self.lists.addTab(widget, title)
        return widget

    def _duplicates_tab(self) -> QTreeWidget:
        """A group per row, its files below it; a checked file is removed from the project."""
        tree = QTreeWidget()
        tree.setHeaderHidden(True)
        tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        tree.itemDoubleClicked.connect(
            lambda item, _col: item.data(0, PATH_ROLE) and self.open_requested.emit(item.data(0, PATH_ROLE))
        )
        self.keep = QComboBox()
        self.keep.addItems(list(KEEP_CHOICES))
        self.keep.setToolTip("which copy of each group stays checked-off (kept) by default")
        self.keep.currentTextChanged.connect(lambda text: self.keep_changed.emit(KEEP_CHOICES[text]))
        self.remove_button = QPushButton("Remove checked from the project")
        self.remove_button.setToolTip(
            "removes the checked images and their labels from the project (Edit › Undo brings them "
            "back); the files stay on disk"
        )
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self.checked_duplicates()))
        page = QWidget()
        box = QVBoxLayout(page)
        box.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.keep, 1)
        row.addWidget(self.remove_button)
        box.addWidget(tree, 1)
        box.addLayout(row)
        self.lists.addTab(page, "Duplicates")
        return tree

    # ------------------------------------------------------------------ data
    def set_map(self, folder: Path, rels: list[str], xy: np.ndarray) -> None:
        self.folder = Path(folder)
        self.rels = list(rels)
        self.xy = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
        self.selection = np.zeros(len(self.rels), bool)
        self.values = None
        self.scatter.setData(
            pos=self.xy, data=np.array(self.rels, dtype=object), brush=pg.mkBrush(120, 170, 255, 200)
        )
        self.highlight.setData(pos=np.zeros((0, 2)))
        self.plot.autoRange()
        self._update_status()

    def set_layout(self, xy: np.ndarray) -> None:
        """Move the same points to a new layout (a t-SNE map replacing the PCA one); the selection
        stays. The caller colours the points again."""
        xy = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
        if len(xy) != len(self.rels):
            raise ValueError(f"{len(xy)} positions for {len(self.rels)} points")
        self.xy = xy
        self.scatter.setData(pos=self.xy, data=np.array(self.rels, dtype=object))
        self.highlight.setData(pos=self.xy[self.selection])
        self.plot.autoRange()

    def colour_by(self, values: np.ndarray | None) -> None:
        """Colour each point by its value (low: dark blue, high: yellow); None: one colour."""
        self.legend.setText("")
        if values is None or len(values) != len(self.rels):
            self.values = None
            self.scatter.setBrush(pg.mkBrush(120, 170, 255, 200))
            return
        self.values = np.asarray(values, dtype=np.float32)
        lo, hi = float(np.nanmin(self.values)), float(np.nanmax(self.values))
        self.legend.setText(f"dark blue: {lo:.3f} … yellow: {hi:.3f}")
        bins = (
            np.zeros(len(self.values), int)
            if hi <= lo
            else np.clip(
                ((self.values - lo) / (hi - lo) * (COLOUR_BINS - 1)).round().astype(int), 0, COLOUR_BINS - 1
            )
        )
        cmap = pg.colormap.get("viridis")
        brushes = [pg.mkBrush(cmap.map(i / (COLOUR_BINS - 1), mode="qcolor")) for i in range(COLOUR_BINS)]
        self.scatter.setBrush([brushes[b] for b in bins])

    def set_legend(self, entries: list[tuple[str, str, int]]) -> None:
        """Name what each colour means: (colour "#rrggbb", name, how many points) rows."""
        shown = entries[:LEGEND_ROWS]
        parts = [  # colours come from the project file too: escaped like the names
            f'<span style="color:{html.escape(c)}">&#9679;</span>&nbsp;{html.escape(name)} ({n})'
            for c, name, n in shown
        ]
        rest = entries[LEGEND_ROWS:]
        if rest:
            parts.append(f"{len(rest)} more ({sum(n for _c, _name, n in rest)})")
        self.legend.setText(" &nbsp; ".join(parts))

    def colour_by_names(self, codes: np.ndarray, names: list[str], counts: list[int], colours=None) -> None:
        """Colour each point by a named category (``codes`` index ``names``) and show the legend;
        ``colours`` ("#rrggbb" per name) default to distinct hues."""
        codes = np.asarray(codes, dtype=int)
        if len(codes) != len(self.rels) or not names:
            return
        hues = max(len(names), 2)
        colours = list(colours) if colours else [pg.intColor(i, hues=hues).name() for i in range(len(names))]
        brushes = []
        for c in colours:
            colour = pg.mkColor(c)
            colour.setAlpha(220)
            brushes.append(pg.mkBrush(colour))
        self.values = codes.astype(np.float32)
        self.scatter.setBrush([brushes[c] for c in codes])
        self.set_legend(list(zip(colours, names, counts)))

    def set_duplicates(self, groups: list[dict], remove: list[list[str]]) -> None:
        """Fill the duplicates list: one row per group ({"kind", "files"}), its files checked when they
        are in that group's ``remove`` list."""
        self.duplicates.clear()
        for group, gone in zip(groups, remove):
            top = QTreeWidgetItem([f"{group['kind']}: " + ", ".join(group["files"])])
            top.setData(0, PATH_ROLE, group["files"][0] if group["files"] else None)
            for rel in group["files"]:
                child = QTreeWidgetItem([rel])
                child.setData(0, PATH_ROLE, rel)
                child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                child.setCheckState(0, Qt.CheckState.Checked if rel in gone else Qt.CheckState.Unchecked)
                top.addChild(child)
            self.duplicates.addTopLevelItem(top)
        self.remove_button.setEnabled(bool(groups))

    def checked_duplicates(self) -> list[str]:
        """The files checked for removal, each once, in list order."""
        out: dict[str, None] = {}
        for i in range(self.duplicates.topLevelItemCount()):
            top = self.duplicates.topLevelItem(i)
            for j in range(top.childCount()):
                child = top.child(j)
                if child.checkState(0) == Qt.CheckState.Checked:
                    out.setdefault(child.data(0, PATH_ROLE), None)
        return list(out)

    def set_list(self, widget: QListWidget, rows: list[tuple[str, str]]) -> None:
        """Fill a side list with (text, relative path) rows."""
        widget.clear()
        for text, rel in rows:
            item = QListWidgetItem(text)
            item.setData(PATH_ROLE, rel)
            widget.addItem(item)

    # ------------------------------------------------------------------ selection
    def select_polygon(self, polygon: np.ndarray) -> list[str]:
        """Select the points inside ``polygon`` (data coordinates); emits and returns their paths."""
        self.selection = points_in_polygon(self.xy, polygon)
        self.highlight.setData(pos=self.xy[self.selection])
        chosen = [self.rels[i] for i in np.flatnonzero(self.selection)]
        self._update_status()
        self.selected.emit(chosen)
        return chosen

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if (
            kind == QEvent.Type.MouseButtonPress
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
            and event.button() == Qt.MouseButton.LeftButton
        ):
            self._lasso = [self._to_data(event.position())]
            return True
        if kind == QEvent.Type.MouseMove and self._lasso:
            self._lasso.append(self._to_data(event.position()))
            pts = np.array([[p.x(), p.y()] for p in self._lasso + self._lasso[:1]])
            self.lasso_curve.setData(pts[:, 0], pts[:, 1])
            return True
        if kind == QEvent.Type.MouseButtonRelease and self._lasso:
            self._lasso.append(self._to_data(event.position()))
            polygon = np.array([[p.x(), p.y()] for p in self._lasso])
            self._lasso = []
            self.lasso_curve.setData([], [])
            self.select_polygon(polygon)
            return True
        return super().eventFilter(obj, event)

    def _to_data(self, pos) -> QPointF:
        scene = self.plot.mapToScene(pos.toPoint())
        return self.plot.getViewBox().mapSceneToView(scene)

    def data_to_widget(self, x: float, y: float):
        """Viewport pixel position of a data point (for tests and for placing things on the map)."""
        scene = self.plot.getViewBox().mapViewToScene(QPointF(x, y))
        return self.plot.mapFromScene(scene)

    # ------------------------------------------------------------------ display
    def _tip(self, x: float, y: float, data: object) -> str:
        rel = str(data)
        if self.folder is None:
            return html.escape(rel)
        src = html.escape((self.folder / rel).as_uri())
        return f'<img src="{src}" width="160"><br>{html.escape(rel)}'

    def _update_status(self) -> None:
        n, k = len(self.rels), int(self.selection.sum())
        hint = "Ctrl+drag to select with a lasso; hover a point to see its image"
        self.status.setText(f"{n} images{f', {k} selected' if k else ''}. {hint}")
