"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from vfmstudio._plugin_host import reset_host

PLUGIN = Path(__file__).resolve().parent / "batch_plugin" / "vfmstudio_batchfake"


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory):
    """The fake plugin, announced by an entry point, importable here, in subprocesses and in Ray."""
    site = tmp_path_factory.mktemp("batch-site")
    shutil.copytree(PLUGIN, site / PLUGIN.name, ignore=shutil.ignore_patterns("__pycache__"))
    info = site / "vfmstudio_batchfake-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vfmstudio-batchfake\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[vfmstudio]\nbatchfake = vfmstudio_batchfake\n")
    old_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), old_path]))
    sys.path.insert(0, str(site))
    reset_host()
    yield site
    sys.path.remove(str(site))
    if old_path is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old_path
    reset_host()
