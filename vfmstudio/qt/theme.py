"""Light and dark palettes that follow the system's colour scheme (Qt 6.5+ reports it)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

_DARK = {
    QPalette.ColorRole.Window: (45, 45, 48),
    QPalette.ColorRole.WindowText: (225, 225, 225),
    QPalette.ColorRole.Base: (30, 30, 32),
    QPalette.ColorRole.AlternateBase: (40, 40, 44),
    QPalette.ColorRole.ToolTipBase: (60, 60, 64),
    QPalette.ColorRole.ToolTipText: (235, 235, 235),
    QPalette.ColorRole.Text: (225, 225, 225),
    QPalette.ColorRole.Button: (52, 52, 56),
    QPalette.ColorRole.ButtonText: (225, 225, 225),
    QPalette.ColorRole.BrightText: (255, 90, 90),
    QPalette.ColorRole.Highlight: (42, 130, 218),
    QPalette.ColorRole.HighlightedText: (255, 255, 255),
    QPalette.ColorRole.Link: (90, 160, 240),
    QPalette.ColorRole.Mid: (110, 110, 115),
    QPalette.ColorRole.PlaceholderText: (140, 140, 145),
}


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, rgb in _DARK.items():
        palette.setColor(role, QColor(*rgb))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 125))
    return palette


def apply_scheme(app: QApplication, scheme: Qt.ColorScheme) -> str:
    """Dark palette for a dark system, the style's own for a light one; unknown leaves Qt's choice.
    Returns the scheme applied ("dark", "light" or "system")."""
    if scheme == Qt.ColorScheme.Dark:
        app.setStyle("Fusion")  # the one built-in style that honours a custom palette everywhere
        app.setPalette(dark_palette())
        return "dark"
    if scheme == Qt.ColorScheme.Light:
        app.setPalette(app.style().standardPalette())
        return "light"
    return "system"


def follow_system(app: QApplication) -> None:
    hints = app.styleHints()
    if not hasattr(hints, "colorScheme"):  # Qt < 6.5
        return
    apply_scheme(app, hints.colorScheme())
    hints.colorSchemeChanged.connect(lambda scheme: apply_scheme(app, scheme))
