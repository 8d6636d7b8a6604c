"""Import-time bounds: a third-party plugin that exits, crashes or hangs while it loads is probed in a
subprocess, recorded with one line and skipped; the verdict is cached so the probe runs once."""

from __future__ import annotations

import json
import os
import sys

import pytest

from vfmstudio import _plugin_probe, cli
from vfmstudio._plugin_host import PluginHost

GOOD = """
from vfmstudio.plugin_api import hookimpl, ToolSpec
@hookimpl
def vfm_register_tools():
    return [ToolSpec(id="{name}.t", title="T", run="{name}:run", returns=("text",))]
"""

HOSTILE = {
    "exits_hard": "import os\nos._exit(7)\n",
    "exits_soft": "import sys\nsys.exit(3)\n",
    "crashes": "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n",
    "hangs": "import time\nwhile True:\n    time.sleep(1)\n",
    "exits_in_hook": "import os\nfrom vfmstudio.plugin_api import hookimpl\n@hookimpl\ndef vfm_register_tools():\n"
    "    os._exit(0)\n",
}


def _fake_dist(root, dist_name, entries, version="1.0"):
    info = root / f"{dist_name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[vfmstudio]\n{lines}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [*HOSTILE, "tp_good", "tp_good2"]:
        sys.modules.pop(name, None)


@pytest.fixture
def popen_calls(monkeypatch):
    """Counts the probe subprocesses started."""
    calls = []
    real = _plugin_probe.subprocess.Popen

    def counting(args, **kw):
        calls.append(json.loads(args[-1])["name"])
        return real(args, **kw)

    monkeypatch.setattr(_plugin_probe.subprocess, "Popen", counting)
    return calls


def _host():
    return PluginHost(builtins=(), entry_points=True).load()


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("exits_hard", "ended the process with exit status 7 while loading"),
        ("exits_soft", "SystemExit: 3"),
        ("crashes", "crashed with signal SIGSEGV"),
        ("exits_in_hook", "ended the process with exit status 0 while loading"),
    ],
)
def test_a_plugin_that_ends_the_process_is_skipped_with_one_line(site, name, fragment, popen_calls):
    (site / f"{name}.py").write_text(HOSTILE[name])
    (site / "tp_good.py").write_text(GOOD.format(name="tp_good"))
    _fake_dist(site, "hostile", {name: name})
    _fake_dist(site, "friendly", {"tp_good": "tp_good"})
    host = _host()  # still here: the hostile code ran only in the probe
    status = host.statuses[name]
    assert status.status == "failed" and fragment in status.error and "\n" not in status.error
    assert name not in sys.modules
    assert host.statuses["tp_good"].status == "loaded" and "tp_good.t" in host.tools
    assert sorted(popen_calls) == sorted([name, "tp_good"])


def test_a_plugin_that_hangs_at_import_is_stopped_at_the_time_limit(site, monkeypatch):
    (site / "hangs.py").write_text(HOSTILE["hangs"])
    _fake_dist(site, "hostile", {"hangs": "hangs"})
    monkeypatch.setenv("VFMSTUDIO_PLUGIN_DISCOVERY_TIMEOUT_S", "1")
    host = _host()
    assert "did not finish loading within 1 s" in host.statuses["hangs"].error
    assert "VFMSTUDIO_PLUGIN_DISCOVERY_TIMEOUT_S" in host.statuses["hangs"].error
    assert "hangs" not in sys.modules


def test_a_timeout_is_probed_again_only_with_a_longer_limit(site, monkeypatch, popen_calls):
    (site / "hangs.py").write_text(HOSTILE["hangs"])
    _fake_dist(site, "hostile", {"hangs": "hangs"})
    monkeypatch.setenv("VFMSTUDIO_PLUGIN_DISCOVERY_TIMEOUT_S", "0.5")
    _host()
    _host()
    assert popen_calls == ["hangs"]  # the second start paid nothing
    monkeypatch.setenv("VFMSTUDIO_PLUGIN_DISCOVERY_TIMEOUT_S", "0.7")
    host = _host()
    assert popen_calls == ["hangs", "hangs"]
    assert "within 0.7 s" in host.statuses["hangs"].error


def test_verdicts_are_cached_by_version_and_file_mtime(site, popen_calls):
    module = site / "exits_hard.py"
    module.write_text(HOSTILE["exits_hard"])
    (site / "tp_good.py").write_text(GOOD.format(name="tp_good"))
    _fake_dist(site, "hostile", {"exits_hard": "exits_hard"})
    _fake_dist(site, "friendly", {"tp_good": "tp_good"})
    first = _host()
    assert sorted(popen_calls) == ["exits_hard", "tp_good"]
    second = _host()
    assert sorted(popen_calls) == ["exits_hard", "tp_good"]  # no new probe
    assert second.statuses["exits_hard"].error == first.statuses["exits_hard"].error
    assert second.statuses["tp_good"].status == "loaded"
    # A fixed release: the file changes, so the plugin is probed again and now loads.
    module.write_text(GOOD.format(name="exits_hard"))
    stat = module.stat()
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    sys.modules.pop("exits_hard", None)
    third = _host()
    assert popen_calls.count("exits_hard") == 2
    assert third.statuses["exits_hard"].status == "loaded"


def test_disabled_and_safe_mode_plugins_are_not_probed(site, monkeypatch, popen_calls):
    (site / "exits_hard.py").write_text(HOSTILE["exits_hard"])
    _fake_dist(site, "hostile", {"exits_hard": "exits_hard"})
    assert PluginHost(builtins=(), disabled=["exits_hard"]).load().statuses["exits_hard"].status == "disabled"
    assert PluginHost(builtins=(), safe_mode=True).load().statuses["exits_hard"].status == "skipped"
    assert popen_calls == []


def test_plugins_command_answers_beside_a_plugin_that_exits_at_import(site, capsys, monkeypatch):
    (site / "exits_hard.py").write_text(HOSTILE["exits_hard"])
    _fake_dist(site, "hostile", {"exits_hard": "exits_hard"})
    from vfmstudio import _plugin_host

    monkeypatch.setattr(_plugin_host, "_HOST", None)
    code = cli.main(["plugins", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    entry = next(p for p in out if p["name"] == "exits_hard")
    assert entry["status"] == "failed" and "exit status 7" in entry["error"]


def test_an_entry_point_the_probe_cannot_see_is_loaded_as_before(monkeypatch, popen_calls):
    # Made up in-process (as tests and embedding programs do): no verdict, loaded in the host itself.
    from vfmstudio import _plugin_host

    class MadeUp:
        name, value, group, dist = "madeup", "madeup_plugin:plugin", "vfmstudio", None

        def load(self):
            raise ImportError("No module named 'madeup_plugin'")

    monkeypatch.setattr(_plugin_host, "_entry_points", lambda: [MadeUp()])
    host = PluginHost(builtins=()).load()
    assert popen_calls == ["madeup"]
    assert host.statuses["madeup"].error == "ImportError: No module named 'madeup_plugin'"
