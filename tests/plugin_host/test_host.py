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
    # Without the marker pluggy would ignore the function: the plugin would load and do nothing.
    "bad_unmarked": "def vfm_read_image(path):\n    return None\n",
    # Another plugin's family cannot be claimed: a plugin declares only families of its own.
    "bad_claims": "VFM_TOOL_FAMILIES = ('good_a',)\n"
    + GOOD.format(name="good_a").replace("good_a-fmt", "x-fmt"),
}


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    for name in ("good_a", "good_b"):
        (tmp_path / f"{name}.py").write_text(GOOD.format(name=name))
    for name, code in BROKEN.items():
        (tmp_path / f"{name}.py").write_text(code)
    # good_dup is good_a again under another module name: the same tool and format ids.
    (tmp_path / "good_dup.py").write_text(GOOD.format(name="good_a"))
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


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("bad_import", "ModuleNotFoundError"),
        ("bad_raises", "boom in registration"),
        ("bad_types", "expected ToolSpec"),
        ("bad_notlist", "must return a list"),
        ("bad_spelling", "did you mean vfm_register_tools"),
        ("bad_prefix", "must start with 'bad_prefix.'"),
        ("bad_exit", "SystemExit"),
        ("bad_signature", "vfm_read_image"),
        ("bad_unmarked", "vfm_read_image is not marked with @hookimpl"),
        ("bad_claims", "tool family 'good_a' is the name of another plugin"),
    ],
)
def test_broken_plugin_is_recorded_and_the_others_still_work(plugin_dir, name, fragment):
    host = _host(["good_a", name, "good_b"])
    status = host.statuses[name]
    assert status.status == "failed"
    assert fragment in status.error
    assert "\n" not in status.error
    assert status.traceback
    assert set(host.tools) == {"good_a.t", "good_b.t"}


def test_duplicate_ids_skip_the_second_plugin(plugin_dir):
    host = PluginHost(builtins=(), entry_points=False)
    host._load_one("good_a", "builtin", lambda: __import__("good_a"), version="", module_name="good_a")
    # The same ids from a plugin that is allowed the family (its name) but comes second.
    host._load_one("good_a2", "builtin", lambda: __import__("good_dup"), version="", module_name="good_dup")
    assert host.statuses["good_a2"].status == "failed"
    assert "must start with 'good_a2.'" in host.statuses["good_a2"].error
    assert host.tools["good_a.t"].plugin == "good_a"


def test_duplicate_format_id_skips_the_second_plugin_whole(plugin_dir):
    (plugin_dir / "fmt_dup.py").write_text(GOOD.format(name="fmt_dup").replace("fmt_dup-fmt", "good_a-fmt"))
    try:
        host = _host(["good_a", "fmt_dup"])
        assert (
            "duplicate format id 'good_a-fmt' (already registered by good_a)"
            in host.statuses["fmt_dup"].error
        )
        assert "fmt_dup.t" not in host.tools  # nothing of a failed plugin stays registered
        assert not [i for i in host.pm.hook.vfm_register_tools.get_hookimpls() if i.plugin_name == "fmt_dup"]
    finally:
        sys.modules.pop("fmt_dup", None)


def test_hook_names_are_the_specs():
    from vfmstudio import hookspecs

    assert set(hookspecs.HOOK_NAMES) == {"vfm_register_tools", "vfm_register_formats", "vfm_read_image"} | {
        n for n in dir(hookspecs) if n.startswith("vfm_register_")
    }


