"""Models, devices and the hub cache. The only core-side package that uses torch, and only lazily.

Importing ``vfmstudio.ml`` (or refs, errors, devices, hub, catalog) never imports torch or transformers;
``load_pretrained``/``load_processor``/``estimate_model_bytes``/``check_fits`` live in ``_loading`` and
import them on first use.
"""

from __future__ import annotations

from typing import Any

from vfmstudio.ml.errors import (
    DeviceError,
    GatedModelError,
    ModelError,
    ModelNotAvailableError,
    ModelTooLargeError,
    UnsafeModelError,
)
from vfmstudio.ml.refs import ModelRef, parse_model_ref

_LAZY = {
    "load_pretrained": "vfmstudio.ml._loading",
    "load_processor": "vfmstudio.ml._loading",
    "estimate_model_bytes": "vfmstudio.ml._loading",
    "check_fits": "vfmstudio.ml._loading",
    "LoadedModelInfo": "vfmstudio.ml._loading",
}

__all__ = [
    "DeviceError",
    "GatedModelError",
    "ModelError",
    "ModelNotAvailableError",
    "ModelRef",
    "ModelTooLargeError",
    "UnsafeModelError",
    "parse_model_ref",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vfmstudio.ml' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
