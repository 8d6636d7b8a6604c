"""The real entry point in a child process: a hostile file is one line on stderr, and a hung plugin
tool past ``--timeout`` ends the process promptly (the abandoned thread is a daemon)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
# Installs the faulty plugin as the process-wide host, then runs the CLI like `vfmstudio ...`.
LAUNCH = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("faulty", {plugin!r})
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); sys.modules["faulty"] = module
from vfmstudio import _plugin_host
_plugin_host._HOST = _plugin_host.PluginHost(builtins=("faulty",), entry_points=False).load()
from vfmstudio.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(*argv, timeout=60):
    env = {**os.environ, "VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD": "1", "HF_HUB_OFFLINE": "1"}
    code = LAUNCH.format(plugin=str(HERE / "faulty_plugin.py"))
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_a_hostile_file_is_one_line_from_the_real_command(tmp_path):
    bad = tmp_path / "page.jpg"
    bad.write_text("<html><body>not a picture</body></html>")
    proc = subprocess.run(
        [sys.executable, "-m", "vfmstudio", "--safe-mode", "run", "dinov2.pca", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.count("\n") == 1
        and "looks like HTML/text" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_a_hung_tool_does_not_keep_the_process_alive(tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    t0 = time.perf_counter()
    proc = _run("run", "faulty.hangs", str(image), "--timeout", "0.5")
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "did not finish within 0.5 s" in proc.stderr
    assert elapsed < 20  # the hung tool waits 60 s; the process does not wait for it
