"""Keyboard shortcuts of the window: one action per key sequence, in and out of review mode."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import open_and_wait  # noqa: E402


def _shortcut_owners(window) -> dict[str, list[str]]:
    from PySide6.QtGui import QAction

    owners: dict[str, list[str]] = {}
    for action in window.findChildren(QAction):
        if not action.isEnabled():
            continue
        for seq in action.shortcuts():
            text = seq.toString()
            if text:
                owners.setdefault(text, []).append(action.text().replace("&", ""))
    return owners


def test_no_two_window_actions_share_a_shortcut(qtbot, window, image_folder):
    """An ambiguous shortcut fires neither action in Qt (Ctrl+E was Export and Explore at once)."""
    open_and_wait(qtbot, window, image_folder)
    for mode in (False, True):  # review mode takes keys from other actions while it is on
        window.review.set_mode(mode)
        clashes = {k: v for k, v in _shortcut_owners(window).items() if len(v) > 1}
        assert clashes == {}, f"review mode {mode}: {clashes}"
    window.review.set_mode(False)
