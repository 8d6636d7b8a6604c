"""The window's menus and actions, kept as attributes (never looked up by their display text)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QStyle, QWidget


@dataclass
class Menus:
    file: QMenu
    recent: QMenu
    edit: QMenu
    view: QMenu  # ends with one toggle per dock (the labelling docks add theirs)
    run: QMenu
    help: QMenu
    quit: QAction
    actions: dict[str, QAction] = field(default_factory=dict)


def add_action(
    window: QWidget, text: str, slot, shortcut=None, icon=None, menu: QMenu | None = None
) -> QAction:
    """An action on ``window`` (so its shortcut works wherever focus is in the window)."""
    action = QAction(text, window)
    if icon is not None:
        action.setIcon(window.style().standardIcon(icon))
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.triggered.connect(slot)
    window.addAction(action)
    if menu is not None:
        menu.addAction(action)
    return action


def open_explore(w: Any) -> None:
    from vfmstudio.qt.explore_window import open_explore as show

    show(w)


def build_menus(w: Any) -> Menus:
    sp = QStyle.StandardPixmap
    bar = w.menuBar()
    file_menu = bar.addMenu("&File")
    acts: dict[str, QAction] = {}
    acts["open_folder"] = add_action(
        w,
        "Open &Folder…",
        lambda: open_folder_dialog(w),
        QKeySequence.StandardKey.Open,
        sp.SP_DirOpenIcon,
        file_menu,
    )
    acts["open_images"] = add_action(
        w, "Open &Images…", lambda: open_files_dialog(w), "Ctrl+Shift+O", sp.SP_FileIcon, file_menu
    )
    recent = file_menu.addMenu("Recent Folders")
    file_menu.addSeparator()
    quit_action = add_action(w, "&Quit", w.close, QKeySequence.StandardKey.Quit, None, file_menu)
    edit = bar.addMenu("&Edit")
    view = bar.addMenu("&View")
    canvas = w.canvas
    acts["next"] = add_action(w, "Next Image", lambda: w.browser.step(+1), "D", sp.SP_ArrowForward, view)
    acts["previous"] = add_action(w, "Previous Image", lambda: w.browser.step(-1), "A", sp.SP_ArrowBack, view)
    view.addSeparator()
    acts["fit"] = add_action(w, "&Fit", canvas.fit, "F", None, view)
    acts["actual_size"] = add_action(w, "Actual Size (1:1)", canvas.actual_size, "1", None, view)
    acts["zoom_in"] = add_action(
        w, "Zoom In", lambda: canvas.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn, None, view
    )
    acts["zoom_out"] = add_action(
        w, "Zoom Out", lambda: canvas.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut, None, view
    )
    view.addSeparator()
    acts["explore"] = add_action(w, "&Explore Folder…", lambda: open_explore(w), "Ctrl+Shift+E", None, view)
    view.addSeparator()
    for dock in w.docks():
        view.addAction(dock.toggleViewAction())
    run = bar.addMenu("&Run")
    acts["run"] = add_action(w, "&Run Tool", w.run_current_tool, "Ctrl+R", sp.SP_MediaPlay, run)
    acts["cancel"] = add_action(w, "&Cancel", w.cancel_jobs, "Esc", sp.SP_BrowserStop, run)
    run.addSeparator()
    acts["devices"] = add_action(w, "&Devices…", w.show_devices, None, sp.SP_ComputerIcon, run)
    acts["time_limit"] = add_action(w, "&Time Limit…", w.run_settings.ask_tool_timeout, None, None, run)
    from vfmstudio.qt.model_manager import open_model_manager

    acts["models"] = add_action(w, "&Models…", lambda: open_model_manager(w), None, sp.SP_DriveNetIcon, run)
    help_menu = bar.addMenu("&Help")
    acts["plugins"] = add_action(w, "&Plugins…", w.plugins.show, None, None, help_menu)
    acts["about"] = add_action(w, "&About vfmstudio", w.plugins.about, None, None, help_menu)
    return Menus(file_menu, recent, edit, view, run, help_menu, quit_action, acts)


def open_folder_dialog(w: Any) -> None:
    folder = QFileDialog.getExistingDirectory(w, "Open a folder of images")
    if folder:
        w.open_paths([folder])


def open_files_dialog(w: Any) -> None:
    from vfmstudio.core.image import IMAGE_EXTENSIONS

    pattern = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
    files, _ = QFileDialog.getOpenFileNames(w, "Open images", "", f"Images ({pattern});;All files (*)")
    if files:
        w.open_paths(files)
