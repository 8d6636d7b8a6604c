"""Labelling in the window: wires the project session, the canvas edit tools, the Labels and
History docks, the Edit menu and File > project/export actions into :class:`MainWindow`.

The window calls four hooks: :meth:`Labelling.paths_opened` (a folder opens its project),
:meth:`Labelling.image_shown` (annotations follow the image on view), :meth:`Labelling.close`
(flush unsaved edits) and nothing else; everything here reaches the window through its public
attributes (canvas, runner, messages, menus), typed by :class:`vfmstudio.qt.window_api.StudioWindow`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMessageBox, QPushButton, QScrollArea, QUndoView

from vfmstudio.qt.edit_tools import EditController
from vfmstudio.qt.labels_dock import LabelsPanel
from vfmstudio.qt.project_session import ProjectSession

if TYPE_CHECKING:
    from vfmstudio.qt.window_api import StudioWindow

# Single keys that do not clash with D/A (images), F, 1 (zoom) and Esc (cancel).
TOOL_KEYS = {
    "view": ("Pan / point tools", "H"),
    "select": ("Select / edit", "V"),
    "box": ("Draw box", "B"),
    "polygon": ("Draw polygon", "P"),
    "brush": ("Brush mask", "M"),
    "erase": ("Erase mask", "E"),
    "polyline": ("Draw line", "L"),
    "ellipse": ("Draw ellipse", "O"),
    "rotated": ("Draw rotated box", "R"),
    "keypoints": ("Draw keypoints", "K"),
}


class Labelling(QObject):
    def __init__(self, window: StudioWindow, *, autosave_ms: int | None = None):
        super().__init__(window)
        self.window = window
        kwargs = {} if autosave_ms is None else {"autosave_ms": autosave_ms}
        self.session = ProjectSession(
            self, ask_recovery=self._ask_recovery_dialog, ask_conflict=self._ask_conflict_dialog, **kwargs
        )
        self.controller = EditController(window.canvas, self.session, self)
        self.controller.hint.connect(lambda text: window.statusBar().showMessage(text, 8000))
        self.session.message.connect(lambda level, text: window.messages.post(level, text))
        self.session.dirty_changed.connect(window.setWindowModified)
        self.session.project_changed.connect(self._on_project_changed)
        self.session.saved.connect(
            lambda path: window.statusBar().showMessage(f"saved {Path(path).name}", 2000)
        )

        self.tool_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for mode, (text, key) in TOOL_KEYS.items():
            action = QAction(f"{text} ({key})", window)
            action.setIconText(text.split(" / ")[0].replace("Draw ", "").replace(" mask", "").capitalize())
            action.setToolTip(f"{text} ({key})")
            action.setCheckable(True)
            # "B" as typed with Shift too: a list with focus would otherwise take Shift+B for its
            # type-ahead search, and the key would seem dead. Text fields still type the letter.
            action.setShortcuts([QKeySequence(key), QKeySequence(f"Shift+{key}")])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _=False, m=mode: self.set_mode(m))
            group.addAction(action)
            window.addAction(action)
            self.tool_actions[mode] = action
        self.tool_actions["view"].setChecked(True)

        self.panel = LabelsPanel(self.session, self.controller, self.tool_actions, window)
        self.panel.accept_requested.connect(self.accept_dialog)
        # In a scroll area, so the dock never forces the window taller than the screen (the right
        # column also holds the tools).
        scroll = QScrollArea(window)
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.dock = self._dock("Labels", scroll, Qt.DockWidgetArea.RightDockWidgetArea)
        window.tabifyDockWidget(window.dock_layers, self.dock)
        self.history = QUndoView(self.session.stack, window)
        self.history.setEmptyLabel("<opened>")
        self.dock_history = self._dock("History", self.history, Qt.DockWidgetArea.BottomDockWidgetArea)
        window.tabifyDockWidget(window.dock_messages, self.dock_history)
        window.dock_results.raise_()
        self._build_menus()
        self._update_title()

    def _dock(self, title: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self.window)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.window.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self.window)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.window.addAction(action)
        return action

    def _build_menus(self) -> None:
        w = self.window
        menus = w.menus
        file_menu, quit_action = menus.file, menus.quit
        self.project_actions = {
            "open_project": self._action("Open &Project…", self.open_project_dialog, "Ctrl+Shift+P"),
            "save": self._action("&Save Project", self.save, QKeySequence.StandardKey.Save),
            "save_as": self._action("Save Project &As…", self.save_as_dialog, "Ctrl+Shift+S"),
            "import": self._action("&Import…", self.import_dialog, "Ctrl+I"),
            "export": self._action("&Export…", self.export_dialog, "Ctrl+E"),
        }
        a = self.project_actions
        for action in (a["open_project"], a["save"], a["save_as"], None, a["import"], a["export"], None):
            if action is None:
                file_menu.insertSeparator(quit_action)
            else:
                file_menu.insertAction(quit_action, action)

        edit = menus.edit
        stack = self.session.stack
        self.undo_action = stack.createUndoAction(w, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = stack.createRedoAction(w, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for action in (self.undo_action, self.redo_action):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            w.addAction(action)
            edit.addAction(action)
        edit.addSeparator()
        for action in self.tool_actions.values():
            edit.addAction(action)
        edit.addSeparator()
        edit.addAction(
            self._action("&Delete Selected", self.controller.delete_selected, QKeySequence.StandardKey.Delete)
        )
        edit.addAction(self._action("&Accept Predictions…", self.accept_dialog, "Ctrl+Return"))
        edit.addAction(
            self._action("Accept Selected &Layer", self._accept_selected_layer, "Ctrl+Shift+Return")
        )
        edit.addSeparator()
        self.propagate_action = self._action("&Propagate Labels to Selected Images", self.propagate)
        self.propagate_action.setToolTip(
            "The annotations of the image on view (or the selected masks layer) "
            "are the reference; the other selected images get mask suggestions"
        )
        edit.addAction(self.propagate_action)
        self.propagate_button = QPushButton("Propagate to selected images", self.panel)
        self.propagate_button.setToolTip(self.propagate_action.toolTip())
        self.propagate_button.clicked.connect(self.propagate)
        self.panel.layout().addWidget(self.propagate_button)
        # The labelling docks are docks like the others: their toggles sit in View with theirs.
        menus.view.addAction(self.dock.toggleViewAction())
        menus.view.addAction(self.dock_history.toggleViewAction())

    # ---------------------------------------------------------------- modes
    def set_mode(self, mode: str) -> None:
        self.controller.set_mode(mode)
        self.tool_actions[mode].setChecked(True)
        if mode != "view":
            self.dock.raise_()

    # ---------------------------------------------------------------- hooks from the window
    def paths_opened(self, paths: list[Path], files: list[Path]) -> None:
        """A folder (or files) opened: use the project of that folder unless it is already open."""
        folders = [Path(p) for p in paths if Path(p).is_dir()]
        root = folders[0] if folders else (files[0].parent if files else None)
        if root is None:
            return
        session = self.session
        # A project of this folder is already open (File > Open Project may name another file than
        # vfmstudio.json, and a refused file stays refused): keep it.
        same_folder = session.path.parent.resolve() == root.resolve()
        opened = not session.read_only or bool(session.refused_reason)
        if not (same_folder and opened):
            session.open(root / "vfmstudio.json")
        self._update_title()

    def image_shown(self, path: Path | None, image) -> None:
        if image is None or path is None:
            self.controller.attach(None, 0, 0)
        else:
            self.controller.attach(path, image.width, image.height)
        self.panel.refresh()

    def close(self) -> None:
        self.session.close()

    # ---------------------------------------------------------------- project
    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open project", "", "vfmstudio project (*.json)")
        if path:
            self.open_project(Path(path))

    def open_project(self, path: Path) -> bool:
        ok = self.session.open(path)
        self.window.open_paths([self.session.project.root])
        return ok

    def save(self) -> bool:
        if self.session.read_only:
            return self.save_as_dialog()
        return self.session.save()

    def save_as_dialog(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Save project as", str(self.session.path), "vfmstudio project (*.json)"
        )
        return self.session.save_as(Path(path)) if path else False

    def _ask_recovery_dialog(self, question: str) -> bool:
        answer = QMessageBox.question(
            self.window,
            "Recover project",
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _ask_conflict_dialog(self, message: str):
        from vfmstudio.qt.conflict_dialog import ask_conflict

        return ask_conflict(self.window, message, self.session.path)

    def _on_project_changed(self) -> None:
        self._update_title()
        # The image on view stays editable only if it belongs to the new project's folder; otherwise
        # editing waits for the image the new folder shows (never an edit keyed outside the project).
        c, w = self.controller, self.window
        root = self.session.project.root.resolve()
        inside = c.image_path is not None and root in Path(c.image_path).resolve().parents
        if inside and w.current is not None:
            c.attach(c.image_path, w.current.width, w.current.height)
        else:
            c.attach(None, 0, 0)
        self.panel.refresh()
        if self.session.project.images:
            self._check_images()

    def _update_title(self) -> None:
        title = self.window.windowTitle().replace("[*]", "").rstrip()
        if self.session.read_only and self.session.refused_reason:
            title += " (project not saved: file refused)"
        self.window.setWindowTitle(title + "[*]")
        self.window.setWindowModified(self.session.dirty)

    def _check_images(self) -> None:
        """Moved, changed or missing images, checked on the job runner (hashing can take a while)."""
        project = self.session.project

        def job(ctx) -> list:
            return project.check_images(cancel=ctx.cancel, on_progress=lambda f, m: ctx.progress(f, m))

        self.window.runner.submit(job, key="project-check", source="project", on_done=self._on_images_checked)

    def _on_images_checked(self, result) -> None:
        if result.status == "done":
            for issue in result.value:
                self.window.messages.post("warning", f"{self.session.path.name}: {issue}")
            if result.value:
                self.window.dock_messages.raise_()
        elif result.error is not None:
            self.window.messages.post("error", f"checking images: {result.error.message}")

    # ---------------------------------------------------------------- accepting predictions
    def accept_items(
        self,
        items,
        *,
        masks_as_polygons: bool = False,
        tolerance: float = 1.0,
        masks_as_rotated_boxes: bool = False,
    ) -> bool:
        from vfmstudio.session.accepting import accept_command

        key = self.controller.ensure_key()
        if key is None or not items:
            return False
        command = accept_command(
            items,
            key,
            self.session.labels,
            masks_as_polygons=masks_as_polygons,
            tolerance=tolerance,
            masks_as_rotated_boxes=masks_as_rotated_boxes,
        )
        return command is not None and self.session.push(command)

    def predictions_on_view(self) -> list:
        w = self.window
        return w.session.predictions_on(w.current.id) if w.current is not None else []

    def accept_all(self, tool: str | None = None, **options) -> bool:
        """Accept every default item of the predictions on view (of ``tool`` only, if given)."""
        from vfmstudio.session.accepting import acceptable_items

        w = self.window
        if w.current is None:
            return False
        items = [
            it
            for it in acceptable_items(self.predictions_on_view(), w.current.id)
            if it.default and (tool is None or it.prediction.tool == tool)
        ]
        return self.accept_items(items, **options)

    def accept_layer(self, layer_id: int, **options) -> bool:
        """Accept every item a prediction layer draws (masks or boxes) in one undo step."""
        from vfmstudio.session.accepting import acceptable_items, layer_items

        layer = self.window.layer_store.find(layer_id)
        if layer is None:
            return False
        return self.accept_items(
            layer_items(acceptable_items([layer.prediction], layer.image_id), layer), **options
        )

    def _accept_selected_layer(self) -> bool:
        layer = self.window.layers.selected_layer()
        if layer is None or not self.accept_layer(layer.id):
            self.window.messages.post(
                "warning", "select a masks or boxes layer in the Layers dock to accept it"
            )
            return False
        return True

    def accept_dialog(self) -> bool:
        from vfmstudio.qt.accept_dialog import AcceptDialog
        from vfmstudio.session.accepting import acceptable_items, layer_items

        w = self.window
        if w.current is None:
            w.messages.post("warning", "open an image and run a tool before accepting predictions")
            return False
        items = acceptable_items(self.predictions_on_view(), w.current.id)
        if not items:
            w.messages.post("warning", "no predictions to accept on this image (boxes, masks, tags or text)")
            return False
        # With a Masks or Detections layer selected in the Layers dock, only its items start ticked.
        layer = w.layers.selected_layer()
        chosen = {id(it) for it in layer_items(items, layer)} if layer is not None else set()
        smart = getattr(w, "smart_tool", None)
        dialog = AcceptDialog(
            items,
            w,
            preselect=(lambda it: id(it) in chosen) if chosen else None,
            can_refine=smart is not None and smart.can_refine(),
        )
        if dialog.exec() != AcceptDialog.DialogCode.Accepted:
            return False
        options = dialog.options()
        picked = dialog.chosen()
        if smart is not None and dialog.refine.isChecked():  # boxes go to SAM; their masks arrive later
            from vfmstudio.core.results import Detections

            boxes = [it for it in picked if isinstance(it.prediction.results[it.result], Detections)]
            picked = [it for it in picked if not isinstance(it.prediction.results[it.result], Detections)]
            smart.refine_boxes(boxes, **options)
        return self.accept_items(picked, **options)

    # ---------------------------------------------------------------- propagate
    def propagate(self) -> int | None:
        """dino.propagate with the image on view as the reference: the masks layer selected in the
        Layers dock, else the image's annotations (class names kept); the other selected images are
        the targets."""
        from vfmstudio.core.results import Masks
        from vfmstudio.session.propagate import PROPAGATE_TOOL, masks_of_annotations, propagate_request

        w = self.window
        tool = w.session.tools.get(PROPAGATE_TOOL)
        layer = w.layers.selected_layer()
        reference = None
        if (
            layer is not None
            and isinstance(layer.result, Masks)
            and w.current is not None
            and layer.image_id == w.current.id
        ):
            reference = layer.result
        elif w.current is not None and self.controller.image_key is not None:
            reference = masks_of_annotations(
                self.session.labels.annotations(self.controller.image_key),
                w.current.width,
                w.current.height,
                w.current.id,
            )
        params: dict = {}
        model = None
        if tool is not None:
            choice = w.tool_memory.store.choice(tool)
            params = {
                k: v for k, v in tool.resolve_params({"masks": "{}", **choice.params}).items() if k != "masks"
            }
            model = choice.model
        return w.controller.handle(propagate_request(w.session, tool, reference, params, model))

    # ---------------------------------------------------------------- export
    def export_dialog(self):
        from vfmstudio.qt.export_dialog import ExportDialog

        w = self.window
        host = w.host
        formats = list(host.formats.values()) if host is not None else []
        dialog = ExportDialog(formats, self.session.project, w.runner, w)
        dialog.finished_export.connect(self._on_export_finished)
        dialog.setModal(False)
        dialog.show()
        self.export = dialog
        return dialog

    def import_dialog(self):
        from vfmstudio.qt.import_dialog import ImportDialog

        w = self.window
        formats = list(w.host.formats.values()) if w.host is not None else []
        dialog = ImportDialog(formats, self.session.project, w.runner, w)
        dialog.imported.connect(self.apply_import)
        dialog.setModal(False)
        dialog.show()
        self.import_ = dialog
        return dialog

    def apply_import(self, before, merged, warnings) -> bool:
        """Add what an import brought (computed off the GUI thread) as one undo step."""
        from vfmstudio.session.importing import merge_command

        command, images, counts = merge_command(before, merged)
        for key, rec in images.items():
            self.session.project.images.setdefault(key, rec)
        for text in warnings:
            self.window.messages.post("warning", f"import: {text}")
        report = getattr(getattr(self, "import_", None), "report", "")
        if report:  # what the files held: kept, converted, dropped
            self.window.messages.post("info", f"import read: {report}")
        if command is None:
            self.window.messages.post("info", "import: nothing new to add")
            return False
        ok = self.session.push(command)
        if ok:
            self.window.messages.post(
                "info",
                f"imported {counts['annotations']} annotations on "
                f"{counts['images']} new images, {counts['classes']} new classes",
            )
            self._check_images()
        return ok

    def _on_export_finished(self, status: str, value) -> None:
        if status == "done":
            for text in self.export.warnings:  # what the format cannot hold (holes, points, ...)
                self.window.messages.post("warning", f"export: {text}")
            if self.export.report:
                self.window.messages.post("info", f"export written: {self.export.report}")
            self.window.messages.post("info", f"exported {len(value)} files")
        elif status == "cancelled":
            self.window.messages.post("info", "export cancelled")
        else:
            self.window.messages.post("error", f"export failed: {value}")
