"""View › Explore Folder…: builds the folder index in the background and shows its map.

Every model call runs as a job on the window's inference runner (one owner of models): updating the
index (with progress and Cancel), a text query. What a job returns is plain data (``ExploreData``);
this window hands it to :class:`~vfmstudio.qt.explore_view.ExploreView`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.qt.explore_view import KEEP_CHOICES, ExploreView

DEFAULT_MODELS = ("facebook/dinov2-small", "openai/clip-vit-base-patch32")


@dataclass
class ExploreData:
    """What the index job returns: one row per file (copies of one content share a point)."""

    rels: list[str]
    xy: np.ndarray
    outlier: np.ndarray
    duplicates: list[dict] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    text_search: bool = False
    cluster: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    row: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # store row of each point


def build_explore_data(
    folder: Path,
    model: str,
    *,
    cancel=None,
    progress: Callable | None = None,
    services=None,
    on_growth: Callable | None = None,
) -> tuple[ExploreData, object]:
    """Update the index and compute the map, the outlier scores and the duplicate groups (runs on the
    inference thread). Returns the data and the index (for later queries). ``on_growth`` receives a
    :class:`~vfmstudio.index.growing.MapGrowth` as vectors arrive (at most twice a second)."""
    from vfmstudio._plugin_host import get_host
    from vfmstudio.index.build import embedding_tool_for, update_index
    from vfmstudio.index.groups import kmeans_labels
    from vfmstudio.index.growing import GrowingMap
    from vfmstudio.index.layout import pca_2d

    host = get_host()
    tool = host.tool(embedding_tool_for(model))

    def on_update(p) -> None:
        if progress is not None and p.total:
            progress((p.processed + p.skipped) / p.total, f"embedding {p.processed} of {p.total} images")

    index = update_index(
        folder,
        model=model,
        tool=tool,
        params={},
        cancel=cancel,
        on_progress=on_update,
        services=services,
        on_stored=GrowingMap(on_growth) if on_growth is not None else None,
    )
    if progress is not None:
        progress(None, "laying out the map")
    files = index.files_of()
    xy_rows = pca_2d(index.store.vectors())
    cluster_rows = kmeans_labels(index.store.vectors(), k=min(10, max(1, len(index.store) // 5)))
    outlier_rows = dict(index.outliers()) if len(index.store) > 1 else {}
    rels, xy, outlier, cluster, rows = [], [], [], [], []
    for row, image_id in enumerate(index.store.ids):
        for rel in files.get(image_id, ()):
            rels.append(rel)
            xy.append(xy_rows[row])
            outlier.append(outlier_rows.get(rel, 0.0))
            cluster.append(cluster_rows[row])
            rows.append(row)
    text = any(
        t.inputs.value == "text" and t.family == tool.family and "embedding" in t.returns
        for t in host.tools.values()
    )
    data = ExploreData(
        rels,
        np.asarray(xy, np.float32).reshape(-1, 2),
        np.asarray(outlier, np.float32),
        index.duplicates(0.95),
        index.report.as_dict(),
        text_search=text,
        cluster=np.asarray(cluster, np.int32),
        row=np.asarray(rows, np.int64),
    )
    return data, index


COLOURS = (
    "one colour",
    "cluster",
    "outlier score",
    "text query score",
    "similarity to the current image",
    "class",
    "tag",
    "review state",
)
PROJECT_COLOURS = ("class", "tag", "review state")
REVIEW_COLOURS = {  # fixed, so a state keeps its colour whatever else is on the map
    "unlabelled": "#8a8f98",
    "labelled": "#4f8cff",
    "predicted": "#ffa726",
    "reviewed": "#66bb6a",
}
LAYOUTS = ("PCA", "t-SNE")


class ExploreWindow(QDialog):
    """``submit(fn, on_done, on_progress, on_partial=None) -> cancel()`` runs ``fn(ctx)`` on the inference
    thread and calls ``on_done(ok, value_or_message)`` (and ``on_partial(value)`` for what the job
    streams) on the GUI thread; the window owns no thread of its own.

    ``project`` is the window's project session (``.project``, ``.push(command)``, ``labels_changed``):
    the map is coloured by its classes, tags and review states, and duplicates are removed from it."""

    open_requested = Signal(str)  # absolute path
    selected = Signal(list)  # absolute paths

    def __init__(
        self,
        folder: Path,
        submit: Callable,
        parent: QWidget | None = None,
        models: tuple[str, ...] = DEFAULT_MODELS,
        current_image: Callable[[], Path | None] = lambda: None,
        project=None,
        pending: Callable[[], object] = lambda: None,
    ):
        super().__init__(parent)
        self.setWindowTitle(f"Explore — {folder}")
        self.folder = Path(folder)
        self._submit = submit
        self._cancel: Callable[[], None] | None = None
        self._job = ""  # what the running job does: "index", "layout" or "query"
        self._current_image = current_image
        self.project_session = project
        self._pending = pending  # the window's PendingView (the image list's states), if it has one
        self.index = None
        self.data: ExploreData | None = None
        self.layout_xy: dict[str, np.ndarray] = {}  # layout name -> positions of data's points

        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItems(list(models))
        self.model.setToolTip("a DINOv2 or CLIP/SigLIP model: hub id or local folder")
        self.run_button = QPushButton("Update index")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("")
        self.layout_choice = QComboBox()
        self.layout_choice.addItems(list(LAYOUTS))
        self.layout_choice.setToolTip(
            "PCA is instant; t-SNE keeps neighbours together and is computed in the background"
        )
        self.colour = QComboBox()
        self.colour.addItems(list(COLOURS))
        self.query = QLineEdit()
        self.query.setPlaceholderText("text query (CLIP/SigLIP models)")
        self.search_button = QPushButton("Search")
        self.similar_button = QPushButton("Similar to current image")
        self.similar_button.setToolTip(
            "rank the folder by similarity to the image on view in the main window"
        )
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.view = ExploreView()

        top = QHBoxLayout()
        for w in (QLabel("Model"), self.model, self.run_button, self.cancel_button, self.progress):
            top.addWidget(w)
        second = QHBoxLayout()
        for w in (
            QLabel("Layout"),
            self.layout_choice,
            QLabel("Colour by"),
            self.colour,
            self.query,
            self.search_button,
            self.similar_button,
        ):
            second.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(second)
        layout.addWidget(self.message)
        layout.addWidget(self.view, 1)
        self.resize(1000, 700)

        self.run_button.clicked.connect(self.update_index)
        self.cancel_button.clicked.connect(self.cancel)
        self.search_button.clicked.connect(self.search_text)
        self.similar_button.clicked.connect(self.similar_to_current)
        self.query.returnPressed.connect(self.search_text)
        self.colour.currentIndexChanged.connect(self._recolour)
        self.layout_choice.currentTextChanged.connect(self._layout_chosen)
        self.view.open_requested.connect(lambda rel: self.open_requested.emit(str(self.folder / rel)))
        self.view.selected.connect(lambda rels: self.selected.emit([str(self.folder / r) for r in rels]))
        self.view.keep_changed.connect(lambda _keep: self._show_duplicates())
        self.view.remove_requested.connect(self.remove_from_project)
        self._text_scores: np.ndarray | None = None
        self._similar_scores: np.ndarray | None = None
        # Labels change with every edit in the main window: recolour once they settle, not per edit.
        self._recolour_later = QTimer(self)
        self._recolour_later.setSingleShot(True)
        self._recolour_later.setInterval(300)
        self._recolour_later.timeout.connect(self._recolour_from_project)
        if project is not None and hasattr(project, "labels_changed"):
            project.labels_changed.connect(self._recolour_later.start)

    # ------------------------------------------------------------------ jobs
    def update_index(self) -> None:
        model = self.model.currentText().strip()
        if not model:
            self.message.setText("Choose a model first.")
            return
        folder = self.folder

        def job(ctx):
            return build_explore_data(
                folder, model, cancel=ctx.cancel, progress=ctx.progress, on_growth=ctx.partial
            )

        self._busy(True, f"Indexing {folder} with {model}…")
        self._job = "index"
        self._cancel = self._submit(job, self._on_index, self._on_progress, self._on_growth)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel()
        if self._job == "layout":
            self.layout_choice.blockSignals(True)
            self.layout_choice.setCurrentText("PCA")  # the map on view
            self.layout_choice.blockSignals(False)
            self._busy(False, "Cancelled; the PCA map stays.")
        elif self._job == "index":
            self._busy(False, "Cancelled; the vectors computed so far are kept.")
        else:
            self._busy(False, "Cancelled.")

    def _on_progress(self, fraction: float | None, message: str) -> None:
        if fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(message)

    def _on_growth(self, growth) -> None:
        """Vectors arrived during an update: draw the points so far (the final layout replaces them)."""
        if self.run_button.isEnabled():  # the update already ended (a late partial)
            return
        self.view.set_map(self.folder, growth.rels, growth.xy)

    def _on_index(self, ok: bool, value) -> None:
        self._busy(False, "")
        if not ok:
            self.message.setText(f"Indexing failed: {value}")
            return
        self.data, self.index = value
        self.layout_xy = {"PCA": self.data.xy}
        r = self.data.report
        failed = f", {len(r['failed'])} unreadable" if r.get("failed") else ""
        self.message.setText(
            f"{r['images']} images: {r['embedded']} embedded, {r['reused']} reused, "
            f"{r['removed']} removed{failed}."
        )
        self.view.set_map(self.folder, self.data.rels, self.data.xy)
        self._show_duplicates()
        ranked = sorted(zip(self.data.rels, self.data.outlier), key=lambda t: -t[1])[:200]
        self.view.set_list(self.view.outliers, [(f"{s:.3f}  {rel}", rel) for rel, s in ranked])
        self._text_scores = None
        self.search_button.setEnabled(self.data.text_search)
        self.similar_button.setEnabled(True)
        self._recolour()
        if self.layout_choice.currentText() != "PCA":
            self._layout_chosen(self.layout_choice.currentText())

    def _layout_chosen(self, name: str) -> None:
        if self.data is None:
            return
        if name in self.layout_xy:
            self.view.set_layout(self.layout_xy[name])
            self._recolour()
            return
        if not self.run_button.isEnabled():
            return  # a job runs; the layout follows when the index is ready
        index, rows = self.index, self.data.row

        def job(ctx):
            from vfmstudio.index.layout import tsne_2d

            xy = tsne_2d(index.store.vectors(), cancelled=lambda: ctx.cancel.cancelled, progress=ctx.progress)
            return xy[rows]

        self._busy(True, "Computing the t-SNE map in the background; the PCA map stays until it is ready…")
        self._job = "layout"
        self._cancel = self._submit(job, lambda ok, v: self._on_layout(ok, v, name), self._on_progress)

    def _on_layout(self, ok: bool, value, name: str) -> None:
        self._busy(False, "")
        if not ok:
            self.message.setText(f"The {name} layout failed: {value}")
            return
        if self.data is None or len(value) != len(self.data.rels):
            return  # the index changed meanwhile
        self.layout_xy[name] = np.asarray(value, np.float32)
        if self.layout_choice.currentText() == name:
            self.view.set_layout(self.layout_xy[name])
            self._recolour()
        self.message.setText(f"{name} map of {len(value)} images.")

    def search_text(self) -> None:
        text = self.query.text().strip()
        if self.index is None or not text:
            self.message.setText("Update the index, then type a text query.")
            return
        index = self.index

        def job(ctx):
            from vfmstudio._plugin_host import get_host
            from vfmstudio.core.results import Embedding
            from vfmstudio.execution import run_tool

            host = get_host()
            tool = next(
                t
                for t in host.tools.values()
                if t.inputs.value == "text" and t.family == index.tool.family and "embedding" in t.returns
            )
            vector = run_tool(tool, [], {"text": text}, model=index.model).of_type(Embedding)[0].vector
            return index.similar(vector, len(index.store.files), exact=True)

        self._busy(True, f"Searching for “{text}”…")
        self._job = "query"
        self._cancel = self._submit(
            job, lambda ok, v: self._on_ranking(ok, v, "text query score"), self._on_progress
        )

    def similar_to_current(self) -> None:
        """Rank the folder by similarity to the image on view (embedded now if it is not in the index)."""
        path = self._current_image()
        if self.index is None or path is None:
            self.message.setText("Update the index and show an image in the main window first.")
            return
        index = self.index

        def job(ctx):
            from vfmstudio._plugin_host import get_host
            from vfmstudio.core.image import image_id_for_file, load_image
            from vfmstudio.core.results import Embedding
            from vfmstudio.execution import run_tool

            image_id = image_id_for_file(path, reader=get_host().read_image)
            if image_id in index.store:
                vector = index.store.vector(image_id)
            else:
                image = load_image(path, reader=get_host().read_image)
                vector = (
                    run_tool(index.tool, [image], index.params, model=index.model)
                    .of_type(Embedding)[0]
                    .vector
                )
            return index.similar(vector, len(index.store.files), exact=True)

        self._busy(True, f"Ranking the folder by similarity to {Path(path).name}…")
        self._job = "query"
        self._cancel = self._submit(
            job, lambda ok, v: self._on_ranking(ok, v, "similarity to the current image"), self._on_progress
        )

    def _on_ranking(self, ok: bool, value, colour: str) -> None:
        self._busy(False, "")
        if not ok:
            self.message.setText(f"Search failed: {value}")
            return
        scores = dict(value)
        ranked = np.array([scores.get(rel, np.nan) for rel in self.data.rels], np.float32)
        if colour == "text query score":
            self._text_scores = ranked
        else:
            self._similar_scores = ranked
        self.view.set_list(self.view.results, [(f"{s:.3f}  {rel}", rel) for rel, s in value[:200]])
        self.view.lists.setCurrentWidget(self.view.results)
        self.colour.setCurrentText(colour)
        self._recolour()

    # ------------------------------------------------------------------ the project
    def _project(self):
        return None if self.project_session is None else self.project_session.project

    def _show_duplicates(self) -> None:
        """Fill the duplicates list, each group's copies but one checked for removal."""
        if self.data is None:
            return
        from vfmstudio.session.explore import copies_to_remove

        groups = self.data.duplicates
        keep = KEEP_CHOICES[self.view.keep.currentText()]
        from vfmstudio.core.image import ImageLoadError

        try:
            remove = copies_to_remove([g["files"] for g in groups], keep, self._pixels)
        except (OSError, ImageLoadError) as exc:
            self.message.setText(f"Cannot read an image's size: {exc}")
            remove = [[] for _ in groups]
        self.view.set_duplicates(groups, remove)

    def _pixels(self, rel: str) -> int:
        from vfmstudio.core.project import image_size

        width, height = image_size(self.folder / rel)
        return width * height

    def remove_from_project(self, rels: list[str]) -> None:
        """Remove the checked duplicates from the project (not from disk) as one undoable step."""
        project = self._project()
        if project is None:
            self.message.setText("No project is open: nothing to remove the images from.")
            return
        if not rels:
            self.message.setText("Check the copies to remove first.")
            return
        from vfmstudio.core.image_commands import RemoveImages
        from vfmstudio.session.explore import project_keys

        keys = [k for k in project_keys(project, self.folder, rels) if k is not None]
        outside = len(rels) - len(keys)
        note = f" ({outside} were not in the project)" if outside else ""
        if not keys:
            self.message.setText(f"None of the {len(rels)} checked images is in the project.")
            return
        if self.project_session.push(RemoveImages(project, keys)):
            self.message.setText(
                f"Removed {len(keys)} images from the project{note}; the files stay on disk "
                f"(Edit › Undo brings them back)."
            )
            self._recolour_from_project()

    # ------------------------------------------------------------------ display
    def _recolour_from_project(self) -> None:
        if self.colour.currentText() in PROJECT_COLOURS:
            self._recolour()

    def _recolour(self) -> None:
        if self.data is None:
            return
        choice = self.colour.currentText()
        if choice in PROJECT_COLOURS:
            self._colour_from_project(choice)
            return
        ranked = {
            "text query score": self._text_scores,
            "similarity to the current image": self._similar_scores,
        }.get(choice)
        if choice == "outlier score":
            self.view.colour_by(self.data.outlier)
        elif choice == "cluster" and len(self.data.cluster) == len(self.data.rels):
            counts = np.bincount(self.data.cluster) if len(self.data.cluster) else np.zeros(0, int)
            names = [f"cluster {i + 1}" for i in range(len(counts))]
            self.view.colour_by_names(self.data.cluster, names, counts.tolist())
        elif ranked is not None:
            self.view.colour_by(np.nan_to_num(ranked, nan=float(np.nanmin(ranked))))
        else:
            self.view.colour_by(None)

    def _colour_from_project(self, choice: str) -> None:
        from vfmstudio.session.explore import (
            class_categories,
            project_keys,
            review_categories,
            tag_categories,
        )

        project = self._project()
        if project is None:
            self.message.setText("No project is open: there are no classes, tags or review states.")
            self.view.colour_by(None)
            return
        keys = project_keys(project, self.folder, self.view.rels)
        colours = None
        if choice == "class":
            cats = class_categories(project, keys)
            colours = [
                project.labels.color_of(n) if n in project.labels.class_names else "#8a8f98"
                for n in cats.names
            ]
        elif choice == "tag":
            cats = tag_categories(project, keys)
        else:
            from vfmstudio.core.pending import PendingStoreError
            from vfmstudio.session.pending import PendingView

            try:
                view = self._pending()
                if view is None or getattr(view, "project", None) is not project:
                    view = PendingView(project)
                states = view.states()
            except (PendingStoreError, OSError) as exc:
                self.message.setText(f"Cannot read the pending predictions: {exc}")
                states = {}
            cats = review_categories(states, keys)
            colours = [REVIEW_COLOURS[n] for n in cats.names]
        self.view.colour_by_names(cats.codes, cats.names, cats.counts, colours)

    def _busy(self, busy: bool, message: str) -> None:
        self.run_button.setEnabled(not busy)
        self.search_button.setEnabled(not busy and bool(self.data and self.data.text_search))
        self.similar_button.setEnabled(not busy and self.data is not None)
        self.cancel_button.setEnabled(busy)
        if not busy:
            self.progress.setRange(0, 1000)
            self.progress.setValue(0)
            self.progress.setFormat("")
        if message:
            self.message.setText(message)


