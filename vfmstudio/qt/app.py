"""Starting the window: a QApplication, the main window shown at once, plugins loaded after."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication


def run_gui(paths: Sequence[str | Path] = (), *, safe_mode: bool = False, argv: list[str] | None = None) -> int:
    """Open the studio on ``paths`` (folders or files) and run the event loop; returns the exit code."""
    QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("vfmstudio")
    app.setOrganizationName("vfmstudio")
    app.setApplicationDisplayName("vfmstudio")

    from vfmstudio.qt.main_window import MainWindow

    window = MainWindow(safe_mode=safe_mode)
    window.show()
    if paths:
        window.open_paths(list(paths))
    return app.exec()
