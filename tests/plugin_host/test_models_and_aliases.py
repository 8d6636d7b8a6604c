"""Models declared by plugins (vfm_register_models) and tool-id aliases, through the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.tools import ModelSpec, ToolRegistry, ToolSpec
from vfmstudio.ml import catalog

ROOT = Path(__file__).resolve().parents[2]

THIRD_PARTY = """
from vfmstudio.plugin_api import hookimpl, ModelSpec, ToolSpec
@hookimpl
def vfm_register_models():
    return [ModelSpec("acme/dinov3-vitb16-retail", "dinov3", "DINOv3 B/16 retail fine-tune", 86, "CC-BY-4.0"),
            ModelSpec("acme/edge-net", "acme-edges", "Edge net", 3.5, "MIT", default=True)]
@hookimpl
def vfm_register_tools():
    return [ToolSpec(id="acme.edges", title="Edges", run="acme:run", model_families=("acme-edges",),
                     returns=("heatmap",))]
"""

BROKEN = {
    "dup_model": "from vfmstudio.plugin_api import hookimpl, ModelSpec\n@hookimpl\ndef vfm_register_models():\n"
    "    return [ModelSpec('facebook/dinov2-small', 'dinov2', 'again', 22)]\n",
    "bad_model_type": "from vfmstudio.plugin_api import hookimpl\n@hookimpl\ndef vfm_register_models():\n"
    "    return [{'ref': 'x/y'}]\n",
    "bad_model_list": "from vfmstudio.plugin_api import hookimpl\n@hookimpl\ndef vfm_register_models():\n"
    "    return 'x/y'\n",
    "alias_clash": "VFM_TOOL_FAMILIES = ('dino',)\nfrom vfmstudio.plugin_api import hookimpl, ToolSpec\n@hookimpl\n"
    "def vfm_register_tools():\n"
    "    return [ToolSpec(id='dino.mine', title='T', run='x:y', aliases=('dino.pca',))]\n",
    "alias_foreign": "from vfmstudio.plugin_api import hookimpl, ToolSpec\n@hookimpl\ndef vfm_register_tools():\n"
    "    return [ToolSpec(id='alias_foreign.t', title='T', run='x:y', aliases=('dino.t',))]\n",
}
FRAGMENTS = {
    "dup_model": "duplicate model 'facebook/dinov2-small' (already declared by dinov2)",
    "bad_model_type": "expected ModelSpec",
    "bad_model_list": "must return a list of ModelSpec",
    "alias_clash": "tool family 'dino' belongs to plugin dinov2",  # ADR 0110: a family has one owner
    "alias_foreign": "'dino.t' must start with 'alias_foreign.'",
}


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    (tmp_path / "acme.py").write_text(THIRD_PARTY)
    for name, code in BROKEN.items():
        (tmp_path / f"{name}.py").write_text(code)
    info = tmp_path / "acme_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[vfmstudio]\nacme = acme\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ["acme", *BROKEN]:
        sys.modules.pop(name, None)


def test_a_third_party_plugins_models_join_the_catalogue_and_the_tools_of_their_family(
    plugin_dir, monkeypatch
):
    monkeypatch.setenv("HF_HUB_CACHE", str(plugin_dir / "hub"))
    host = PluginHost(builtins=("vfmstudio_dinov2",)).load()  # acme comes from its entry point
    assert host.statuses["acme"].status == "loaded"
    assert host.statuses["acme"].models == ["acme/dinov3-vitb16-retail", "acme/edge-net"]
    entry = catalog.get_known("acme/dinov3-vitb16-retail@v2", host=host)
    assert entry.plugin == "acme" and entry.licence == "CC-BY-4.0" and entry.size == "86M"
    listed = {m["ref"]: m for m in catalog.list_models(host=host)}
    assert listed["acme/edge-net"]["family"] == "acme-edges" and listed["acme/edge-net"]["cached"] is False
    assert [m.ref for m in catalog.models_for("dinov3", host=host)][-1] == "acme/dinov3-vitb16-retail"

    pca = host.tool("dino.pca")
    refs = [m.ref for m in pca.models]
    assert refs[:8] == [
        m.ref for m in catalog.models_for("dinov2", host=host)
    ]  # families in the tool's order
    assert "facebook/dinov3-vits16-pretrain-lvd1689m" in refs and refs[-1] == "acme/dinov3-vitb16-retail"
    assert pca.default_model == "facebook/dinov2-small"
    gated = {m.ref for m in pca.models if m.gated}
    assert "facebook/dinov3-vitl16-pretrain-lvd1689m" in gated and "facebook/dinov2-small" not in gated
    edges = host.tool("acme.edges")
    assert [m.ref for m in edges.models] == ["acme/edge-net"] and edges.default_model == "acme/edge-net"


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_bad_declaration_fails_its_plugin_only(plugin_dir, name):
    host = PluginHost(builtins=("vfmstudio_dinov2", name), entry_points=False).load()
    status = host.statuses[name]
    assert status.status == "failed" and FRAGMENTS[name] in status.error and "\n" not in status.error
    assert host.statuses["dinov2"].status == "loaded"
    assert len(host.models) == 15 and host.tool("dino.pca").plugin == "dinov2"


def test_former_dinov2_ids_find_the_dino_tools_but_are_not_listed():
    host = PluginHost(builtins=("vfmstudio_dinov2",), entry_points=False).load()
    names = ("pca", "joint-pca", "similarity", "matches", "norms", "propagate")
    for name in names:
        assert host.tool(f"dinov2.{name}") is host.tool(f"dino.{name}")
        assert f"dinov2.{name}" in host.tools and host.tools.get(f"dinov2.{name}").id == f"dino.{name}"
    listed = set(host.tools)
    assert {f"dino.{n}" for n in names} <= listed and not {f"dinov2.{n}" for n in names} & listed
    assert host.tool("dino.norms").describe()["aliases"] == ["dinov2.norms"]
    with pytest.raises(KeyError, match="unknown tool 'dinov2.nothing'"):
        host.tool("dinov2.nothing")


def test_tool_registry_resolves_aliases_without_listing_them():
    registry = ToolRegistry()
    registry.add(ToolSpec(id="new.t", title="T", run="m:f", aliases=("old.t", "older.t")))
    assert registry["old.t"] is registry["older.t"] is registry["new.t"]
    assert list(registry) == ["new.t"] and len(registry) == 1
    assert "old.t" in registry and "gone.t" not in registry and 3 not in registry
    assert registry.get("gone.t") is None and registry.canonical("older.t") == "new.t"
    with pytest.raises(ValueError, match="'Bad.Alias'"):
        ToolSpec(id="new.t", title="T", run="m:f", aliases=("Bad.Alias",))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ref": "", "family": "dinov2"}, "hub id"),
        ({"ref": "a/b@main", "family": "dinov2"}, "@revision"),
        ({"ref": "a/b", "family": "DINO v2"}, "family"),
        ({"ref": "a/b", "family": "dinov2", "params_millions": 0}, "positive"),
        ({"ref": "a/b", "family": "dinov2", "params_millions": True}, "positive"),
    ],
)
def test_model_spec_refuses_malformed_declarations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec(**{"title": "T", "params_millions": 1.0, **kwargs})


def test_models_command_lists_every_declared_model_with_licence_and_plugin(tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path),
        "VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "vfmstudio", "models", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    models = {m["ref"]: m for m in json.loads(proc.stdout)["models"]}
    assert models["facebook/dinov3-vits16-pretrain-lvd1689m"]["plugin"] == "dinov2"
    assert models["google/siglip2-base-patch16-naflex"]["family"] == "siglip2"
    assert all(m["licence"] for m in models.values())
    text = subprocess.run(
        [sys.executable, "-m", "vfmstudio", "models"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    ).stdout
    line = next(x for x in text.splitlines() if "facebook/dinov3-vitb16-pretrain-lvd1689m" in x)
    assert "dinov3" in line and "86M" in line and "gated" in line and "DINOv3 License" in line
