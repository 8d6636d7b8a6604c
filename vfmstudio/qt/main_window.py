"""The studio window: builds the docks, views and menus and wires them together.

State and rules live in :class:`vfmstudio.session.model.Session` (no Qt); tool runs go through
:class:`vfmstudio.qt.controller.RunController`, which delivers each job's outcome to the callbacks
given at submit time. Results are stored per image content id, so a result that arrives after the
user moved on lands on its own image and is never drawn on another.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QWidget

# Everything that pulls in numpy, Pillow or the core is imported in build() and in the methods
# that need it, so `vfmstudio gui` can map its window first and fill it a moment later.
if TYPE_CHECKING:
    from vfmstudio.core.image import ImageLoadError, LoadedImage
    from vfmstudio.core.results import Prediction
    from vfmstudio.qt.runner import QtJobRunner

log = logging.getLogger(__name__)
#: The window may be this small (a 1024x640 laptop screen minus nothing: docks scroll inside).
MINIMUM_SIZE = (1024, 600)


class MainWindow(QMainWindow):
    """The studio. With ``deferred=True`` only a bare frame is built here: the caller shows it and
    then calls :meth:`build` (docks, canvas, then plugins on the next event-loop turn; ``ready``)."""

    ready = Signal()

    def __init__(
        self,
        *,
        host: Any = None,
        safe_mode: bool = False,
        runner: QtJobRunner | None = None,
        services: Any = None,
        settings: QSettings | None = None,
        deferred: bool = False,
    ):
        super().__init__()
        from vfmstudio.qt.window_state import WindowState

        self.setWindowTitle("vfmstudio")
        self.setMinimumSize(*MINIMUM_SIZE)
        self.resize(1400, 900)
        self._host, self._safe_mode, self._services, self._runner_arg = host, safe_mode, services, runner
        self._ready = False
        self._pending_paths: list[str | Path] | None = None
        self.settings = settings if settings is not None else QSettings("vfmstudio", "vfmstudio")
        self.state = WindowState(self, self.settings)
        self.state.restore_geometry()
        if deferred:
            placeholder = QLabel("Starting…", self)
            placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.setCentralWidget(placeholder)
        else:
            self.build()

    def build(self) -> None:
        if self._ready:
            return
        from vfmstudio.core.jobs import JobRunner
        from vfmstudio.qt.browser import ImageBrowser
        from vfmstudio.qt.controller import RunController
        from vfmstudio.qt.image_loader import ImageLoader, ImageStore
        from vfmstudio.qt.layers import LayerStore
        from vfmstudio.qt.layers_panel import LayersPanel
        from vfmstudio.qt.messages import LogHandler, MessagesPanel
        from vfmstudio.qt.results_panel import ResultsPanel
        from vfmstudio.qt.run_settings import RunSettings
        from vfmstudio.qt.runner import QtJobRunner
        from vfmstudio.qt.tool_memory import ToolMemory
        from vfmstudio.qt.tools_panel import ToolsPanel
        from vfmstudio.qt.views import CentralViews
        from vfmstudio.qt.window_menus import build_menus
        from vfmstudio.qt.window_plugins import WindowPlugins
        from vfmstudio.session.model import Session

        self.runner = self._runner_arg or QtJobRunner(parent=self)
        self.tasks = QtJobRunner(JobRunner(thread_name="vfmstudio-tasks"), self)  # plugin loading
        self.images = ImageStore()
        self.session = Session(path_of=self.images.path_of)
        self.run_settings = RunSettings(self)
        self.plugins = WindowPlugins(self)
        self.prefetcher = self.run_settings.make_prefetcher()
        self.loader = ImageLoader(self.images, self)
        self.current: LoadedImage | None = None
        self.layer_store = LayerStore(self)
        self.views = CentralViews(self.layer_store, self.images, self)
        self.canvas, self.pair_view, self.grid_view = (
            self.views.canvas,
            self.views.pair_view,
            self.views.grid_view,
        )
        self.central_tabs = self.views.tabs
        self.setCentralWidget(self.central_tabs)

        self.browser = ImageBrowser(self)
        self.tools = ToolsPanel(self)
        self.layers = LayersPanel(self.layer_store, self)
        self.results = ResultsPanel(self._thumbnail_for_id, self, name_for=self._name_for_id)
        self.messages = MessagesPanel(self)
        area = Qt.DockWidgetArea
        self.dock_browser = self._dock("Images", self.browser, area.LeftDockWidgetArea)
        self.dock_tools = self._dock("Tools", self.tools, area.RightDockWidgetArea)
        self.dock_layers = self._dock("Layers", self.layers, area.RightDockWidgetArea, scroll=True)
        self.dock_results = self._dock("Results", self.results, area.BottomDockWidgetArea)
        self.dock_messages = self._dock("Messages", self.messages, area.BottomDockWidgetArea)
        # Side docks run the full height; results and messages sit under the canvas only.
        self.setCorner(Qt.Corner.BottomLeftCorner, area.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, area.RightDockWidgetArea)
        self.tabifyDockWidget(self.dock_results, self.dock_messages)
        self.dock_results.raise_()
        self.resizeDocks([self.dock_browser, self.dock_tools], [200, 320], Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_results], [170], Qt.Orientation.Vertical)
        self.resizeDocks([self.dock_tools, self.dock_layers], [560, 340], Qt.Orientation.Vertical)

        self.pixel_label, self.zoom_label = QLabel("", self), QLabel("", self)
        self.device_status = QLabel("device: …", self)
        self.device_status.setObjectName("device_status")
        sb = self.statusBar()
        sb.addWidget(self.pixel_label, 1)
        sb.addPermanentWidget(self.zoom_label)
        sb.addPermanentWidget(self.device_status)
        self.menus = build_menus(self)
        self.state.refresh_recent_menu()
        self.controller = RunController(self, self.session, self.runner, self._services)
        from vfmstudio.qt.download_dialog import offer_after_failure

        self.controller.on_model_missing = lambda request, message: offer_after_failure(
            self, request, message
        )
        self.tool_memory = ToolMemory(self.tools, self.settings, self)
        from vfmstudio.qt.editing import Labelling

        self.labelling = Labelling(self)  # Labels/History docks, Edit menu, project and export actions
        from vfmstudio.qt.auto_label import AutoLabel

        self.auto_label = AutoLabel(self)  # Run › Run on All Images…, its progress panel and resume
        from vfmstudio.qt.review_panel import Review

        self.review = Review(self)  # the Review dock and mode, window.pending, the list's review states
        from vfmstudio.qt.smart_tool import SmartTool

        self.smart_tool = SmartTool(self)  # click-to-mask with SAM (key S)
        self.setAcceptDrops(True)
        self._wire()
        self._log_handler = LogHandler(self.messages)
        logging.getLogger("vfmstudio").addHandler(self._log_handler)
        self.state.restore_docks()
        self.run_settings.show_probe_device()
        self._ready = True
        # Plugins load after the first paint: the window appears before any plugin code runs.
        QTimer.singleShot(0, self.load_plugins)
        if self._pending_paths is not None:
            paths, self._pending_paths = self._pending_paths, None
            self.open_paths(paths)
        self.ready.emit()

    def _wire(self) -> None:
        from vfmstudio.qt.views import cursor_text, export_layer

        c = self.controller
        self.browser.current_changed.connect(self._on_current_path)
        self.browser.list.itemSelectionChanged.connect(self._on_selection)
        self.loader.loaded.connect(self._on_image_loaded)
        self.loader.failed.connect(self._on_image_failed)
        self.canvas.cursor_moved.connect(lambda info: self.pixel_label.setText(cursor_text(info, self)))
        self.canvas.zoom_changed.connect(lambda s: self.zoom_label.setText(f"{s * 100:.0f} %"))
        self.views.clicked.connect(lambda x, y, view, ids: c.point_clicked(x, y, view, tuple(ids)))
        self.tools.run_requested.connect(self.run_current_tool)
        self.tools.cancel_requested.connect(self.cancel_jobs)
        self.tools.devices_requested.connect(self.show_devices)
        self.tools.params_edited.connect(c.on_params_edited)
        self.results.asked.connect(self.ask)
        self.results.open_image.connect(self.show_image_id)
        self.layer_store.changed.connect(self._on_layers_changed)
        self.layer_store.removed.connect(self._on_layers_removed)
        self.layer_store.restored.connect(
            lambda i, layers: self.session.restore(i, {la.prediction for la in layers})
        )
        self.layers.export_requested.connect(lambda layer_id: export_layer(self, layer_id))
        self.layers.layer_scrubbed.connect(c.layer_scrubbed)
        self.layers.histogram.threshold_dragged.connect(c.threshold_moved)
        self.layers.histogram.threshold_released.connect(c.threshold_moved)

    def _dock(
        self, title: str, widget: QWidget, area: Qt.DockWidgetArea, scroll: bool = False
    ) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        if scroll:  # a short screen scrolls the dock instead of squeezing its rows over each other
            from vfmstudio.qt.layout import vertical_scroller

            widget = vertical_scroller(widget, self)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def docks(self) -> list[QDockWidget]:
        return [self.dock_browser, self.dock_tools, self.dock_layers, self.dock_results, self.dock_messages]

    # ================================================================ public accessors
    @property
    def current_path(self) -> Path | None:
        return self.session.current_path

    @property
    def jobs(self) -> dict:
        """Tool runs in flight (job id -> request)."""
        return self.controller.jobs

    def image_id_of(self, path: Path) -> str | None:
        image = self.images.cached(path)
        return image.id if image is not None else None

    def recent_folders(self) -> list[str]:
        return self.state.recent()

    # ================================================================ delegates (menus and tests call these)
    @property
    def host(self):
        return self._host

    def load_plugins(self) -> None:
        self.plugins.load()

    def tool_timeout_s(self) -> float | None:
        return self.run_settings.tool_timeout_s()

    def set_tool_timeout(self, seconds: float) -> None:
        self.run_settings.set_tool_timeout(seconds)

    def show_devices(self) -> None:
        self.run_settings.show_devices()

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
        self.session.open([Path(p) for p in paths], files)
        self.browser.set_paths(files)
        folder = self.session.folder
        if folder is not None:
            self.state.remember_recent(folder)
        self.setWindowTitle(f"vfmstudio — {folder.name if folder else f'{len(files)} images'}")
        self.labelling.paths_opened([Path(p) for p in paths], files)
        if not files:
            self.messages.post("warning", "no images found in " + ", ".join(str(p) for p in paths))
        return len(files)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)

    def show_image_id(self, image_id: str) -> bool:
        """Bring an image (e.g. a ranking row's) on view."""
        path = self.images.path_of(image_id)
        if path is None or not self.browser.select_path(path):
            return False
        self.central_tabs.setCurrentWidget(self.canvas)
        return True

    def _on_selection(self) -> None:
        selected = self.browser.selected_paths()
        self.session.select(selected)
        ids = [self.image_id_of(p) for p in selected]
        self.views.selection_changed([i for i in ids if i is not None] if len(selected) >= 2 else None)

    def _on_current_path(self, path: Path | None) -> None:
        self.controller.cancel_live()
        self.session.show(path)
        if path is None:
            self._show_image(None)
            return
        self.pixel_label.setText(f"loading {path.name}…")
        self.loader.request(path)
        self.schedule_prefetch()

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
        image_id = image.id if image is not None else None
        self.session.show(self.current_path, image_id)
        self.views.show_image(image_id, image.pixels if image is not None else None)
        self.labelling.image_shown(self.current_path, image)
        self.layers.show_image(image_id)
        self.results.show_image(image_id)
        self._redraw_layers()
        self.controller.update_histogram()

    def _thumbnail_for_id(self, image_id: str):
        path = self.images.path_of(image_id)
        return self.browser.thumbnail(path) if path is not None else None

    def _name_for_id(self, image_id: str) -> str | None:
        path = self.images.path_of(image_id)
        return path.name if path is not None else None

    # ================================================================ canvas and layers
    def _on_layers_changed(self, image_id: str) -> None:
        if image_id in self.grid_view.image_ids:
            self.grid_view.refresh_layers()  # every tile: matches on one image draw on another
        if self.current is not None and image_id == self.current.id:
            self._redraw_layers()

    def _on_layers_removed(self, image_id: str, layers: list) -> None:
        """Predictions whose layers were all removed are no longer offered (e.g. by Accept)."""
        left = {id(la.prediction) for la in self.layer_store.layers(image_id)}
        self.session.forget(image_id, [p for p in {la.prediction for la in layers} if id(p) not in left])

    def _redraw_layers(self) -> None:
        self.views.redraw_layers(
            (self.current.width, self.current.height) if self.current is not None else None
        )

    # ================================================================ running tools (controller)
    def run_current_tool(self, live: bool = False) -> int | None:
        return self.controller.run_current_tool(live)

    def submit_tool(
        self,
        tool,
        params: dict[str, Any],
        *,
        model: str | None = None,
        paths: list[Path] | None = None,
        live: bool = False,
    ) -> int | None:
        """Queue ``tool`` with ``params`` (on ``paths``, else the session's inputs); the job id."""
        from vfmstudio.session.requests import Refusal, RunRequest

        found = tuple(paths) if paths else self.session.input_paths(tool)
        if isinstance(found, Refusal):
            return self.controller.handle(found)
        device, precision = self.tools.device_combo.currentText(), self.tools.precision_combo.currentText()
        return self.controller.submit(RunRequest(tool, dict(params), found, model, device, precision, live))

    def ask(self, question: str) -> int | None:
        return self.controller.ask(question)

    def cancel_jobs(self) -> int:
        return self.controller.cancel_all()

    def add_prediction(self, prediction: Prediction, rasters: dict | None = None) -> None:
        self.controller.add_prediction(prediction, rasters)

    def schedule_prefetch(self) -> None:
        self.prefetcher.schedule(self.browser.paths(), self.current_path, self.controller.prefetch_request)

    def closeEvent(self, event) -> None:
        if not self._ready:
            super().closeEvent(event)
            return
        self.labelling.close()  # unsaved edits are written before anything else goes
        self.state.save()
        self.tool_memory.save()
        logging.getLogger("vfmstudio").removeHandler(self._log_handler)
        self.prefetcher.cancel()
        self.runner.cancel_where(lambda job: True)
        self.runner.shutdown(timeout=2.0)
        self.loader.shutdown()
        self.browser.thumbnails.shutdown()
        self.tasks.shutdown(timeout=1.0)
        super().closeEvent(event)
