"""Plugin tools that raise, hang, return NaNs, wrong shapes or wrong types, or leak: each is
isolated, named, and the studio goes on working (run_tool, ``vfmstudio run`` and ``batch``).

Registration-time faults (import errors, raising hooks, wrong types, safe mode at the host level)
are covered in tests/plugin_host/test_host.py; the CLI's ``--safe-mode`` is checked here.
"""

from __future__ import annotations

import json
import threading

import pytest

from vfmstudio.cli import main
from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.image import load_image
from vfmstudio.execution import Services, ToolError, run_tool, tool_timeout_s


def services(budget=1 << 20):
    return Services(
        models=ByteLRUCache(budget, name="models"), features=ByteLRUCache(budget, name="features")
    )


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


FAULTS = [
    ("faulty.raises", "RuntimeError: the plugin tripped over its own feet", False),
    ("faulty.nan", "contains NaN or infinite values", True),
    ("faulty.shape", "do not match image", False),
    ("faulty.notresult", "returned dict, expected a list of results", False),
    ("faulty.missing", "cannot load faulty_module_that_is_gone:run", False),
]


@pytest.mark.parametrize(("tool_id", "fragment", "user_error"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_faulty_tool_is_named_and_the_next_run_works(faulty_host, small_png, tool_id, fragment, user_error):
    image = load_image(small_png())
    svc = services()
    with pytest.raises(ToolError) as info:
        run_tool(faulty_host.tool(tool_id), [image], services=svc)
    message = str(info.value)
    assert message.startswith(f"{tool_id} (faulty): ") and fragment in message and "\n" not in message
    assert info.value.user_error is user_error
    ok = run_tool(faulty_host.tool("faulty.ok"), [image], services=svc)
    assert ok.results[0].kind == "heatmap"


@pytest.mark.parametrize(("tool_id", "fragment", "user_error"), FAULTS, ids=[f[0] for f in FAULTS])
def test_the_cli_reports_a_faulty_tool_in_one_line(
    faulty_host, small_png, capsys, tool_id, fragment, user_error
):
    code, out, err = cli(capsys, "run", tool_id, str(small_png()))
    assert code == (2 if user_error else 1)
    assert err.count("\n") == 1 and fragment in err and tool_id in err and "Traceback" not in err


def _still_hanging(tool_id: str) -> bool:
    """The hung tool's thread is still alive after the call returned: the run was abandoned, not waited
    for (had it been waited for, the thread would have finished). No clock involved."""
    return any(t.name == f"vfm-tool-{tool_id}" and t.is_alive() for t in threading.enumerate())


def test_a_hanging_tool_is_abandoned_after_its_timeout(faulty_host, small_png):
    image = load_image(small_png())
    svc = services()
    before = threading.active_count()
    with pytest.raises(ToolError, match=r"faulty.hangs \(faulty\): did not finish within 0.3 s"):
        run_tool(faulty_host.tool("faulty.hangs"), [image], services=svc, timeout=0.3)
    stuck = [t for t in threading.enumerate() if t.name == "vfm-tool-faulty.hangs"]
    assert stuck and all(t.daemon for t in stuck)  # never keeps the process alive
    assert run_tool(faulty_host.tool("faulty.ok"), [image], services=svc, timeout=5).results
    faulty_host.tool("faulty.hangs").load_function().__globals__["HANG"].set()
    for t in stuck:
        t.join(5)
    assert threading.active_count() <= before


def test_a_timeout_fires_only_the_runs_own_token(faulty_host, small_png):
    from vfmstudio.core.cancel import CancelToken

    shared = CancelToken()  # a batch passes one token to every image's run
    with pytest.raises(ToolError):
        run_tool(
            faulty_host.tool("faulty.hangs"),
            [load_image(small_png())],
            services=services(),
            cancel=shared,
            timeout=0.2,
        )
    assert not shared.cancelled


def test_cancel_reaches_a_run_with_a_time_limit(faulty_host, small_png):
    from vfmstudio.core.cancel import Cancelled, CancelToken

    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    with pytest.raises(Cancelled):
        run_tool(
            faulty_host.tool("faulty.hangs"),
            [load_image(small_png())],
            services=services(),
            cancel=token,
            timeout=30,
        )
    assert _still_hanging("faulty.hangs")  # abandoned, not waited for


def test_cli_run_timeout_option_and_environment(faulty_host, small_png, capsys, monkeypatch):
    path = str(small_png())
    code, _, err = cli(capsys, "run", "faulty.hangs", path, "--timeout", "0.3")
    assert code == 1 and err.count("\n") == 1 and "did not finish within 0.3 s" in err
    monkeypatch.setenv("VFMSTUDIO_TOOL_TIMEOUT_S", "0.2")
    code, _, err = cli(capsys, "run", "faulty.hangs", path)
    assert code == 1 and "did not finish within 0.2 s" in err
    assert _still_hanging("faulty.hangs")  # abandoned, not waited for
    code, _, err = cli(capsys, "run", "faulty.ok", path, "--timeout", "soon")
    assert code == 2 and "timeout must be a number of seconds" in err


def test_timeout_values():
    assert tool_timeout_s("0") is None and tool_timeout_s(2) == 2.0
    for bad in ("-1", "nan", "inf", "x"):
        with pytest.raises(ValueError):
            tool_timeout_s(bad)


def test_batch_abandons_hung_images_and_stops_when_every_image_hangs(
    faulty_host, small_png, tmp_path, capsys
):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        small_png(f"src/img{i}.png", seed=i)
    code, _, err = cli(
        capsys,
        "batch",
        str(src),
        "--tool",
        "faulty.hangs",
        "--out",
        str(tmp_path / "out"),
        "--timeout",
        "0.2",
    )
    assert _still_hanging("faulty.hangs")  # abandoned, not waited for
    # Three identical run failures in a row stop the batch (StopRule) rather than hang it five times.
    assert code == 2 and err.count("\n") == 1 and "did not finish within 0.2 s" in err
    failures = (tmp_path / "out" / "failures.jsonl").read_text().splitlines()
    assert len(failures) == 3


def test_batch_falls_back_to_per_image_runs_when_the_batched_preparation_hangs(
    faulty_host, small_png, tmp_path, capsys
):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        small_png(f"src/img{i}.png", seed=i)
    code, out, err = cli(
        capsys,
        "batch",
        str(src),
        "--tool",
        "faulty.slowprep",
        "--out",
        str(tmp_path / "out"),
        "--batch-size",
        "2",
        "--timeout",
        "0.3",
        "--json",
    )
    assert code == 0, err
    assert _still_hanging("faulty.slowprep")  # the preparation was abandoned, not waited for
    summary = json.loads(out)
    assert (summary["done"], summary["failed"]) == (4, 0)


def test_batch_with_a_raising_tool_lists_failures_and_finishes(faulty_host, small_png, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    small_png("src/good.png")
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    code, out, err = cli(
        capsys, "batch", str(src), "--tool", "faulty.ok", "--out", str(tmp_path / "out"), "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["done"], summary["failed"]) == (1, 1)


def test_a_leaking_tool_cannot_push_the_caches_past_their_budget(faulty_host, small_png):
    """A plugin's own globals are its business (plugins run in-process); what the studio owns stays
    within budget and the studio keeps working. See docs/reliability.md."""
    svc = services(budget=64 << 10)
    leaks, ok = faulty_host.tool("faulty.leaks"), faulty_host.tool("faulty.ok")
    for i in range(12):
        image = load_image(small_png(f"leak{i}.png", w=64, h=64, seed=i))
        run_tool(leaks, [image], {"mb": 4}, services=svc)
        run_tool(ok, [image], services=svc)
        assert svc.features.total_bytes <= 64 << 10
    assert len(faulty_host.tool("faulty.leaks").load_function().__globals__["LEAK"]) == 12


def test_out_of_memory_in_a_tool_gives_the_smaller_resolution_hint(faulty_host, small_png, monkeypatch):
    module = faulty_host.tool("faulty.leaks").load_function().__globals__

    def exhausted(ctx, images, params):
        raise MemoryError()

    monkeypatch.setitem(module, "leaks", exhausted)
    with pytest.raises(ToolError, match="out of memory: try a smaller resolution, a lower precision") as info:
        run_tool(faulty_host.tool("faulty.leaks"), [load_image(small_png())], services=services())
    assert info.value.user_error


def test_safe_mode_lists_builtin_plugins_only(capsys, monkeypatch):
    from vfmstudio import _plugin_host

    imported = []

    class BrokenEntryPoint:
        name, value, group = "thirdparty", "thirdparty_plugin:plugin", "vfmstudio"
        dist = None

        def load(self):
            imported.append(self.name)
            raise ImportError("a broken third-party plugin")

    monkeypatch.setattr(_plugin_host, "_entry_points", lambda: [BrokenEntryPoint()])
    monkeypatch.setattr(_plugin_host, "_HOST", None)
    monkeypatch.delenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    try:
        code, out, err = cli(capsys, "--safe-mode", "plugins", "--json")
    finally:
        import os

        os.environ.pop("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", None)  # --safe-mode sets it for the process
        _plugin_host.reset_host()
    assert code == 0, err
    status = {p["name"]: p["status"] for p in json.loads(out)}
    assert imported == []
    assert status.get("thirdparty") != "loaded" and "error" not in status.get("thirdparty", "")
    assert all(status[name] == "loaded" for name in ("dinov2", "clip", "paligemma", "formats"))
