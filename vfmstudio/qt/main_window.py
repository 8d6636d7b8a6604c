"""The studio window: browser, canvas, tools, layers, results and messages docks.

All model work goes through one :class:`QtJobRunner`; the GUI thread only submits jobs and
receives their results as queued signals. Results are stored per image content id, so a result
that arrives after the user moved on lands on its own image and is never drawn on another.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStyle,
    QTabWidget,
    QWidget,
)

# Everything that pulls in numpy, Pillow or the core is imported in build() and in the methods
# that need it, so `vfmstudio gui` can map its window first and fill it a moment later.
if TYPE_CHECKING:
    from vfmstudio.core.image import ImageLoadError, LoadedImage
    from vfmstudio.core.jobs import JobContext, JobPartial, JobProgress, JobResult
    from vfmstudio.core.results import Histogram, Prediction
    from vfmstudio.core.tools import ToolSpec
    from vfmstudio.qt.runner import QtJobRunner

log = logging.getLogger(__name__)
MAX_RECENT = 8
LIVE_PREFIX = "live:"


class MainWindow(QMainWindow):
    """The studio. With ``deferred=True`` only a bare frame is built here: the caller shows it and
    then calls :meth:`build` (docks, canvas, then plugins on the next event-loop turn; ``ready``)."""

    ready = Signal()
    _plugins_loaded = Signal(object, object, object)  # host, statuses, error (from the loading thread)

    def __init__(self, *, host: Any = None, safe_mode: bool = False, runner: QtJobRunner | None = None,
                 services: Any = None, settings: QSettings | None = None, deferred: bool = False):
        super().__init__()
        self.setWindowTitle("vfmstudio")
        self.resize(1400, 900)
        self._host = host
        self._safe_mode = safe_mode
        self._services = services
        self._runner_arg = runner
        self._ready = False
        self._pending_paths: list[str | Path] | None = None
        self._gc_frozen: set[tuple[str, bool]] = set()
        self.settings = settings if settings is not None else QSettings("vfmstudio", "vfmstudio")
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(geometry)
        if deferred:
            placeholder = QLabel("Starting…", self)
            placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.setCentralWidget(placeholder)
        else:
            self.build()

    def build(self) -> None:
        if self._ready:
            return
        from vfmstudio.qt.browser import ImageBrowser
        from vfmstudio.qt.canvas import Canvas
        from vfmstudio.qt.grid_view import GridView
        from vfmstudio.qt.image_loader import ImageLoader, ImageStore
        from vfmstudio.qt.layers import LayerStore
        from vfmstudio.qt.layers_panel import LayersPanel
        from vfmstudio.qt.messages import LogHandler, MessagesPanel
        from vfmstudio.qt.pair_view import PairView
        from vfmstudio.qt.results_panel import ResultsPanel
        from vfmstudio.qt.runner import QtJobRunner
        from vfmstudio.qt.tools_panel import ToolsPanel

        runner = self._runner_arg
        self.runner = runner or QtJobRunner(parent=self)
        self.images = ImageStore()
        self.prefetcher = self._make_prefetcher()
        self._prefetch_request: Any = None  # the tool, params and model of the last run (vfmstudio.prefetch)
        self.loader = ImageLoader(self.images, self)
        self.current: LoadedImage | None = None
        self.current_path: Path | None = None
        self._jobs: dict[int, dict[str, Any]] = {}  # job id -> what it concerns
        self._layer_items: dict[int, tuple[tuple, Any]] = {}  # layer id -> (raster key, canvas item)
        self._predictions: dict[str, dict[str, Prediction]] = {}  # image id -> tool -> latest
        self._last_run_job: int | None = None

        self.canvas = Canvas(self)
        self.pair_view = PairView(self)
        self.central_tabs = QTabWidget(self)
        self.central_tabs.addTab(self.canvas, "Image")
        self.central_tabs.addTab(self.pair_view, "Pair")
        self.layer_store = LayerStore(self)
        self.grid_view = GridView(self.layer_store.layers, self)
        self.central_tabs.addTab(self.grid_view, "Set")
        self.central_tabs.setDocumentMode(True)
        self.setCentralWidget(self.central_tabs)

        self.browser = ImageBrowser(self)
        self.tools = ToolsPanel(self)
        self.layers = LayersPanel(self.layer_store, self)
        self.results = ResultsPanel(self._thumbnail_for_id, self)
        self.messages = MessagesPanel(self)
        self.dock_browser = self._dock("Images", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.dock_tools = self._dock("Tools", self.tools, Qt.DockWidgetArea.RightDockWidgetArea)
        self.dock_layers = self._dock("Layers", self.layers, Qt.DockWidgetArea.RightDockWidgetArea)
        self.dock_results = self._dock("Results", self.results, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.dock_messages = self._dock("Messages", self.messages, Qt.DockWidgetArea.BottomDockWidgetArea)
        # Side docks run the full height; results and messages sit under the canvas only.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.dock_results, self.dock_messages)
        self.dock_results.raise_()
        self.resizeDocks([self.dock_browser, self.dock_tools], [230, 340], Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_results], [190], Qt.Orientation.Vertical)

        self.pixel_label = QLabel("", self)
        self.zoom_label = QLabel("", self)
        self.device_status = QLabel("device: …", self)
        self.device_status.setObjectName("device_status")
        sb = self.statusBar()
        sb.addWidget(self.pixel_label, 1)
        sb.addPermanentWidget(self.zoom_label)
        sb.addPermanentWidget(self.device_status)
        self._build_menus()
        from vfmstudio.qt.editing import Labelling

        self.labelling = Labelling(self)  # Labels/History docks, Edit menu, project and export actions
        from vfmstudio.qt.smart_tool import SmartTool

        self.smart_tool = SmartTool(self)  # click-to-mask with SAM (key S)
        self.setAcceptDrops(True)

        self.browser.current_changed.connect(self._on_current_path)
        self.loader.loaded.connect(self._on_image_loaded)
        self.loader.failed.connect(self._on_image_failed)
        self.canvas.cursor_moved.connect(self._on_cursor)
        self.canvas.zoom_changed.connect(lambda s: self.zoom_label.setText(f"{s * 100:.0f} %"))
        self.canvas.clicked.connect(self._on_canvas_click)
        self.grid_view.clicked.connect(self._on_grid_click)
        self.pair_view.clicked.connect(self._on_pair_click)
        self._pair_ids: list[str] = []
        self.tools.run_requested.connect(self.run_current_tool)
        self.tools.cancel_requested.connect(self.cancel_jobs)
        self.tools.devices_requested.connect(self.show_devices)
        # Edits rerun after a short pause, so typing "cat, dog" does not queue a run per key.
        self._edit_timer = QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(250)
        self._edit_timer.timeout.connect(self._rerun_after_edit)
        self.tools.params_edited.connect(self._on_params_edited)
        self.results.asked.connect(self.ask)
        self.layer_store.changed.connect(self._on_layers_changed)
        self.layers.export_requested.connect(self._export_layer)
        self.layers.layer_scrubbed.connect(self._on_layer_scrubbed)
        self.layers.histogram.threshold_dragged.connect(self._on_threshold)
        self.layers.histogram.threshold_released.connect(self._on_threshold)
        self.runner.progressed.connect(self._on_progress)
        self.runner.partial.connect(self._on_partial)
        self.runner.finished.connect(self._on_finished)
        self._log_handler = LogHandler(self.messages)
        logging.getLogger("vfmstudio").addHandler(self._log_handler)
        self._restore_state()
        self._show_probe_device()
        self._plugins_loaded.connect(self._on_plugins_loaded, Qt.ConnectionType.QueuedConnection)
        self._ready = True
        # Plugins load after the first paint: the window appears before any plugin code runs.
        QTimer.singleShot(0, self.load_plugins)
        if self._pending_paths is not None:
            paths, self._pending_paths = self._pending_paths, None
            self.open_paths(paths)
        self.ready.emit()

    # ================================================================ construction
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut=None, icon=None, menu=None) -> QAction:
        action = QAction(text, self)
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        if menu is not None:
            menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        sp = QStyle.StandardPixmap
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action("Open &Folder…", self.open_folder_dialog, QKeySequence.StandardKey.Open, sp.SP_DirOpenIcon,
                     file_menu)
        self._action("Open &Images…", self.open_files_dialog, "Ctrl+Shift+O", sp.SP_FileIcon, file_menu)
        self.recent_menu = file_menu.addMenu("Recent Folders")
        file_menu.addSeparator()
        self._action("&Quit", self.close, QKeySequence.StandardKey.Quit, None, file_menu)
        view = bar.addMenu("&View")
        self._action("Next Image", lambda: self.browser.step(+1), "D", sp.SP_ArrowForward, view)
        self._action("Previous Image", lambda: self.browser.step(-1), "A", sp.SP_ArrowBack, view)
        view.addSeparator()
        self._action("&Fit", self.canvas.fit, "F", None, view)
        self._action("Actual Size (1:1)", self.canvas.actual_size, "1", None, view)
        self._action("Zoom In", lambda: self.canvas.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn, None, view)
        self._action("Zoom Out", lambda: self.canvas.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut, None, view)
        view.addSeparator()
        for dock in (self.dock_browser, self.dock_tools, self.dock_layers, self.dock_results, self.dock_messages):
            view.addAction(dock.toggleViewAction())
        run = bar.addMenu("&Run")
        self._action("&Run Tool", self.run_current_tool, "Ctrl+R", sp.SP_MediaPlay, run)
        self._action("&Cancel", self.cancel_jobs, "Esc", sp.SP_BrowserStop, run)
        run.addSeparator()
        self._action("&Devices…", self.show_devices, None, sp.SP_ComputerIcon, run)
        self._action("&Time Limit…", self.ask_tool_timeout, None, None, run)
        help_menu = bar.addMenu("&Help")
        self._action("&Plugins…", self.show_plugins, None, None, help_menu)
        self._action("&About vfmstudio", self._about, None, None, help_menu)
        self._refresh_recent_menu()

    # ================================================================ plugins
    @property
    def host(self):
        return self._host

    def load_plugins(self) -> None:
        """Load plugins on a helper thread (their imports must not hold up the first image); the
        tools panel fills in when they are in."""
        def work() -> None:
            host, statuses, error = self._host, [], None
            try:
                if host is None:
                    from vfmstudio._plugin_host import get_host

                    host = get_host(safe_mode=self._safe_mode or None)
                statuses = host.list_statuses()
            except Exception as exc:  # noqa: BLE001 - the window must come up without plugins too
                error = f"plugins could not be loaded: {type(exc).__name__}: {exc}"
            self._plugins_loaded.emit(host, statuses, error)

        threading.Thread(target=work, name="vfmstudio-plugins", daemon=True).start()

    def _on_plugins_loaded(self, host: Any, statuses: list, error: str | None) -> None:
        self._host = host
        if error is not None:
            self.messages.post("error", error)
        for st in statuses:
            if st.status == "failed":
                self.messages.post("error", f"plugin {st.name} failed to load: {st.error}", st.traceback or "")
            elif st.status in ("disabled", "skipped"):
                self.messages.post("info", f"plugin {st.name} {st.status}: {st.error or ''}".rstrip(": "))
        tools = list(host.tools.values()) if host is not None else []
        self.tools.set_tools(tools)
        self._freeze_long_lived_objects()
        self.messages.post("info", f"{len(tools)} tools from {sum(s.status == 'loaded' for s in statuses)} plugins")

    # ================================================================ images
    def open_paths(self, paths: list[str | Path]) -> int:
        """Open folders and/or files; returns how many images are listed (0 until the window is built)."""
        if not self._ready:
            self._pending_paths = list(paths)
            return 0
        from vfmstudio.core.image import list_images

        try:
            files = list_images([Path(p) for p in paths])
        except FileNotFoundError as exc:
            self.messages.post("error", f"cannot open {exc.filename}: no such file or folder")
            return 0
        self.browser.set_paths(files)
        folders = [Path(p) for p in paths if Path(p).is_dir()]
        if folders:
            self._remember_recent(folders[0])
        self.setWindowTitle(f"vfmstudio — {folders[0].name if folders else f'{len(files)} images'}")
        self.labelling.paths_opened([Path(p) for p in paths], files)
        if not files:
            self.messages.post("warning", "no images found in " + ", ".join(str(p) for p in paths))
        return len(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if folder:
            self.open_paths([folder])

    def open_files_dialog(self) -> None:
        from vfmstudio.core.image import IMAGE_EXTENSIONS

        pattern = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
        files, _ = QFileDialog.getOpenFileNames(self, "Open images", "", f"Images ({pattern});;All files (*)")
        if files:
            self.open_paths(files)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)

    def _on_current_path(self, path: Path | None) -> None:
        # Live reruns belong to the view that asked for them: a new image makes them stale.
        self.runner.cancel_where(lambda job: (job.key or "").startswith(LIVE_PREFIX))
        self.current_path = path
        if path is None:
            self._show_image(None)
            return
        self.pixel_label.setText(f"loading {path.name}…")
        self.loader.request(path)
        self._schedule_prefetch()

    def _on_image_loaded(self, path: Path, image: LoadedImage) -> None:
        if path != self.current_path:
            return
        self._show_image(image)
        self.pixel_label.setText(f"{path.name}  {image.width}×{image.height}")

    def _on_image_failed(self, path: Path, error: ImageLoadError) -> None:
        self.messages.post("error", str(error))
        if path == self.current_path:
            self._show_image(None)
            self.pixel_label.setText(str(error))

    def _show_image(self, image: LoadedImage | None) -> None:
        self.current = image
        self._layer_items.clear()  # the scene is cleared with the old image
        self.canvas.set_pixels(image.pixels if image is not None else None)
        self.labelling.image_shown(self.current_path, image)
        image_id = image.id if image is not None else None
        self.layers.show_image(image_id)
        self.results.show_image(image_id)
        self._redraw_layers()
        self._update_histogram()

    def _thumbnail_for_id(self, image_id: str):
        path = self.images.path_of(image_id)
        return self.browser.thumbnail(path) if path is not None else None

    # ================================================================ canvas
    def _on_cursor(self, info) -> None:
        if info is None:
            if self.current is not None and self.current_path is not None:
                self.pixel_label.setText(f"{self.current_path.name}  {self.current.width}×{self.current.height}")
            return
        x, y, (r, g, b) = info
        self.pixel_label.setText(f"x {x}  y {y}   RGB {r} {g} {b}")

    def _on_layers_changed(self, image_id: str) -> None:
        if image_id in self.grid_view.image_ids:
            self.grid_view.refresh_layers()  # every tile: matches on one image draw on another
        if self.current is not None and image_id == self.current.id:
            self._redraw_layers()

    def _redraw_layers(self) -> None:
        """Sync the canvas items with the current image's layers. An item is made once per layer
        (and per colour map / stack index); visibility, opacity and z-order only update it."""
        from vfmstudio.qt.overlays import raster_key
        from vfmstudio.qt.painters import legend_for, make_item

        parent = self.canvas.image_item
        if parent is None:
            return
        layers = self.layer_store.layers(self.current.id)
        wanted = {layer.id for layer in layers}
        for layer_id in [i for i in self._layer_items if i not in wanted]:
            _, item = self._layer_items.pop(layer_id)
            self.canvas.scene().removeItem(item)
        size = (self.current.width, self.current.height)
        legend = None
        for z, layer in enumerate(layers):
            key = raster_key(layer.result, layer.colormap, layer.layer_index)
            cached = self._layer_items.get(layer.id)
            if cached is not None and cached[0] != key:
                self.canvas.scene().removeItem(cached[1])
                cached = None
            if cached is None:
                item = make_item(layer, size)
                if item is None:
                    continue
                item.setParentItem(parent)
                self._layer_items[layer.id] = (key, item)
            else:
                item = cached[1]
            item.setZValue(z + 1)
            item.setOpacity(layer.opacity)
            item.setVisible(layer.visible)
            if layer.visible:
                legend = legend_for(layer) or legend
        self.canvas.legend = legend
        self.canvas.viewport().update()

    def _export_layer(self, layer_id: int) -> None:
        from vfmstudio.qt.painters import export_layer_png

        layer = self.layer_store.find(layer_id)
        if layer is None or self.current is None:
            return
        name = f"{(self.current_path.stem if self.current_path else layer.image_id)}-{layer.tool}-{layer.kind}.png"
        path, _ = QFileDialog.getSaveFileName(self, "Export layer as PNG", name, "PNG (*.png)")
        if path:
            export_layer_png(layer, (self.current.width, self.current.height), Path(path))
            self.messages.post("info", f"layer saved to {path}")

    def _on_canvas_click(self, x: float, y: float) -> None:
        if self.current is not None and self.current_path is not None:
            self._point_clicked(x, y, self.current.id, None)

    def _on_grid_click(self, x: float, y: float) -> None:
        paths = [self.images.path_of(i) for i in self.grid_view.image_ids]
        if paths and all(p is not None for p in paths):
            self._point_clicked(x, y, self.grid_view.image_ids[0], paths)  # type: ignore[arg-type]

    def _on_pair_click(self, x: float, y: float) -> None:
        paths = [self.images.path_of(i) for i in self._pair_ids]
        if paths and all(p is not None for p in paths):
            self._point_clicked(x, y, self._pair_ids[0], paths)  # type: ignore[arg-type]

    def _point_clicked(self, x: float, y: float, image_id: str, paths: list[Path] | None) -> None:
        """A click fills the current tool's point parameter; if the tool already ran on this image
        (its features are cached), it reruns at once: the similarity maps follow the click."""
        from vfmstudio.core.tools import ParamType

        tool, form = self.tools.tool, self.tools.form
        if tool is None or form is None:
            return
        point_params = [p for p in tool.params if p.type is ParamType.POINTS]
        if not point_params:
            return
        form.set_value(point_params[0].name, ((round(x, 1), round(y, 1)),))
        if tool.id in self._predictions.get(image_id, {}):
            try:
                params = form.resolved()
            except Exception as exc:  # noqa: BLE001 - a bad field elsewhere in the form
                self.messages.post("error", f"{tool.id}: {exc}")
                return
            self.submit_tool(tool, params, model=self.tools.model_ref(), paths=paths, live=True)

    def ask(self, question: str) -> int | None:
        """Chat-like questions: run the selected tool with ``question`` in its first free-text
        parameter (paligemma.ask's question, paligemma.prompt's prompt)."""
        from vfmstudio.core.tools import ParamType

        tool, form = self.tools.tool, self.tools.form
        text_params = [p for p in tool.params if p.type is ParamType.TEXT] if tool is not None else []
        if form is None or not text_params:
            self.messages.post("warning", "to ask a question, select a tool that takes one (e.g. paligemma.ask)")
            return None
        form.set_value(text_params[0].name, question)
        return self.run_current_tool()

    def _on_params_edited(self) -> None:
        if self.tools.live_check.isChecked():
            self._edit_timer.start()

    def _rerun_after_edit(self) -> None:
        tool = self.tools.tool
        if tool is not None and self.current is not None and tool.id in self._predictions.get(self.current.id, {}):
            self.run_current_tool(live=True)

    # ================================================================ running tools
    def _input_paths(self, tool: ToolSpec) -> list[Path] | None:
        from vfmstudio.core.tools import InputKind

        if tool.inputs is InputKind.IMAGE:
            return [self.current_path] if self.current_path is not None else None
        selected = self.browser.selected_paths()
        # The image on view comes first: it is the source of a pair and the image points refer to.
        if self.current_path in selected:
            selected.remove(self.current_path)
            selected.insert(0, self.current_path)
        if tool.inputs is InputKind.PAIR:
            if len(selected) != 2:
                self.messages.post("warning", f"{tool.title} needs two selected images (Ctrl+click), "
                                              f"{len(selected)} selected")
                return None
            return selected
        return selected or ([self.current_path] if self.current_path is not None else None)

    def run_current_tool(self, live: bool = False) -> int | None:
        from vfmstudio.core.tools import ParamError

        tool, form = self.tools.tool, self.tools.form
        if tool is None or form is None:
            self.messages.post("warning", "pick a tool first")
            return None
        try:
            params = form.resolved()
        except ParamError as exc:
            self.messages.post("error", f"{tool.id}: {exc}")
            return None
        return self.submit_tool(tool, params, model=self.tools.model_ref(), live=live)

    def submit_tool(self, tool: ToolSpec, params: dict[str, Any], *, model: str | None = None,
                    paths: list[Path] | None = None, live: bool = False) -> int | None:
        """Queue ``tool`` on the inference thread; returns the job id (None when inputs are missing).

        ``live`` jobs (interactive reruns) share one supersede key per image and tool, so while
        the user drags only the newest value is computed.
        """
        from vfmstudio.core.tools import InputKind

        paths = paths or self._input_paths(tool)
        if not paths:
            if tool.inputs is InputKind.IMAGE:
                self.messages.post("warning", "open an image first")
            return None
        device = self.tools.device_combo.currentText()
        precision = self.tools.precision_combo.currentText()
        store, services = self.images, self._services

        def job(ctx: JobContext) -> tuple[Prediction, dict]:
            from vfmstudio.execution import run_tool
            from vfmstudio.qt.overlays import prepare_rasters

            images = [store.load(p) for p in paths]
            ctx.cancel.raise_if_cancelled()
            prediction = run_tool(tool, images, params, model=model, device=device, precision=precision,
                                  cancel=ctx.cancel, on_progress=ctx.progress, on_partial=ctx.partial,
                                  services=services)
            ctx.cancel.raise_if_cancelled()
            # Colour the masks and maps here, so the GUI thread only wraps finished arrays.
            return prediction, prepare_rasters(prediction)

        # A rerun of the same tool on the same images replaces the one still queued or running; runs
        # on other images queue up behind it (one inference thread) and each lands on its own image.
        key = f"{LIVE_PREFIX if live else 'run:'}{paths[0]}:{tool.id}"
        handle = self.runner.submit(job, key=key, source=f"{tool.plugin or tool.family} · {tool.id}",
                                    timeout=self.tool_timeout_s())
        self._jobs[handle.job_id] = {"tool": tool, "paths": paths, "live": live, "t0": time.perf_counter()}
        if not live:
            self._last_run_job = handle.job_id
            self.tools.set_running(True)
            self.tools.progress.setFormat(f"{tool.title}: queued")
        from vfmstudio.prefetch import PrefetchRequest

        self._prefetch_request = PrefetchRequest(tool, dict(params), model, device, precision)
        self._schedule_prefetch()
        return handle.job_id

    # ================================================================ prefetch
    def _make_prefetcher(self):
        """Features of the next images are computed in the background (docs/adr/0090). Setting
        ``prefetch/enabled`` (default on, or ``$VFMSTUDIO_PREFETCH``) and ``prefetch/ahead`` (1-3)."""
        from vfmstudio.prefetch import DEFAULT_AHEAD, Prefetcher, env_enabled

        enabled = str(self.settings.value("prefetch/enabled", env_enabled())).lower() not in ("false", "0", "no")
        try:
            ahead = int(self.settings.value("prefetch/ahead", DEFAULT_AHEAD))
        except (TypeError, ValueError):
            ahead = DEFAULT_AHEAD
        return Prefetcher(self.runner.runner, self.images.load, services=self._services, ahead=ahead,
                          enabled=enabled)

    def _schedule_prefetch(self) -> None:
        self.prefetcher.schedule(self.browser.paths(), self.current_path, self._prefetch_request)

    def tool_timeout_s(self) -> float | None:
        """Seconds a run may take before it is abandoned: setting ``run/timeout_s``, else
        ``$VFMSTUDIO_TOOL_TIMEOUT_S``, else 900; 0 means no limit (docs/reliability.md)."""
        from vfmstudio.execution import DEFAULT_TOOL_TIMEOUT_S, tool_timeout_s

        value = self.settings.value("run/timeout_s")
        try:
            return tool_timeout_s(value if value not in (None, "") else None)
        except ValueError as exc:
            log.warning("using a %g s run time limit: %s", DEFAULT_TOOL_TIMEOUT_S, exc)
            return DEFAULT_TOOL_TIMEOUT_S

    def set_tool_timeout(self, seconds: float) -> None:
        """Store the run time limit (``run/timeout_s``); 0 means no limit. Applies to the next run."""
        from vfmstudio.execution import tool_timeout_s

        tool_timeout_s(seconds)  # refuses a negative or non-finite value
        self.settings.setValue("run/timeout_s", float(seconds))

    def ask_tool_timeout(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        current = self.tool_timeout_s() or 0
        seconds, ok = QInputDialog.getInt(self, "Run time limit", "Abandon a run after this many seconds "
                                          "(0: no limit). A hung plugin tool then gives an error.",
                                          int(current), 0, 7 * 24 * 3600)
        if ok:
            self.set_tool_timeout(seconds)
            self.messages.post("info", f"run time limit: {seconds} s" if seconds else "run time limit: none")

    def cancel_jobs(self) -> int:
        # Cancel also means "give the CPU back": background prefetch stops until the next run.
        self._prefetch_request = None
        self.prefetcher.cancel()
        n = self.runner.cancel_where(lambda job: True)
        if n:
            self.messages.post("info", f"cancelling {n} job{'s' if n != 1 else ''}")
        return n

    def _on_progress(self, update: JobProgress) -> None:
        if update.job_id == self._last_run_job:
            self.tools.show_progress(update.fraction, update.message)

    def _on_partial(self, update: JobPartial) -> None:
        info = self._jobs.get(update.job_id)
        if info is None:
            return
        image_id = self._image_id_of(info["paths"][0])
        if image_id is not None:
            self.results.text.stream(image_id, info["tool"].id, update.value)
            if self.results.currentWidget() is not self.results.text_page:
                self.results.setCurrentWidget(self.results.text_page)
                self.dock_results.raise_()

    def _image_id_of(self, path: Path) -> str | None:
        image = self.images.cached(path)
        return image.id if image is not None else None

    def _freeze_long_lived_objects(self) -> None:
        """Move everything alive now out of the cyclic garbage collector's reach (``gc.freeze``).

        Importing Qt, numpy, torch and transformers leaves a few hundred thousand long-lived objects;
        every full collection walks them all while holding the GIL, which measured 0.2-0.5 s on
        this 2-core box: a frozen GUI, whichever thread triggers it. Done once after start-up and
        once after the first run that imported torch (modules, classes, the model), these
        collections become cheap again.
        """
        marker = ("plugins", "torch" in sys.modules)
        if marker in self._gc_frozen:
            return
        self._gc_frozen.add(marker)
        gc.freeze()

    def _on_finished(self, result: JobResult) -> None:
        if result.status == "done" and "torch" in sys.modules:
            self._freeze_long_lived_objects()
        info = self._jobs.pop(result.job_id, None)
        if info is None:
            return self._on_side_job(result)
        tool: ToolSpec = info["tool"]
        is_last = result.job_id == self._last_run_job
        if is_last:
            self.tools.show_finished(result.status)
        if result.status != "done":
            first = self._image_id_of(info["paths"][0])
            if first is not None:
                self.results.text.drop_stream(first)
            if result.status == "error" and result.error is not None:
                self.messages.post("error", result.error.message, result.error.traceback)
                self.dock_messages.raise_()
                self.statusBar().showMessage(f"{tool.id} failed: see Messages", 5000)
            elif result.status == "cancelled" and not info["live"]:
                self.messages.post("info", f"{tool.id} cancelled")
            return None
        prediction, rasters = result.value
        self.add_prediction(prediction, rasters)
        if not info["live"]:
            names = ", ".join(p.name for p in info["paths"])
            self.messages.post("info", f"{tool.id} on {names}: {len(prediction.results)} results in "
                                       f"{result.timings.run_s:.2f} s on {prediction.device or 'cpu'}")
        return None

    def add_prediction(self, prediction: Prediction, rasters: dict | None = None) -> None:
        """Attach a prediction's results to the images they belong to (whatever is on view)."""
        from vfmstudio.core.results import Correspondences
        from vfmstudio.qt.layers import CANVAS_KINDS

        for image_id in prediction.image_ids:
            self._predictions.setdefault(image_id, {})[prediction.tool] = prediction
        self.layer_store.add_prediction(prediction, rasters)
        self.results.add_prediction(prediction)
        if prediction.device:
            self.tools.show_device(prediction.device, prediction.precision, "last run")
            self.device_status.setText(f"device: {prediction.device} · {prediction.precision or 'auto'}")
        matches = prediction.of_type(Correspondences)
        on_images = [r for r in prediction.results if isinstance(r, CANVAS_KINDS) and not isinstance(r, Correspondences)]
        if len(prediction.image_ids) >= 2 and on_images:
            # A set run (joint PCA, similarity): every image side by side with its layers.
            if self.grid_view.image_ids != list(prediction.image_ids):
                images = [self.images.by_id(i) for i in prediction.image_ids]
                if all(im is not None for im in images):
                    self.grid_view.show_set(images)  # type: ignore[arg-type]
            self.central_tabs.setCurrentWidget(self.grid_view)
        elif matches and len(prediction.image_ids) >= 2:
            src, dst = self.images.by_id(prediction.image_ids[0]), self.images.by_id(prediction.image_ids[1])
            if src is not None and dst is not None:
                self.pair_view.show_pair(src.pixels, dst.pixels, matches[0])
                self._pair_ids = list(prediction.image_ids[:2])
                self.central_tabs.setCurrentWidget(self.pair_view)
        if self.current is not None and self.current.id in prediction.image_ids:
            self._update_histogram()

    # ================================================================ live threshold
    def _histogram_prediction(self) -> tuple[Prediction, Histogram] | None:
        from vfmstudio.core.results import Histogram

        if self.current is None:
            return None
        for prediction in reversed(list(self._predictions.get(self.current.id, {}).values())):
            for r in prediction.of_type(Histogram):
                if getattr(r, "image_id", None) in (None, self.current.id):
                    return prediction, r
        return None

    def _update_histogram(self) -> None:
        found = self._histogram_prediction()
        box = self.layers.histogram_box
        if found is None:
            box.setVisible(False)
            self.layers.histogram.set_histogram(None)
            return
        prediction, hist = found
        threshold = prediction.params.get("threshold", hist.threshold)
        self.layers.histogram.set_histogram(hist, threshold if isinstance(threshold, int | float) else None)
        box.setTitle(f"Live threshold · {prediction.tool} (drag)")
        box.setVisible(True)

    def _on_layer_scrubbed(self, layer_id: int, index: int) -> None:
        """Scrubbing a layer stack also reruns its tool when the tool takes a ``layer`` parameter (the
        token-norm outliers follow the layer shown), on cached features."""
        layer = self.layer_store.find(layer_id)
        if layer is None or self._host is None:
            return
        tool = self._host.tools.get(layer.tool)
        if tool is None or "layer" not in tool.param_names:
            return
        params = dict(layer.prediction.params)
        if params.get("layer") == index:
            return
        params["layer"] = index
        if self.tools.tool is not None and self.tools.tool.id == tool.id and self.tools.form is not None:
            self.tools.form.set_value("layer", index)
        paths = [self.images.path_of(i) for i in layer.prediction.image_ids]
        if paths and all(p is not None for p in paths):
            self.submit_tool(tool, params, model=layer.prediction.model, paths=paths, live=True)  # type: ignore[arg-type]

    def _on_threshold(self, value: float) -> None:
        found = self._histogram_prediction()
        if found is None or self._host is None or self.current_path is None:
            return
        prediction, _ = found
        tool = self._host.tools.get(prediction.tool)
        if tool is None or "threshold" not in tool.param_names:
            return
        params = dict(prediction.params)
        params["threshold"] = value
        if self.tools.tool is not None and self.tools.tool.id == tool.id and self.tools.form is not None:
            self.tools.form.set_value("threshold", value)
        paths = [self.images.path_of(i) for i in prediction.image_ids]
        if any(p is None for p in paths):
            return
        self.submit_tool(tool, params, model=prediction.model, paths=paths, live=True)  # type: ignore[arg-type]

    # ================================================================ devices, plugins
    def _show_probe_device(self) -> None:
        try:
            from vfmstudio.ml.devices import probe_device_without_torch

            probe = probe_device_without_torch()
            device = probe["device"]
        except Exception:  # noqa: BLE001 - only a hint for the status bar
            device = "cpu"
        self.device_status.setText(f"device: {device} (auto)")
        self.tools.show_device(device, "auto", "until the first run")

    def show_devices(self) -> None:
        """What torch sees, asked on the inference thread (importing torch takes a moment)."""
        def job(ctx: JobContext) -> dict:
            from vfmstudio.ml.devices import describe_torch_devices

            return describe_torch_devices()

        self.runner.submit(job, key="devices", source="devices")
        self.statusBar().showMessage("asking torch about devices…", 3000)

    def _on_side_job(self, result: JobResult) -> None:
        if result.key == "devices":
            if result.status == "done":
                self.device_report = result.value
                self._show_device_dialog(result.value)
            elif result.error is not None:
                self.messages.post("error", f"devices: {result.error.message}", result.error.traceback)

    def _show_device_dialog(self, info: dict) -> None:
        lines = [f"torch {info.get('torch_version')} (CUDA build: {info.get('torch_cuda_build') or 'none'})",
                 f"default device: {info.get('default_device')}",
                 f"CUDA available: {info.get('cuda_available')}"]
        for d in info.get("cuda_devices", []):
            free = d.get("free_bytes")
            lines.append(f"  {d['device']}: {d['name']}, {d['total_bytes'] / 2**30:.1f} GiB"
                         f"{f', {free / 2**30:.1f} GiB free' if free is not None else ''}, "
                         f"compute {d['capability']}, bf16 {'yes' if d['bf16'] else 'no'}")
        lines.append(f"MPS available: {info.get('mps_available')}")
        lines.append(f"CPU: {info.get('cpu_count')} cores, torch uses {info.get('cpu_threads')} threads")
        ram = info.get("ram_total_bytes")
        if ram:
            lines.append(f"RAM: {ram / 2**30:.1f} GiB total, {(info.get('ram_available_bytes') or 0) / 2**30:.1f} "
                         f"GiB available")
        box = QMessageBox(QMessageBox.Icon.Information, "Devices", "\n".join(lines), parent=self)
        box.setModal(False)
        box.show()
        self.device_status.setText(f"device: {info.get('default_device')} (auto)")

    def show_plugins(self) -> None:
        if self._host is None:
            return
        lines = [f"{s.name} [{s.source}] {s.status}{': ' + s.error if s.error else ''}"
                 for s in self._host.list_statuses()]
        box = QMessageBox(QMessageBox.Icon.Information, "Plugins", "\n".join(lines) or "no plugins", parent=self)
        box.setModal(False)
        box.show()

    def _about(self) -> None:
        from vfmstudio import __version__

        QMessageBox.about(self, "About vfmstudio", f"vfmstudio {__version__}\nA studio for vision foundation "
                                                   "models: DINOv2, CLIP/SigLIP and PaliGemma 2.")

    # ================================================================ settings
    def _remember_recent(self, folder: Path) -> None:
        recent = [str(folder.resolve())] + [p for p in self._recent() if p != str(folder.resolve())]
        self.settings.setValue("recent_folders", recent[:MAX_RECENT])
        self._refresh_recent_menu()

    def _recent(self) -> list[str]:
        value = self.settings.value("recent_folders", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        for folder in self._recent():
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.open_paths([f]))
        self.recent_menu.setEnabled(bool(self._recent()))

    def _restore_state(self) -> None:
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray | bytes):
            self.restoreState(state)
            # A layout saved on another screen can squeeze the canvas to a sliver: shrink the docks
            # back rather than hide the image the user came to see.
            QTimer.singleShot(0, self._unsqueeze_canvas)

    def _unsqueeze_canvas(self) -> None:
        from PySide6.QtWidgets import QDockWidget

        central = self.centralWidget()
        if central is None or not self.isVisible():
            return
        area = Qt.DockWidgetArea
        docks = [d for d in self.findChildren(QDockWidget) if d.isVisible() and not d.isFloating()]
        squeezed = central.width() < 0.35 * self.width() or central.height() < 0.35 * self.height()
        if central.width() < 0.35 * self.width():
            side = [d for d in docks if self.dockWidgetArea(d) in (area.LeftDockWidgetArea, area.RightDockWidgetArea)]
            self.resizeDocks(side, [min(340, int(0.2 * self.width()))] * len(side), Qt.Orientation.Horizontal)
        if central.height() < 0.35 * self.height():
            bottom = [d for d in docks if self.dockWidgetArea(d) == area.BottomDockWidgetArea]
            self.resizeDocks(bottom, [int(0.2 * self.height())] * len(bottom), Qt.Orientation.Vertical)
        if squeezed:
            QTimer.singleShot(0, self.canvas.fit)

    def closeEvent(self, event) -> None:
        if not self._ready:
            super().closeEvent(event)
            return
        self.labelling.close()  # unsaved edits are written before anything else goes
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        logging.getLogger("vfmstudio").removeHandler(self._log_handler)
        self.prefetcher.cancel()
        self.runner.cancel_where(lambda job: True)
        self.runner.shutdown(timeout=2.0)
        self.browser.thumbnails.reset()
        super().closeEvent(event)