def runner_submit(runner) -> Callable:
    """Adapts a :class:`~vfmstudio.qt.runner.QtJobRunner` to ExploreWindow's ``submit``; the returned
    callable cancels the job."""

    def submit(fn, on_done, on_progress, on_partial=None):
        def done(result) -> None:
            if result.ok:
                on_done(True, result.value)
            elif result.status != "cancelled":
                on_done(False, result.error.message if result.error else result.status)

        job = runner.submit(
            fn,
            key="explore",
            source="explore",
            on_done=done,
            on_progress=lambda u: on_progress(u.fraction, u.message),
            on_partial=None if on_partial is None else (lambda p: on_partial(p.value)),
        )
        return job.cancel

    return submit


def open_explore(w) -> ExploreWindow | None:
    """View › Explore Folder… on the window's open folder: the map's picks select images in the list."""
    folder = w.session.folder
    if folder is None:
        w.messages.post("warning", "open a folder first: Explore maps the images of a folder")
        return None
    window = getattr(w, "explore_window", None)
    if window is None or window.folder != folder:
        window = ExploreWindow(
            folder,
            runner_submit(w.runner),
            parent=w,
            current_image=lambda: w.current_path,
            project=w.labelling.session,
            pending=lambda: getattr(w, "pending", None),
        )
        window.open_requested.connect(lambda p: w.browser.select_path(Path(p)))
        window.selected.connect(lambda paths: w.browser.select_paths([Path(p) for p in paths]))
        w.explore_window = window
    window.show()
    window.raise_()
    return window
