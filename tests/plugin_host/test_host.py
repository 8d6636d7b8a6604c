"""The plugin host: broken plugins of every kind are recorded and skipped; the rest still work."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from vfmstudio._plugin_host import PluginHost

GOOD = """
from vfmstudio.plugin_api import hookimpl, ToolSpec, FormatSpec
@hookimpl
def vfm_register_tools():
    return [ToolSpec(id="{name}.t", title="T", run="{name}:run", returns=("text",))]
@hookimpl
def vfm_register_formats():
    return [FormatSpec(id="{name}-fmt", title="F", exporter="{name}:run")]
def run(ctx, images, params):
    from vfmstudio.plugin_api import Text
    return [Text("hi", image_id=images[0].id)]
"""

BROKEN = {
    "bad_import": "import a_module_that_does_not_exist\n",
    "bad_raises": "from vfmstudio.plugin_api import hookimpl\n@hookimpl\ndef vfm_register_tools():\n"
                  "    raise RuntimeError('boom in registration')\n",
    "bad_types": "from vfmstudio.plugin_api import hookimpl\n@hookimpl\ndef vfm_register_tools():\n"
                 "    return ['not a spec']\n",
    "bad_notlist": "from vfmstudio.plugin_api import hookimpl\n@hookimpl\ndef vfm_register_tools():\n"
                   "    return 42\n",
    "bad_spelling": "from vfmstudio.plugin_api import hookimpl\n@hookimpl\ndef vfm_registr_tools():\n"
                    "    return []\n",
    "bad_prefix": "from vfmstudio.plugin_api import hookimpl, ToolSpec\n@hookimpl\ndef vfm_register_tools():\n"
                  "    return [ToolSpec(id='other.t', title='T', run='x:y')]\n",
    "bad_exit": "import sys\nsys.exit(3)\n",
    "bad_signature": "from vfmstudio.plugin_api import hookimpl\n@hookimpl\ndef vfm_read_image(path, extra):\n"
                     "    return None\n",
}


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    for name in ("good_a", "good_b"):
        (tmp_path / f"{name}.py").write_text(GOOD.format(name=name))
    for name, code in BROKEN.items():
        (tmp_path / f"{name}.py").write_text(code)
    # good_dup registers the same tool id as good_a, under good_a's family via VFM_TOOL_FAMILIES.
    (tmp_path / "good_dup.py").write_text("VFM_TOOL_FAMILIES = ('good_a',)\n" + GOOD.format(name="good_a"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [*BROKEN, "good_a", "good_b", "good_dup"]:
        sys.modules.pop(name, None)


def _host(names, **kw):
    return PluginHost(builtins=names, entry_points=False, **kw).load()


def test_good_plugins_register_tools_and_formats(plugin_dir):
    host = _host(["good_a", "good_b"])
    assert set(host.tools) == {"good_a.t", "good_b.t"}
    assert set(host.formats) == {"good_a-fmt", "good_b-fmt"}
    assert host.tools["good_a.t"].plugin == "good_a"
    assert all(s.status == "loaded" for s in host.list_statuses())


@pytest.mark.parametrize("name, fragment", [
    ("bad_import", "ModuleNotFoundError"),
    ("bad_raises", "boom in registration"),
    ("bad_types", "expected ToolSpec"),
    ("bad_notlist", "must return a list"),
    ("bad_spelling", "did you mean vfm_register_tools"),
    ("bad_prefix", "must start with 'bad_prefix.'"),
    ("bad_exit", "SystemExit"),
    ("bad_signature", "vfm_read_image"),
])
def test_broken_plugin_is_recorded_and_the_others_still_work(plugin_dir, name, fragment):
    host = _host(["good_a", name, "good_b"])
    status = host.statuses[name]
    assert status.status == "failed"
    assert fragment in status.error
    assert "\n" not in status.error
    assert status.traceback
    assert set(host.tools) == {"good_a.t", "good_b.t"}


def test_duplicate_tool_id_skips_the_second_plugin(plugin_dir):
    host = _host(["good_a", "good_dup"])
    assert host.statuses["good_dup"].status == "failed"
    assert "duplicate tool id 'good_a.t'" in host.statuses["good_dup"].error
    assert host.tools["good_a.t"].plugin == "good_a"


def test_disabled_plugin_is_not_imported(plugin_dir):
    host = _host(["good_a", "good_b"], disabled=["good_b"])
    assert host.statuses["good_b"].status == "disabled"
    assert "good_b" not in sys.modules
    assert set(host.tools) == {"good_a.t"}


def _fake_dist(root, dist_name, entries):
    info = root / f"{dist_name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[vfmstudio]\n{lines}\n")


def test_entry_points_load_with_version_and_broken_ones_are_isolated(plugin_dir):
    _fake_dist(plugin_dir, "thirdparty_good", {"good_b": "good_b"})
    _fake_dist(plugin_dir, "thirdparty_bad", {"bad_raises": "bad_raises"})
    host = PluginHost(builtins=["good_a"]).load()
    assert host.statuses["good_b"].source == "entry point"
    assert host.statuses["good_b"].version == "1.2.3"
    assert host.statuses["good_b"].status == "loaded"
    assert host.statuses["bad_raises"].status == "failed"
    assert {"good_a.t", "good_b.t"} <= set(host.tools)


def test_safe_mode_loads_builtins_only(plugin_dir, monkeypatch):
    _fake_dist(plugin_dir, "thirdparty_good", {"good_b": "good_b"})
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = PluginHost(builtins=["good_a"]).load()
    assert host.statuses["good_b"].status == "skipped"
    assert "good_b" not in sys.modules
    assert set(host.tools) == {"good_a.t"}


def test_read_image_hook_skips_raising_and_invalid_plugins(plugin_dir, tmp_path):
    (plugin_dir / "reader_raises.py").write_text(textwrap.dedent("""
        from vfmstudio.plugin_api import hookimpl
        @hookimpl
        def vfm_read_image(path):
            raise OSError("cannot")
    """))
    (plugin_dir / "reader_wrong.py").write_text(textwrap.dedent("""
        from vfmstudio.plugin_api import hookimpl
        @hookimpl
        def vfm_read_image(path):
            return "not an array"
    """))
    (plugin_dir / "reader_ok.py").write_text(textwrap.dedent("""
        import numpy as np
        from vfmstudio.plugin_api import hookimpl
        @hookimpl
        def vfm_read_image(path):
            return np.full((2, 3, 3), 7, np.uint8) if str(path).endswith(".xyz") else None
    """))
    try:
        host = _host(["reader_raises", "reader_wrong", "reader_ok"])
        img = host.read_image(tmp_path / "a.xyz")
        assert img is not None and img.shape == (2, 3, 3) and int(img[0, 0, 0]) == 7
        assert host.read_image(tmp_path / "a.png") is None
    finally:
        for n in ("reader_raises", "reader_wrong", "reader_ok"):
            sys.modules.pop(n, None)


def test_read_image_reaches_the_loader_for_unknown_formats(plugin_dir, tmp_path):
    from vfmstudio.core.image import load_image

    (plugin_dir / "reader_ok2.py").write_text(
        "import numpy as np\nfrom vfmstudio.plugin_api import hookimpl\n@hookimpl\ndef vfm_read_image(path):\n"
        "    return np.zeros((4, 5, 3), np.uint8)\n")
    try:
        host = _host(["reader_ok2"])
        f = tmp_path / "weird.xyz"
        f.write_bytes(b"\x00custom-format\x01" * 4)
        img = load_image(f, reader=host.read_image)
        assert (img.height, img.width) == (4, 5)
        assert np.all(img.pixels == 0)
    finally:
        sys.modules.pop("reader_ok2", None)
