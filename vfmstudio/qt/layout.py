"""Helpers that keep the window usable on small screens (1280x720, 1024x640; docs/adr/0122)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


def vertical_scroller(widget: QWidget, parent: QWidget | None = None) -> QScrollArea:
    """``widget`` in a scroll area that follows its width and scrolls vertically: when the dock is
    shorter than the widget's minimum, a scroll bar appears and no row is drawn over another."""
    area = QScrollArea(parent)
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setMinimumHeight(60)
    return area
