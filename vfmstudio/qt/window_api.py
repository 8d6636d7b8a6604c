"""The narrow interface the labelling side needs from the studio window.

:mod:`vfmstudio.qt.editing` types against :class:`StudioWindow` instead of importing
``main_window`` (which imports it), so the two modules no longer import each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from vfmstudio.core.image import LoadedImage
    from vfmstudio.qt.window_menus import Menus
    from vfmstudio.session.model import Session


class StudioWindow(Protocol):
    canvas: Any  # vfmstudio.qt.canvas.Canvas
    runner: Any  # vfmstudio.qt.runner.QtJobRunner
    messages: Any  # vfmstudio.qt.messages.MessagesPanel
    layer_store: Any  # vfmstudio.qt.layers.LayerStore
    layers: Any  # vfmstudio.qt.layers_panel.LayersPanel
    menus: Menus
    session: Session
    dock_layers: Any
    dock_messages: Any
    dock_results: Any

    @property
    def current(self) -> LoadedImage | None: ...

    @property
    def host(self) -> Any: ...

    def open_paths(self, paths: list[str | Path]) -> int: ...

    def statusBar(self) -> Any: ...  # noqa: N802 - Qt's name

    def windowTitle(self) -> str: ...  # noqa: N802

    def setWindowTitle(self, title: str) -> None: ...  # noqa: N802

    def setWindowModified(self, modified: bool) -> None: ...  # noqa: N802

    def addDockWidget(self, area: Any, dock: Any) -> None: ...  # noqa: N802

    def tabifyDockWidget(self, first: Any, second: Any) -> None: ...  # noqa: N802

    def addAction(self, action: Any) -> None: ...  # noqa: N802
