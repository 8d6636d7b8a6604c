"""Plugin tools that attack the process running them (issue 21 item 3): ``run`` and ``batch`` never
report success for work not done, ``--json`` stays valid, ``--out`` does not move, children of a
tool do not outlive the command. Real processes: the CLI as users start it, with the faulty plugin
loaded as a built-in (in-process under the default setting) and run in a worker with
``VFMSTUDIO_PLUGIN_ISOLATION=always``, which is what the default does for third-party plugins
(tests/e2e/test_cli.py runs a real entry-point plugin that way)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vfmstudio.isolation import ISOLATION_ENV

HERE = Path(__file__).parent
LAUNCH = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("faulty", {plugin!r})
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); sys.modules["faulty"] = module
from vfmstudio import _plugin_host
_plugin_host._HOST = _plugin_host.PluginHost(builtins=("faulty",), entry_points=False).load()
from vfmstudio.cli import main
sys.exit(main(sys.argv[1:]))
"""


def vfm(*argv, isolation="always", cwd=None):
    env = {
        **os.environ,
        "VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD": "1",
        "HF_HUB_OFFLINE": "1",
        ISOLATION_ENV: isolation,
    }
    code = LAUNCH.format(plugin=str(HERE / "faulty_plugin.py"))
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    "tool_id, fragment",
    [
        ("faulty.osexit", "the tool ended its worker process (exit status 0); nothing was returned"),
        ("faulty.sysexit", "called sys.exit(0) instead of returning results"),
        ("faulty.segfault", "the tool ended its worker process (killed by SIGSEGV)"),
        ("faulty.patches", "masks of size"),  # the worker's patched checks do not reach the caller's
    ],
)
def test_a_tool_that_ends_or_fools_its_worker_fails_the_run(image, tmp_path, tool_id, fragment):
    proc = vfm("run", tool_id, str(image), "--json", "--out", str(tmp_path / "out"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and not (tmp_path / "out" / "prediction.json").exists()
    assert proc.stderr.count("\n") == 1 and f"{tool_id} (faulty): " in proc.stderr and fragment in proc.stderr


def test_sys_exit_in_process_is_an_error_too(image):
    proc = vfm("run", "faulty.sysexit", str(image), isolation="never")
    assert proc.returncode == 1 and "called sys.exit(0)" in proc.stderr


def test_a_tool_that_loops_forever_is_stopped_at_its_time_limit(image):
    proc = vfm("run", "faulty.loops", str(image), "--timeout", "1")
    assert proc.returncode == 1 and "did not finish within 1 s and was stopped" in proc.stderr


@pytest.mark.parametrize("isolation", ["always", "never"])
def test_an_endless_result_list_is_validated_as_stored(image, isolation):
    proc = vfm("run", "faulty.endless", str(image), "--json", "--timeout", "30", isolation=isolation)
    assert proc.returncode == 0, proc.stderr
    assert [r["text"] for r in json.loads(proc.stdout)["results"]] == ["first"]


@pytest.mark.parametrize("isolation", ["always", "never"])
def test_what_a_tool_prints_never_reaches_json_output(image, isolation):
    proc = vfm("run", "faulty.prints", str(image), "--json", isolation=isolation)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tool"] == "faulty.prints"
    assert "chatter from the plugin" in proc.stderr and "from C code" in proc.stderr


def test_a_tools_chdir_does_not_move_a_relative_out(image, tmp_path):
    proc = vfm("run", "faulty.chdir", str(image), "--out", "out", isolation="never", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "prediction.json").exists()


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fp:
            return fp.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has ended
    except FileNotFoundError:
        return True


def test_children_of_a_tool_do_not_outlive_the_command(image, tmp_path):
    pidfile = tmp_path / "child.pid"
    proc = vfm("run", "faulty.forks", str(image), "--param", f"pidfile={pidfile}")
    assert proc.returncode == 0, proc.stderr
    child = int(pidfile.read_text())
    for _ in range(200):  # SIGKILL was sent before the command exited; reaping may lag a little
        if _gone(child):
            break
        time.sleep(0.05)
    else:
        os.kill(child, 9)
        pytest.fail("the tool's child outlived the command")


def test_batch_counts_what_was_written_when_the_tool_ends_its_worker(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(src / f"img{i}.png")
    proc = vfm("batch", str(src), "--tool", "faulty.osexit", "--out", str(tmp_path / "out"), "--json")
    summary = json.loads(proc.stdout)
    assert (summary["done"], summary["failed"]) == (0, 2)
    failures = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert all("ended its worker process" in f["reason"] for f in failures)
    assert not list((tmp_path / "out" / "predictions").iterdir())


def test_builtin_tools_run_in_process_by_default(image):
    proc = vfm("run", "faulty.osexit", str(image), "--json", isolation="auto")
    assert (
        proc.returncode == 0 and proc.stdout == ""
    )  # trusted code may end the process: why plugins are isolated


def test_the_isolation_setting_is_checked(image):
    proc = vfm("run", "faulty.ok", str(image), isolation="sometimes")
    assert (
        proc.returncode == 2
        and "VFMSTUDIO_PLUGIN_ISOLATION must be one of auto, always, never" in proc.stderr
    )


def test_batch_done_count_comes_from_the_files_written(faulty_host, small_png, tmp_path, capsys, monkeypatch):
    """A run that counted images as done but has no prediction file for them (a worker fooled, a
    file removed under it) says so and exits 1 instead of reporting success."""
    from vfmstudio.cli import main
    from vfmstudio.engines.outputs import BatchOutput

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        small_png(f"src/img{i}.png", seed=i)
    real = BatchOutput.write_prediction

    def loses_one(self, item, prediction, stat):
        path = real(self, item, prediction, stat)
        if item.rel == "img1.png":
            path.unlink()
        return path

    monkeypatch.setattr(BatchOutput, "write_prediction", loses_one)
    code = main(["batch", str(src), "--tool", "faulty.ok", "--out", str(tmp_path / "out"), "--json"])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 1 and (summary["done"], summary["missing"]) == (2, 1)
    assert "1 images counted as done have no prediction file" in err and err.count("\n") == 1
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["done"] == 2


def test_a_reply_naming_arrays_outside_the_workers_folder_is_refused(tmp_path):
    from vfmstudio.core.tools import ToolSpec
    from vfmstudio.execution import ToolError
    from vfmstudio.isolation import _read_reply

    class FakeWorker:
        folder = tmp_path / "worker"

    FakeWorker.folder.mkdir()
    tool = ToolSpec(id="x.t", title="T", run="x:t", plugin="x")
    for name in ("", "..", "a/b", "../../etc"):
        with pytest.raises(ToolError, match=r"x.t \(x\): the worker sent back an unreadable result"):
            _read_reply(tool, FakeWorker, {"type": "ok", "folder": name, "prediction": {}}, False)
    with pytest.raises(ToolError, match="unreadable result"):
        _read_reply(tool, FakeWorker, {"type": "ok", "folder": "0", "prediction": "not a prediction"}, False)
    assert FakeWorker.folder.exists()  # the caller's folder itself is never removed by a reply