def test_a_new_registration_spec_is_called_like_the_others(plugin_dir, monkeypatch):
    # Any vfm_register_<kind> spec added to hookspecs is called per plugin, validated and stored by kind.
    import dataclasses as dc

    import pluggy

    from vfmstudio import _plugin_host, hookspecs

    @dc.dataclass(frozen=True)
    class Widget:
        id: str
        plugin: str = ""

    def vfm_register_widgets() -> list[Widget]:
        """Test-only spec."""

    vfm_register_widgets.__annotations__["return"] = list[Widget]
    pluggy.HookspecMarker(hookspecs.PROJECT)(vfm_register_widgets)
    monkeypatch.setattr(hookspecs, "vfm_register_widgets", vfm_register_widgets, raising=False)
    monkeypatch.setattr(hookspecs, "HOOK_NAMES", (*hookspecs.HOOK_NAMES, "vfm_register_widgets"))
    _plugin_host._item_type.cache_clear()
    (plugin_dir / "widgety.py").write_text(
        textwrap.dedent("""
        from vfmstudio.plugin_api import hookimpl
        @hookimpl
        def vfm_register_widgets():
            import test_widget_kind
            return [test_widget_kind.Widget("w1")]
    """)
    )
    (plugin_dir / "widget_bad.py").write_text(
        "from vfmstudio.plugin_api import hookimpl\n@hookimpl\ndef vfm_register_widgets():\n    return [1]\n"
    )
    mod = type(sys)("test_widget_kind")
    mod.Widget = Widget
    monkeypatch.setitem(sys.modules, "test_widget_kind", mod)
    try:
        host = _host(["widgety", "widget_bad"])
        assert host.registered["widgets"] == {"w1": Widget("w1", plugin="widgety")}
        assert host.statuses["widgety"].describe()["widgets"] == ["w1"]
        assert "vfm_register_widgets returned a int, expected Widget" in host.statuses["widget_bad"].error
    finally:
        _plugin_host._item_type.cache_clear()
        for n in ("widgety", "widget_bad"):
            sys.modules.pop(n, None)


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
    (plugin_dir / "reader_raises.py").write_text(
        textwrap.dedent("""
        from vfmstudio.plugin_api import hookimpl
        @hookimpl
        def vfm_read_image(path):
            raise OSError("cannot")
    """)
    )
    (plugin_dir / "reader_wrong.py").write_text(
        textwrap.dedent("""
        from vfmstudio.plugin_api import hookimpl
        @hookimpl
        def vfm_read_image(path):
            return "not an array"
    """)
    )
    (plugin_dir / "reader_ok.py").write_text(
        textwrap.dedent("""
        import numpy as np
        from vfmstudio.plugin_api import hookimpl
        @hookimpl
        def vfm_read_image(path):
            return np.full((2, 3, 3), 7, np.uint8) if str(path).endswith(".xyz") else None
    """)
    )
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
        "    return np.zeros((4, 5, 3), np.uint8)\n"
    )
    try:
        host = _host(["reader_ok2"])
        f = tmp_path / "weird.xyz"
        f.write_bytes(b"\x00custom-format\x01" * 4)
        img = load_image(f, reader=host.read_image)
        assert (img.height, img.width) == (4, 5)
        assert np.all(img.pixels == 0)
    finally:
        sys.modules.pop("reader_ok2", None)


def test_a_declared_family_belongs_to_the_first_plugin_that_declares_it(plugin_dir):
    # Like the DINO plugin's dino.* tools: a family of its own beside its name, owned by it alone.
    own = (
        "from vfmstudio.plugin_api import hookimpl, ToolSpec\nVFM_TOOL_FAMILIES = ('shared',)\n"
        "@hookimpl\ndef vfm_register_tools():\n"
        "    return [ToolSpec(id='shared.{t}', title='T', run='x:y', returns=('text',))]\n"
    )
    (plugin_dir / "fam_first.py").write_text(own.format(t="one"))
    (plugin_dir / "fam_second.py").write_text(own.format(t="two"))
    try:
        host = _host(["fam_first", "fam_second"])
        assert host.tools["shared.one"].plugin == "fam_first" and host.family_owner["shared"] == "fam_first"
        assert (
            host.statuses["fam_second"].error
            == "PluginError: tool family 'shared' belongs to plugin fam_first"
        )
        assert "shared.two" not in host.tools
    finally:
        for n in ("fam_first", "fam_second"):
            sys.modules.pop(n, None)
