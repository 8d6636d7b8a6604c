"""Keeping the user's edits when something may end the window: a plugin tool about to run, or a
signal that would end the process (SIGTERM from a logout or ``kill``, SIGHUP from a closed
terminal). See ADR 0107.

A Python signal handler runs only when the interpreter gets control, which a Qt event loop idle
in C++ never gives it; ``signal.set_wakeup_fd`` writes a byte to a socket the event loop watches,
so the handler runs at once. The handler saves, then quits the application.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier
from PySide6.QtWidgets import QApplication

FATAL_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def save_before_tool(flush: Callable[[], None], tool: Any, *, live: bool) -> None:
    """Save pending edits before a tool runs: before every run of a third-party tool (it may end
    the process however it is run), and before each non-interactive run of a built-in."""
    from vfmstudio.isolation import is_builtin

    if not live or not is_builtin(tool):
        flush()


class FatalSignalSaver(QObject):
    """Runs ``flush`` and quits the application when a fatal signal arrives."""

    def __init__(self, app: QApplication, flush: Callable[[], None]):
        super().__init__(app)
        self._flush = flush
        self._app = app
        self.received: list[int] = []
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._wsock.fileno())
        self._notifier = QSocketNotifier(self._rsock.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in FATAL_SIGNALS}

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            self._rsock.recv(64)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.received.append(signum)
        try:
            self._flush()
        finally:
            self._app.exit(128 + signum)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_fd)
        self._notifier.setEnabled(False)
        self._rsock.close()
        self._wsock.close()


def install_fatal_signal_saver(app: QApplication, flush: Callable[[], None]) -> FatalSignalSaver:
    return FatalSignalSaver(app, flush)
