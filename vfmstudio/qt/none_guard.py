"""A guard against a reference-count bug of PySide6/shiboken6 6.12 on CPython 3.11.

There, every call of a Qt method that returns nothing (``QLabel.setText``, ``QPainter.setPen``,
``QPainterPath.lineTo``, ...) takes one reference from ``None`` without having given one: 100
calls lower ``sys.getrefcount(None)`` by 100. ``None`` starts with a few thousand references, so a
busy window would reach zero and abort with "none_dealloc: deallocating None". From CPython 3.12
``None`` is immortal and the bug is harmless.

The guard gives ``None`` back the references the bindings took: whenever the count runs low it
raises ``None``'s reference count in place (CPython 3.11 keeps it in the object's first word).
A list of extra references would not do: it is freed at exit, and the interpreter then aborts
while shutting down. Painting code also keeps its Qt calls per repaint constant (see
``annotation_item``), so refills stay rare.
"""

from __future__ import annotations

import ctypes
import sys

LOW = 500_000
REFILL = 1_000_000


def top_up() -> int:
    """Refill when ``None`` runs low; returns how many references were added."""
    if sys.version_info >= (3, 12) or hasattr(sys, "gettotalrefcount") or sys.getrefcount(None) >= LOW:
        return 0  # immortal None, or a debug build whose object header differs
    ctypes.c_ssize_t.from_address(id(None)).value += REFILL
    return REFILL


def install(parent) -> object | None:
    """Top up now and every second on the GUI thread (a QTimer owned by ``parent``)."""
    if sys.version_info >= (3, 12):
        return None
    from PySide6.QtCore import QTimer

    top_up()
    timer = QTimer(parent)
    timer.setInterval(1000)
    timer.timeout.connect(top_up)
    timer.start()
    return timer
