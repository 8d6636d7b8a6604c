"""Tiny random DINOv2 checkpoints loaded through vfmstudio.ml exactly like the hub models (CPU)."""

from __future__ import annotations

import shutil

import pytest
import torch
import transformers

from vfmstudio.ml import devices
from vfmstudio.ml._loading import (
    check_fits,
    estimate_model_bytes,
    load_pretrained,
    load_processor,
    read_safetensors_header,
)
from vfmstudio.ml.errors import DeviceError, ModelError, ModelTooLargeError
from vfmstudio.testing import TINY_BUILDERS, build_all, tiny_model_dir
from vfmstudio.testing.tiny_models import TINY_NUM_REGISTERS, main

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
    names = ["dinov2", "dinov2-registers"]
    paths = build_all(root, names=names)
    assert set(paths) == set(names) and set(names) <= set(TINY_BUILDERS)
    return root


@pytest.mark.parametrize(
    ("name", "model_cls", "registers"),
    [
        ("dinov2", transformers.Dinov2Model, 0),
        ("dinov2-registers", transformers.Dinov2WithRegistersModel, TINY_NUM_REGISTERS),
    ],
)
def test_tiny_dinov2_loads_and_runs(tiny_root, name, model_cls, registers):
    path = tiny_root / name
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {
        p.name for p in path.iterdir()
    }
    assert not list(path.glob("*.bin"))
    model, info = load_pretrained(model_cls, str(path), device="cpu", precision="auto")
    assert isinstance(model, model_cls) and not model.training
    assert info.device == "cpu" and info.precision == "fp32"
    assert info.local_path == path.resolve() and info.ref.is_local
    assert info.attn_implementation == "sdpa"
    assert info.n_params == sum(p.numel() for p in model.parameters())
    assert info.as_dict()["device"] == "cpu"

    pixels = torch.randn(1, 3, 42, 56)  # 3x4 patches of 14 px, not the native 5x5 grid
    with torch.inference_mode():
        out = model(pixel_values=pixels, output_hidden_states=True)
    hidden = model.config.hidden_size
    assert out.last_hidden_state.shape == (1, 1 + registers + 3 * 4, hidden)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert out.pooler_output.shape == (1, hidden)
    assert getattr(model.config, "num_register_tokens", 0) == registers

    # Same folder through the Auto classes, as for a hub checkpoint.
    auto = transformers.AutoModel.from_pretrained(path)
    assert type(auto) is model_cls
    processor = load_processor(transformers.AutoImageProcessor, path)
    assert processor.size["shortest_edge"] == 256
    assert processor.crop_size["height"] == processor.crop_size["width"] == 224
    assert list(processor.image_mean) == pytest.approx([0.485, 0.456, 0.406])
    assert list(processor.image_std) == pytest.approx([0.229, 0.224, 0.225])


def test_estimate_model_bytes_matches_parameters(tiny_root):
    path = tiny_root / "dinov2-registers"
    model, info = load_pretrained(transformers.Dinov2WithRegistersModel, path, device="cpu")
    actual = sum(p.numel() * p.element_size() for p in model.parameters())
    estimate = estimate_model_bytes(path, "fp32")
    assert abs(estimate - actual) <= 0.05 * actual
    assert abs(estimate_model_bytes(path, "bf16") - actual / 2) <= 0.05 * actual / 2
    assert info.nbytes >= actual
    header = read_safetensors_header(path / "model.safetensors")
    assert "__metadata__" not in header and all("dtype" in v for v in header.values())


def test_bf16_and_eager(tiny_root):
    model, info = load_pretrained(
        transformers.Dinov2Model,
        tiny_root / "dinov2",
        device="cpu",
        precision="bf16",
        attn_implementation="eager",
    )
    assert info.precision == "bf16" and next(model.parameters()).dtype == torch.bfloat16
    assert info.attn_implementation == "eager"
    with torch.inference_mode():
        out = model(pixel_values=torch.randn(1, 3, 28, 28, dtype=torch.bfloat16))
    assert out.last_hidden_state.shape == (1, 5, 32)


