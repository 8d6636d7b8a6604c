"""Model references, errors and the catalogue: pure Python, no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vfmstudio.ml import catalog
from vfmstudio.ml.errors import (
    GatedModelError,
    ModelError,
    ModelNotAvailableError,
    ModelTooLargeError,
    UnsafeModelError,
)
from vfmstudio.ml.refs import ModelRef, parse_model_ref

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "repo_id", "revision"),
    [
        ("facebook/dinov2-small", "facebook/dinov2-small", None),
        ("  facebook/dinov2-small  ", "facebook/dinov2-small", None),
        ("facebook/dinov2-small@main", "facebook/dinov2-small", "main"),
        ("google/siglip-so400m-patch14-384@v1.0", "google/siglip-so400m-patch14-384", "v1.0"),
        ("org/name@refs/pr/3", "org/name", "refs/pr/3"),
        ("org/name@" + "a" * 40, "org/name", "a" * 40),
        ("Org_1/my.model-v2", "Org_1/my.model-v2", None),
    ],
)
def test_parse_hub_ids(text, repo_id, revision, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray relative folder named like the id
    ref = parse_model_ref(text)
    assert ref == ModelRef(repo_id=repo_id, revision=revision)
    assert not ref.is_local
    assert parse_model_ref(str(ref)) == ref
    assert ref.display == (repo_id if revision is None else f"{repo_id}@{revision}")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "dinov2-small",
        "facebook/dinov2 small",
        "facebook /dinov2-small",
        "facebook/../secrets",
        "facebook/dinov2..small",
        "a/b/c",
        "-org/name",
        "org/name-",
        "org/.name",
        "org/na--me",
        "org/name@",
        "org/name@bad rev",
        "org/name@../x",
        "org/",
    ],
)
def test_malformed_ids_raise_model_error(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as info:
        parse_model_ref(text)
    assert "\n" not in str(info.value)


def test_local_directories(tmp_path, monkeypatch):
    model_dir = tmp_path / "my model"
    model_dir.mkdir()
    ref = parse_model_ref(str(model_dir))
    assert ref.is_local and ref.local_dir == model_dir.resolve() and ref.revision is None
    assert ref.display == "my model"
    assert parse_model_ref(str(ref)) == ref
    assert parse_model_ref(model_dir) == ref  # os.PathLike

    monkeypatch.chdir(tmp_path)
    assert parse_model_ref("./my model") == ref
    # An existing relative folder shaped like a hub id is local.
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert parse_model_ref("org/name").local_dir == (tmp_path / "org" / "name").resolve()

    # Path-looking strings stay local even when missing, so the error can name the folder.
    missing = parse_model_ref("./does-not-exist")
    assert missing.is_local and missing.local_dir == (tmp_path / "does-not-exist").resolve()
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_model_ref("~/my model").local_dir == model_dir.resolve()


def test_model_ref_invariants():
    with pytest.raises(ModelError):
        ModelRef()
    with pytest.raises(ModelError):
        ModelRef(repo_id="a/b", local_dir=Path("/x"))
    with pytest.raises(ModelError):
        ModelRef(local_dir=Path("/x"), revision="main")
    ref = parse_model_ref("a/b@v1")
    assert parse_model_ref(ref) is ref
    assert ref.key == ("a/b", "v1")
    assert hash(ref) == hash(ModelRef(repo_id="a/b", revision="v1"))


def test_error_messages_are_single_line_and_actionable(tmp_path):
    err = ModelNotAvailableError("facebook/dinov2-small", tmp_path / "hub")
    text = str(err)
    assert "\n" not in text
    assert "'facebook/dinov2-small'" in text and str(tmp_path / "hub") in text
    assert "vfmstudio models pull facebook/dinov2-small" in text and "offline" in text
    gated = str(GatedModelError("google/paligemma2-3b-mix-224"))
    assert "licence" in gated and "HF_TOKEN" in gated and "hf auth login" in gated
    assert "safetensors" in str(UnsafeModelError("a/b"))
    big = ModelTooLargeError("a/b", 20 * 2**30, 4 * 2**30, "cpu")
    assert "20.0 GiB" in str(big) and "4.0 GiB" in str(big) and "bf16" in str(big)
    assert str(ModelError("two\nlines")) == "two lines"
    assert all(issubclass(c, ModelError) for c in (GatedModelError, UnsafeModelError, ModelTooLargeError))


def test_catalog_is_what_the_builtin_plugins_declare(tmp_path, monkeypatch):
    from vfmstudio._plugin_host import PluginHost

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    host = PluginHost(entry_points=False)
    models = catalog.list_models(host=host)
    refs = [m["ref"] for m in models]
    assert len(refs) == len(set(refs)) == len(host.models) > 0
    for ref in refs:
        parse_model_ref(ref)  # every catalogue id is well formed
    assert {m["family"] for m in models} == {
        "dinov2",
        "dinov3",
        "clip",
        "siglip",
        "siglip2",
        "paligemma",
        "sam",
        "sam3",
    }
    assert {m["plugin"] for m in models} == {"dinov2", "clip", "paligemma", "sam"}
    assert all(m["licence"] for m in models)
    assert not any(m["cached"] for m in models)
    gated = {m["ref"] for m in models if m["gated"]}
    assert {
        "google/paligemma2-3b-mix-224",
        "facebook/dinov3-vitb16-pretrain-lvd1689m",
        "facebook/sam3",
    } <= gated
    assert not any(r.startswith(("facebook/dinov2", "openai/", "google/siglip")) for r in gated)
    for family in (
        "dinov2",
        "dinov3",
        "clip",
        "siglip",
        "siglip2",
        "paligemma",
        "sam",
        "sam3",
    ):  # one default per family
        assert sum(m["default"] for m in models if m["family"] == family) == 1
    small = catalog.get_known("facebook/dinov2-small@main", host=host)
    assert small is not None and small.size == "22M"
    assert catalog.get_known("facebook/dinov2-giant", host=host).size == "1.1B"
    assert len(catalog.models_for("dinov2", host=host)) == 8
    assert catalog.get_known("nobody/nothing", host=host) is None
    assert {m.ref for m in catalog.KNOWN_MODELS} >= set(refs)  # the former name reads the process's catalogue
    json.dumps(models)  # ready for `vfmstudio models --json`


def _run_isolated(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_light_modules_do_not_import_torch():
    code = (
        "import sys, json\n"
        "import vfmstudio.ml, vfmstudio.ml.refs, vfmstudio.ml.hub, vfmstudio.ml.catalog, vfmstudio.ml.devices\n"
        "import vfmstudio.ml.errors, vfmstudio.testing\n"
        "from vfmstudio.ml.devices import probe_device_without_torch\n"
        "probe = probe_device_without_torch()\n"
        "vfmstudio.ml.catalog.list_models()\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'PySide6') if m in sys.modules)\n"
        "print(json.dumps({'heavy': heavy, 'probe': probe}))\n"
    )
    result = json.loads(_run_isolated(code).strip().splitlines()[-1])
    assert result["heavy"] == []
    probe = result["probe"]
    assert probe["source"] == "probe"
    assert probe["device"] in ("cpu", "cuda", "mps")
    assert probe["torch_installed"] is True
    assert set(probe) >= {"device", "torch_installed", "torch_cuda_build", "source"}
