"""Starting the window: a QApplication, a bare main window mapped at once, the rest built on the
first event-loop turn, plugins loaded after that, and the first image after that.

``VFMSTUDIO_STARTUP_TRACE=FILE`` appends ``<event> <unix time>`` lines (shown, ready, image) so
benchmarks/bench_startup.py can report each stage, not only the first mapped frame.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

TRACE_ENV = "VFMSTUDIO_STARTUP_TRACE"


def _tracer():
    from vfmstudio import settings

    target = settings.get(TRACE_ENV, strict=False)
    if not target:
        return lambda event: None

    def trace(event: str) -> None:
        with open(target, "a", encoding="utf-8") as f:
            f.write(f"{event} {time.time():.6f}\n")

    return trace


def run_gui(
    paths: Sequence[str | Path] = (), *, safe_mode: bool = False, argv: list[str] | None = None
) -> int:
    """Open the studio on ``paths`` (folders or files) and run the event loop; returns the exit code."""
    trace = _tracer()
    QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("vfmstudio")
    app.setOrganizationName("vfmstudio")
    app.setApplicationDisplayName("vfmstudio")

    from vfmstudio.qt.theme import follow_system

    follow_system(app)

    from vfmstudio.qt.main_window import MainWindow

    window = MainWindow(safe_mode=safe_mode, deferred=True)
    window.show()
    from vfmstudio.qt.work_guard import install_fatal_signal_saver

    # SIGTERM/SIGHUP: save the edits and let go of the project's lock before the process ends.
    install_fatal_signal_saver(
        app, lambda: window.labelling.close() if hasattr(window, "labelling") else None
    )
    app.processEvents()  # map and paint the bare frame now, before the heavy imports
    trace("shown")

    def on_ready() -> None:
        trace("ready")
        window.loader.loaded.connect(lambda *_: trace("image"), Qt.ConnectionType.SingleShotConnection)

    window.ready.connect(on_ready)
    QTimer.singleShot(0, window.build)
    if paths:
        window.open_paths(list(paths))  # held until the window is built
    return app.exec()
