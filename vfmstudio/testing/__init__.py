"""Test helpers: tiny random checkpoints shaped like the real models (imports torch on use)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TINY_BUILDERS", "build_all", "build_tiny", "build_tiny_dinov2", "tiny_model_dir", "tiny_models"]

_FROM = {
    "TINY_BUILDERS": "tiny_models",
    "build_all": "tiny_models",
    "build_tiny": "tiny_models",
    "build_tiny_dinov2": "tiny_models",
    "tiny_model_dir": "fixtures",
}


def __getattr__(name: str) -> Any:
    # Lazy: importing vfmstudio.testing must not pull in torch/transformers until a builder is used.
    if name == "tiny_models":
        return importlib.import_module("vfmstudio.testing.tiny_models")
    if name in _FROM:
        return getattr(importlib.import_module(f"vfmstudio.testing.{_FROM[name]}"), name)
    raise AttributeError(f"module 'vfmstudio.testing' has no attribute {name!r}")
