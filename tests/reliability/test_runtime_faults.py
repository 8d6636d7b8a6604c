"""Runtime faults on the real DINOv2 path (tiny checkpoint): a simulated GPU out-of-memory in the
forward pass, and model folders that are missing, corrupt or half-downloaded."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from vfmstudio.cli import main
from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.image import load_image
from vfmstudio.execution import Services, ToolError, run_tool


@pytest.fixture(scope="module")
def dinov2(tiny_model):
    return tiny_model("dinov2")


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    # Unique pixels per test: the process-wide feature cache must not answer for the forward pass.
    seed = abs(hash(str(tmp_path))) % (1 << 31)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 56, 3), np.uint8)).save(path)
    return path


def fresh_services():
    return Services(
        models=ByteLRUCache(1 << 30, name="models"), features=ByteLRUCache(1 << 28, name="features")
    )


@pytest.fixture
def oom_forward(monkeypatch):
    """Every DINOv2 forward raises torch.cuda.OutOfMemoryError while ``state['oom']`` is true."""
    import torch
    import transformers

    state = {"oom": True, "calls": 0}
    originals = {}
    for name in ("Dinov2Model", "Dinov2WithRegistersModel"):
        cls = getattr(transformers, name)
        originals[name] = cls.forward

        def forward(self, *args, _orig=cls.forward, **kwargs):
            state["calls"] += 1
            if state["oom"]:
                raise torch.cuda.OutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8 GiB total)"
                )
            return _orig(self, *args, **kwargs)

        monkeypatch.setattr(cls, "forward", forward)
    return state


def test_gpu_oom_suggests_smaller_resolution_or_precision_and_the_next_run_works(dinov2, photo, oom_forward):
    from vfmstudio._plugin_host import PluginHost

    tool = PluginHost(safe_mode=True, entry_points=False).load().tool("dinov2.pca")
    image, svc = load_image(photo), fresh_services()
    with pytest.raises(ToolError) as info:
        run_tool(tool, [image], {"resolution": 28}, model=str(dinov2), device="cpu", services=svc)
    message = str(info.value)
    assert "ran out of memory" in message and "smaller resolution" in message and "precision" in message
    assert info.value.user_error and oom_forward["calls"] >= 1
    oom_forward["oom"] = False
    prediction = run_tool(tool, [image], {"resolution": 28}, model=str(dinov2), device="cpu", services=svc)
    assert prediction.results


def test_gpu_oom_from_the_cli_is_one_line_exit_2(dinov2, photo, oom_forward, capsys, monkeypatch):
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    code = main(
        [
            "run",
            "dinov2.pca",
            str(photo),
            "--model",
            str(dinov2),
            "--param",
            "resolution=28",
            "--device",
            "cpu",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "smaller resolution" in err and "Traceback" not in err


def _broken_copy(dinov2, tmp_path, how):
    dest = tmp_path / f"model-{how}"
    shutil.copytree(dinov2, dest)
    weights = dest / "model.safetensors"
    if how == "missing-weights":
        weights.unlink()
    elif how == "garbage-weights":
        weights.write_bytes(b"this is not a safetensors file at all" * 100)
    elif how == "truncated-weights":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif how == "missing-config":
        (dest / "config.json").unlink()
    elif how == "missing-shard":
        # A sharded checkpoint whose index names a shard that never arrived.
        index = {
            "metadata": {"total_size": weights.stat().st_size},
            "weight_map": {
                "embeddings.cls_token": "model-00001-of-00002.safetensors",
                "layernorm.weight": "model-00002-of-00002.safetensors",
            },
        }
        weights.rename(dest / "model-00001-of-00002.safetensors")
        (dest / "model.safetensors.index.json").write_text(json.dumps(index))
    elif how == "pickle-only":
        weights.unlink()
        (dest / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    return dest


@pytest.mark.parametrize(
    "how",
    [
        "missing-weights",
        "garbage-weights",
        "truncated-weights",
        "missing-config",
        "missing-shard",
        "pickle-only",
    ],
)
def test_broken_model_folders_give_the_clear_model_error(dinov2, tmp_path, photo, capsys, monkeypatch, how):
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    model_dir = _broken_copy(dinov2, tmp_path, how)
    code = main(
        [
            "run",
            "dinov2.pca",
            str(photo),
            "--model",
            str(model_dir),
            "--param",
            "resolution=28",
            "--device",
            "cpu",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(model_dir.name) in err  # names the model
    assert "internal error" not in err


def test_a_model_folder_that_does_not_exist(tmp_path, photo, capsys, monkeypatch):
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    code = main(["run", "dinov2.pca", str(photo), "--model", str(tmp_path / "nowhere"), "--device", "cpu"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "nowhere" in err
