"""Running the Qt event loop for a while from a script that drives the window (screenshots)."""

from __future__ import annotations

import time


def pump(app, seconds: float = 0.3) -> None:
    """Handle events for ``seconds``, deferred deletions included: ``processEvents`` alone never
    deletes what ``deleteLater`` queued (only a running event loop does), so widgets Qt retired,
    such as the tab bars of re-tabified docks, would stay on screen and in the pictures."""
    from PySide6.QtCore import QCoreApplication, QEvent

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        time.sleep(0.01)
