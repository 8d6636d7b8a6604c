"""The torch.compile setting: off by default, on through the environment or the process switch, and it
wraps the encoders (the whole DINOv2, the CLIP towers) of models loaded through load_pretrained."""

from __future__ import annotations

import pytest
import transformers

from vfmstudio.ml import compiling
from vfmstudio.ml._loading import load_pretrained


@pytest.fixture(autouse=True)
def _reset(monkeypatch):
    monkeypatch.delenv(compiling.ENV, raising=False)
    yield
    compiling.set_torch_compile(None)


def _is_compiled(module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None


def test_off_by_default_and_switchable(monkeypatch):
    assert compiling.torch_compile_enabled() is False
    monkeypatch.setenv(compiling.ENV, "1")
    assert compiling.torch_compile_enabled() is True
    compiling.set_torch_compile(False)  # the process switch wins over the environment
    assert compiling.torch_compile_enabled() is False
    compiling.set_torch_compile(None)
    assert compiling.torch_compile_enabled() is True


def test_dinov2_is_compiled_whole_only_when_asked(tiny_model, monkeypatch):
    model, info = load_pretrained(transformers.AutoModel, str(tiny_model("dinov2")), device="cpu")
    assert info.compiled == () and not _is_compiled(model)
    monkeypatch.setenv(compiling.ENV, "1")
    model, info = load_pretrained(transformers.AutoModel, str(tiny_model("dinov2")), device="cpu")
    assert info.compiled == ("Dinov2Model",) and _is_compiled(model)
    assert info.as_dict()["compiled"] == ["Dinov2Model"]


def test_clip_towers_are_compiled_not_the_wrapper(tiny_model):
    model, info = load_pretrained(transformers.AutoModel, str(tiny_model("clip")), device="cpu", compile=True)
    assert set(info.compiled) == {"vision_model", "text_model"}
    assert _is_compiled(model.vision_model) and _is_compiled(model.text_model) and not _is_compiled(model)


def test_the_cli_flag_turns_it_on_for_the_process_and_its_workers(monkeypatch, capsys):
    from vfmstudio.cli import main

    monkeypatch.setenv(compiling.ENV, "")  # so the flag's os.environ write is undone after the test
    assert main(["tools"]) == 0
    assert compiling.torch_compile_enabled() is False
    assert main(["--compile", "tools"]) == 0
    assert compiling.torch_compile_enabled() is True
