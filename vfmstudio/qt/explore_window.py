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
from PySide6.QtCore import Signal
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

from vfmstudio.qt.explore_view import ExploreView

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


def build_explore_data(
    folder: Path, model: str, *, cancel=None, progress: Callable | None = None, services=None
) -> tuple[ExploreData, object]:
    """Update the index and compute the map, the outlier scores and the duplicate groups (runs on the
    inference thread). Returns the data and the index (for later queries)."""
    from vfmstudio._plugin_host import get_host
    from vfmstudio.index.build import embedding_tool_for, update_index
    from vfmstudio.index.groups import kmeans_labels
    from vfmstudio.index.layout import pca_2d

    host = get_host()
    tool = host.tool(embedding_tool_for(model))

    def on_update(p) -> None:
        if progress is not None and p.total:
            progress((p.processed + p.skipped) / p.total, f"embedding {p.processed} of {p.total} images")

    index = update_index(
        folder, model=model, tool=tool, params={}, cancel=cancel, on_progress=on_update, services=services
    )
    if progress is not None:
        progress(None, "laying out the map")
    files = index.files_of()
    xy_rows = pca_2d(index.store.vectors())
    cluster_rows = kmeans_labels(index.store.vectors(), k=min(10, max(1, len(index.store) // 5)))
    outlier_rows = dict(index.outliers()) if len(index.store) > 1 else {}
    rels, xy, outlier, cluster = [], [], [], []
    for row, image_id in enumerate(index.store.ids):
        for rel in files.get(image_id, ()):
            rels.append(rel)
            xy.append(xy_rows[row])
            outlier.append(outlier_rows.get(rel, 0.0))
            cluster.append(cluster_rows[row])
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
    )
    return data, index


class ExploreWindow(QDialog):
    """``submit(fn, on_done, on_progress) -> cancel()`` runs ``fn(ctx)`` on the inference thread and calls
    ``on_done(ok, value_or_message)`` on the GUI thread; the window owns no thread of its own."""

    open_requested = Signal(str)  # absolute path
    selected = Signal(list)  # absolute paths

    def __init__(
        self,
        folder: Path,
        submit: Callable,
        parent: QWidget | None = None,
        models: tuple[str, ...] = DEFAULT_MODELS,
        current_image: Callable[[], Path | None] = lambda: None,
    ):
        super().__init__(parent)
        self.setWindowTitle(f"Explore — {folder}")
        self.folder = Path(folder)
        self._submit = submit
        self._cancel: Callable[[], None] | None = None
        self._current_image = current_image
        self.index = None
        self.data: ExploreData | None = None

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
        self.colour = QComboBox()
        self.colour.addItems(
            ["one colour", "cluster", "outlier score", "text query score", "similarity to the current image"]
        )
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
        for w in (QLabel("Colour by"), self.colour, self.query, self.search_button, self.similar_button):
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
        self.view.open_requested.connect(lambda rel: self.open_requested.emit(str(self.folder / rel)))
        self.view.selected.connect(lambda rels: self.selected.emit([str(self.folder / r) for r in rels]))
        self._text_scores: np.ndarray | None = None
        self._similar_scores: np.ndarray | None = None

    # ------------------------------------------------------------------ jobs
    def update_index(self) -> None:
        model = self.model.currentText().strip()
        if not model:
            self.message.setText("Choose a model first.")
            return
        folder = self.folder

        def job(ctx):
            return build_explore_data(folder, model, cancel=ctx.cancel, progress=ctx.progress)

        self._busy(True, f"Indexing {folder} with {model}…")
        self._cancel = self._submit(job, self._on_index, self._on_progress)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel()
        self._busy(False, "Cancelled; the vectors computed so far are kept.")

    def _on_progress(self, fraction: float | None, message: str) -> None:
        if fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(message)

    def _on_index(self, ok: bool, value) -> None:
        self._busy(False, "")
        if not ok:
            self.message.setText(f"Indexing failed: {value}")
            return
        self.data, self.index = value
        r = self.data.report
        failed = f", {len(r['failed'])} unreadable" if r.get("failed") else ""
        self.message.setText(
            f"{r['images']} images: {r['embedded']} embedded, {r['reused']} reused, "
            f"{r['removed']} removed{failed}."
        )
        self.view.set_map(self.folder, self.data.rels, self.data.xy)
        self.view.set_list(
            self.view.duplicates,
            [(f"{g['kind']}: " + ", ".join(g["files"]), g["files"][0]) for g in self.data.duplicates],
        )
        ranked = sorted(zip(self.data.rels, self.data.outlier), key=lambda t: -t[1])[:200]
        self.view.set_list(self.view.outliers, [(f"{s:.3f}  {rel}", rel) for rel, s in ranked])
        self._text_scores = None
        self.search_button.setEnabled(self.data.text_search)
        self.similar_button.setEnabled(True)
        self._recolour()

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

    # ------------------------------------------------------------------ display
    def _recolour(self) -> None:
        if self.data is None:
            return
        choice = self.colour.currentText()
        ranked = {
            "text query score": self._text_scores,
            "similarity to the current image": self._similar_scores,
        }.get(choice)
        if choice == "outlier score":
            self.view.colour_by(self.data.outlier)
        elif choice == "cluster" and len(self.data.cluster) == len(self.data.rels):
            self.view.colour_by_category(self.data.cluster)
        elif ranked is not None:
            self.view.colour_by(np.nan_to_num(ranked, nan=float(np.nanmin(ranked))))
        else:
            self.view.colour_by(None)

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

    def submit(fn, on_done, on_progress):
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
            folder, runner_submit(w.runner), parent=w, current_image=lambda: w.current_path
        )
        window.open_requested.connect(lambda p: w.browser.select_path(Path(p)))
        window.selected.connect(lambda paths: w.browser.select_paths([Path(p) for p in paths]))
        w.explore_window = window
    window.show()
    window.raise_()
    return window