def test_sdpa_falls_back_to_eager(tiny_root):
    class NoSdpa(transformers.Dinov2Model):
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            if kwargs.get("attn_implementation") == "sdpa":
                raise ValueError("NoSdpa does not support an attention implementation through sdpa yet")
            assert kwargs["use_safetensors"] is True and kwargs["trust_remote_code"] is False
            return super().from_pretrained(*args, **kwargs)

    _model, info = load_pretrained(NoSdpa, tiny_root / "dinov2", device="cpu")
    assert info.attn_implementation == "eager"


def test_remote_code_is_refused(tiny_root):
    with pytest.raises(ModelError, match="trust_remote_code"):
        load_pretrained(transformers.Dinov2Model, tiny_root / "dinov2", trust_remote_code=True)


def test_hub_id_from_fake_cache_offline(tiny_root, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    storage = cache / "models--tiny-org--dinov2-with-registers"
    shutil.copytree(tiny_root / "dinov2-registers", storage / "snapshots" / COMMIT)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, info = load_pretrained(transformers.AutoModel, "tiny-org/dinov2-with-registers", device="auto")
    assert isinstance(model, transformers.Dinov2WithRegistersModel)
    assert info.ref.repo_id == "tiny-org/dinov2-with-registers"
    assert info.local_path == storage / "snapshots" / COMMIT
    assert info.device == devices.resolve_device("auto")


def test_device_and_precision_resolution_on_cpu():
    assert devices.resolve_device("cpu") == "cpu"
    assert devices.resolve_device("CPU ") == "cpu"
    auto = devices.resolve_device("auto")
    assert auto == "cpu" or auto.startswith("cuda:") or auto == "mps"
    assert devices.resolve_precision("auto", "cpu") == "fp32"
    assert devices.resolve_precision("float32", "cpu") == "fp32"
    assert devices.resolve_precision("bf16", "cpu") == "bf16"
    assert devices.resolve_precision("auto", "mps") == "fp16"
    with pytest.raises(DeviceError, match="fp16 is not supported on cpu"):
        devices.resolve_precision("fp16", "cpu")
    with pytest.raises(DeviceError, match="unknown precision"):
        devices.resolve_precision("int3", "cpu")
    with pytest.raises(DeviceError, match="unknown device"):
        devices.resolve_device("tpu")
    assert devices.torch_dtype("fp16") is torch.float16
    assert devices.torch_dtype("bf16") is torch.bfloat16
    assert devices.torch_dtype("fp32") is torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="not available"):
            devices.resolve_device("cuda")
        with pytest.raises(DeviceError, match="not available"):
            devices.resolve_device("cuda:3")
    if not torch.backends.mps.is_available():
        with pytest.raises(DeviceError, match="not available"):
            devices.resolve_device("mps")
    panel = devices.describe_torch_devices()
    assert panel["source"] == "torch" and panel["cpu_threads"] >= 1
    assert panel["default_device"] == auto
    assert len(panel["cuda_devices"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    probe = devices.probe_device_without_torch()
    assert probe["torch_installed"] and probe["torch_cuda_build"] == torch.version.cuda
    assert probe["device"] == auto.split(":")[0]


def test_check_fits():
    assert check_fits(1024, "cpu") is None or check_fits(1024, "cpu") > 0
    with pytest.raises(ModelTooLargeError) as info:
        check_fits(10**15, "cpu", model="huge/model")
    assert "huge/model" in str(info.value) and "cpu" in str(info.value)


def test_fixture_helper_builds_once(tmp_path):
    first = tiny_model_dir("dinov2", tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = tiny_model_dir("dinov2", tmp_path)
    assert again == first and (again / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(KeyError, match="unknown tiny model"):
        tiny_model_dir("nope", tmp_path)


def test_cli_writes_requested_models(tmp_path, capsys):
    assert main([str(tmp_path), "--only", "dinov2-registers"]) == 0
    printed = capsys.readouterr().out
    assert "dinov2-registers" in printed and str(tmp_path / "dinov2-registers") in printed
    assert (tmp_path / "dinov2-registers" / "model.safetensors").is_file()
    assert not (tmp_path / "dinov2").exists()
