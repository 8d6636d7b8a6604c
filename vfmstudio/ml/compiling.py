"""Optional ``torch.compile`` of the image/text encoders (off by default; see docs/adr/0091).

Compiling costs a warm-up of seconds to minutes per model and input shape (``benchmarks/bench_compile.py``
reports it) and pays back only over many same-sized forwards, so it is a process-wide opt-in,
independent of any tool: ``VFMSTUDIO_TORCH_COMPILE=1`` in the environment, or :func:`set_torch_compile`
(for a front end's setting or flag), which wins over the environment. Models already in the model
cache keep the form they were loaded in.

Importing this module does not import torch.
"""

from __future__ import annotations

import logging
from typing import Any

from vfmstudio import settings

log = logging.getLogger(__name__)

ENV = "VFMSTUDIO_TORCH_COMPILE"
# Sub-modules that are the encoders of the model classes we load: CLIP/SigLIP towers, PaliGemma's
# vision tower. A model with none of them (DINOv2) is an encoder itself and is compiled whole.
# Language models are left alone: generation with a growing KV cache recompiles at every length.
ENCODER_ATTRS = ("vision_model", "text_model", "vision_tower")

_override: bool | None = None


def set_torch_compile(enabled: bool | None) -> None:
    """Turn compiling of newly loaded encoders on or off for this process; None returns to the environment."""
    global _override
    _override = None if enabled is None else bool(enabled)


def torch_compile_enabled() -> bool:
    if _override is not None:
        return _override
    return bool(settings.get(ENV))


def compile_encoders(model: Any) -> list[str]:
    """Compile ``model``'s encoder sub-modules in place (``nn.Module.compile``); returns their names.

    Compilation itself is lazy: the cost is paid on the first forward of each input shape.
    ``dynamic=None`` lets torch mark sizes dynamic after the first change, so images of varying
    sizes recompile once, not per size.
    """
    targets = [(name, getattr(model, name)) for name in ENCODER_ATTRS if hasattr(model, name)]
    inner = getattr(model, "model", None)  # transformers 5 wraps some towers one level down
    if not targets and inner is not None:
        targets = [(f"model.{name}", getattr(inner, name)) for name in ENCODER_ATTRS if hasattr(inner, name)]
    if not targets:
        targets = [("", model)]
    for _name, module in targets:
        module.compile(dynamic=None)
    names = [name or type(model).__name__ for name, _ in targets]
    log.info("torch.compile on first use: %s", ", ".join(names))
    return names
