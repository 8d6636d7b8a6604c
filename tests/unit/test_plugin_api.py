"""vfmstudio.plugin_api: the whole surface a plugin needs, torch-free at import, typed signatures."""

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np

from vfmstudio import plugin_api

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_api_imports_neither_torch_nor_transformers():
    code = (
        "import sys, vfmstudio.plugin_api as api; assert callable(api.load_pretrained); "
        "print(sorted(m for m in ('torch', 'transformers', 'PySide6') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_every_exported_name_resolves():
    for name in plugin_api.__all__:
        assert getattr(plugin_api, name) is not None, name


def test_model_helpers_call_the_loader_late(monkeypatch):
    # The public helper wraps the private loader at call time, so the loader stays one implementation.
    from vfmstudio.ml import _loading

    calls = []
    monkeypatch.setattr(_loading, "load_pretrained", lambda *a, **kw: calls.append((a, kw)) or ("m", "info"))
    assert plugin_api.load_pretrained("Cls", "org/model", device="cpu") == ("m", "info")
    assert calls == [
        (
            ("Cls", "org/model"),
            {
                "device": "cpu",
                "precision": "auto",
                "allow_download": True,
                "attn_implementation": "sdpa",
                "compile": None,
            },
        )
    ]


def test_the_protocols_match_the_built_in_functions():
    from vfmstudio_dinov2 import _features
    from vfmstudio_formats import _coco

    def params(fn):
        return [p.name for p in inspect.signature(fn).parameters.values()]

    assert len(params(_features.prepare)) == len(params(plugin_api.PrepareFunction.__call__)) - 1
    assert len(params(_coco.export)) == len(params(plugin_api.ExporterFunction.__call__)) - 1
    assert len(params(_coco.import_)) == len(params(plugin_api.ImporterFunction.__call__)) - 1


def test_built_in_plugins_import_vfmstudio_only_through_the_api():
    # The import-linter contract says the same; this names the offending line if it ever breaks.
    offenders = []
    for path in (ROOT / "plugins").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            text = line.strip()
            if text.startswith(("from vfmstudio.", "import vfmstudio.")) and not text.startswith(
                "from vfmstudio.plugin_api import"
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {text}")
    assert offenders == []


def test_rle_and_mask_helpers_round_trip():
    mask = np.zeros((5, 7), bool)
    mask[1:4, 2:6] = True
    assert np.array_equal(plugin_api.rle_decode(plugin_api.rle_encode(mask)), mask)
    assert plugin_api.mask_bbox(mask) is not None
