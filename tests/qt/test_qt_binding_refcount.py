"""The Qt binding must not drain None's reference count (PySide6 6.12.0 on CPython 3.11 did).

With that binding every void Qt call took a reference from None, and a busy window aborted with
"none_dealloc" after a few thousand calls. pyproject.toml pins the binding below 6.12; this test
fails loudly if an upgrade brings the bug back.
"""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel


def test_void_qt_calls_leave_none_alone(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for i in range(2000):
        label.setText(str(i))
        label.setIndent(i % 3)
    assert before - sys.getrefcount(None) < 100
