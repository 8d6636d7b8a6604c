"""Shared fixtures. Tiny checkpoints are built once per test session into a temp folder."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests never reach a model hub: everything is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_model(tiny_models_root):
    """``tiny_model("dinov2")`` -> path of a tiny random checkpoint, built once per session."""
    from vfmstudio.testing.fixtures import tiny_model_dir

    def build(name: str):
        return tiny_model_dir(name, tiny_models_root)

    return build


@pytest.fixture
def isolated_hub(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache for one test."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A stand-in hub on 127.0.0.1 (vfmstudio.testing.fake_hub), with HF_ENDPOINT pointed at it and an
    empty cache and token home in tmp_path; the network is allowed for this test only."""
    from vfmstudio.testing.fake_hub import FakeHub

    with FakeHub() as fake:
        for name, value in fake.environment(tmp_path / "hf-home").items():
            monkeypatch.setenv(name, value)
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"):
            monkeypatch.delenv(name, raising=False)
        yield fake
