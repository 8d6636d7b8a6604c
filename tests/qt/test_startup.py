"""`vfmstudio gui`: the window shows before torch is imported, and bad paths exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_PROBE = r"""
import json, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

app = QApplication([])
seen = {}

def visible():
    return any(type(w).__name__ == "MainWindow" and w.isVisible() for w in app.topLevelWidgets())

def first():  # the first event-loop turn: the window is on screen, plugins not loaded yet
    seen["visible_at_start"] = visible()
    seen["torch_at_start"] = "torch" in sys.modules

deadline = [None]

def later():  # once plugins are loaded and tools listed (polls: the machine may be busy)
    import time
    win = next(w for w in app.topLevelWidgets() if type(w).__name__ == "MainWindow")
    deadline[0] = deadline[0] or time.monotonic() + 60
    ready = getattr(win, "tools", None) is not None and win.tools.tree.topLevelItemCount() > 0
    if not ready and time.monotonic() < deadline[0]:
        QTimer.singleShot(50, later)
        return
    seen["tools"] = win.tools.tree.topLevelItemCount()
    seen["images"] = len(win.browser.paths())
    seen["torch_later"] = "torch" in sys.modules
    print("RESULT " + json.dumps(seen), flush=True)
    app.quit()

QTimer.singleShot(0, first)
QTimer.singleShot(100, later)
from vfmstudio.cli import main
sys.exit(main(["gui", sys.argv[1]]))
"""


def test_window_shows_before_torch_is_imported(image_folder, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(image_folder)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, proc.stderr[-2000:]
    seen = json.loads(line[len("RESULT ") :])
    assert seen == {
        "visible_at_start": True,
        "torch_at_start": False,
        "tools": seen["tools"],
        "images": 3,
        "torch_later": False,
    }
    assert seen["tools"] >= 1  # the built-in plugins registered their tools without importing torch


def test_gui_command_rejects_a_missing_path(capsys):
    from vfmstudio.cli import main

    assert main(["gui", "/no/such/folder"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: /no/such/folder: no such file or folder"
