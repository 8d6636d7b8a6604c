"""Loading transformers models and processors safely (safetensors only, no remote code, offline-aware).

This module imports torch and transformers at the top: import it only once a model is really needed.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vfmstudio.ml.compiling import compile_encoders, torch_compile_enabled
from vfmstudio.ml.devices import (
    BYTES_PER_ELEMENT,
    available_ram_bytes,
    normalize_precision,
    resolve_device,
    resolve_precision,
    torch_dtype,
)
from vfmstudio.ml.errors import ModelError, ModelTooLargeError
from vfmstudio.ml.hub import resolve_local_path
from vfmstudio.ml.refs import ModelRef, parse_model_ref

# safetensors dtype tag -> bytes per element. Floating tensors are cast to the load precision.
_ST_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1,
}  # fmt: skip
_ST_FLOAT = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
_MAX_HEADER = 100 * 1024 * 1024  # a corrupt length must not make us allocate gigabytes
# Extra room when checking memory: allocator slack, the CPU copy during dtype casts, small buffers.
_CPU_MARGIN = 1.15
_GPU_MARGIN = 1.10
_FIXED_OVERHEAD = 256 * 1024 * 1024


@dataclass(frozen=True)
class LoadedModelInfo:
    ref: ModelRef
    local_path: Path
    device: str
    precision: str
    n_params: int
    nbytes: int
    attn_implementation: str | None = None
    compiled: tuple[str, ...] = ()  # the sub-modules torch.compile wraps (empty: eager)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": str(self.ref),
            "local_path": str(self.local_path),
            "device": self.device,
            "precision": self.precision,
            "n_params": self.n_params,
            "nbytes": self.nbytes,
            "attn_implementation": self.attn_implementation,
            "compiled": list(self.compiled),
        }


# --- size estimation -----------------------------------------------------------------------------------


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file (8-byte little-endian length, then JSON); no tensor data read."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ModelError(f"'{path}' is not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", raw)
            if length <= 0 or length > _MAX_HEADER:
                raise ModelError(f"'{path}' has an invalid safetensors header length ({length})")
            header = json.loads(f.read(length))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read safetensors header of '{path}': {exc}") from exc
    if not isinstance(header, dict):
        raise ModelError(f"'{path}' has a malformed safetensors header")
    header.pop("__metadata__", None)
    return header


def _weight_files(local_path: Path) -> list[Path]:
    single = local_path / "model.safetensors"
    if single.is_file():
        return [single]
    index = local_path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot read '{index}': {exc}") from exc
        return [local_path / s for s in shards]
    files = sorted(local_path.glob("*.safetensors"))
    if not files:
        raise ModelError(f"no safetensors weights in '{local_path}'")
    return files


def estimate_model_bytes(local_path: str | Path, precision: str = "fp32") -> int:
    """Bytes the weights take once loaded at ``precision`` (floating tensors cast; integer ones kept)."""
    local_path = Path(local_path)
    p = normalize_precision(precision)
    target = BYTES_PER_ELEMENT.get(p)  # None for "auto": keep the stored dtypes
    total = 0
    for file in _weight_files(local_path):
        for name, meta in read_safetensors_header(file).items():
            try:
                dtype = meta["dtype"]
                numel = 1
                for dim in meta["shape"]:
                    numel *= int(dim)
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelError(f"malformed entry '{name}' in safetensors header of '{file}'") from exc
            size = target if (target is not None and dtype in _ST_FLOAT) else _ST_SIZES.get(dtype, 4)
            total += numel * size
    return total


def _device_free_bytes(device: str) -> int | None:
    kind = device.split(":", 1)[0]
    if kind == "cuda":
        index = int(device.split(":", 1)[1]) if ":" in device else torch.cuda.current_device()
        free, _total = torch.cuda.mem_get_info(index)
        return int(free)
    if kind == "mps":
        mps = getattr(torch, "mps", None)
        if mps is not None and hasattr(mps, "recommended_max_memory"):
            return int(mps.recommended_max_memory() - mps.driver_allocated_memory())
        return available_ram_bytes()  # unified memory
    return available_ram_bytes()


def check_fits(nbytes: int, device: str, *, model: str = "model") -> int | None:
    """Raise ModelTooLargeError when ``nbytes`` of weights cannot fit on ``device``; return the free bytes.

    CPU uses MemAvailable from /proc/meminfo; CUDA uses torch.cuda.mem_get_info. An unknown amount of free
    memory (None) is not an error: we would rather try than refuse on a guess.
    """
    free = _device_free_bytes(device)
    if free is None:
        return None
    margin = _CPU_MARGIN if device.split(":", 1)[0] == "cpu" else _GPU_MARGIN
    needed = int(nbytes * margin) + _FIXED_OVERHEAD
    if needed > free:
        raise ModelTooLargeError(model, needed, free, device)
    return free


# --- loading -------------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_pretrained(
    model_cls: Any,
    ref: str | ModelRef,
    *,
    device: str = "auto",
    precision: str = "auto",
    allow_download: bool = True,
    attn_implementation: str | None = "sdpa",
    compile: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, LoadedModelInfo]:
    """Load ``model_cls.from_pretrained`` for ``ref`` on ``device`` in eval mode, safetensors only.

    ``attn_implementation="sdpa"`` falls back to "eager" when the class does not support SDPA.
    ``compile`` wraps the encoders in ``torch.compile`` (None: the process setting, see
    :mod:`vfmstudio.ml.compiling`). Extra ``kwargs`` go to from_pretrained (never ``trust_remote_code``).
    """
    if kwargs.get("trust_remote_code"):
        raise ModelError(
            "trust_remote_code is never allowed: vfmstudio only runs code shipped with transformers"
        )
    kwargs.pop("trust_remote_code", None)
    ref = parse_model_ref(ref)
    local_path = resolve_local_path(ref, allow_download=allow_download)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    check_fits(estimate_model_bytes(local_path, prec), dev, model=ref.display)

    def _load(attn: str | None) -> Any:
        extra = dict(kwargs)
        if attn is not None:
            extra["attn_implementation"] = attn
        return model_cls.from_pretrained(
            str(local_path),
            use_safetensors=True,
            dtype=torch_dtype(prec),
            trust_remote_code=False,
            local_files_only=True,  # the path is local; never let transformers reach the hub
            **extra,
        )

    from safetensors import SafetensorError
    from transformers.utils import logging as hf_logging

    if not (sys.stderr and sys.stderr.isatty()):
        # transformers draws a "Loading weights" bar on stderr; in a pipe or log it is only noise
        # between the CLI's one-line messages.
        hf_logging.disable_progress_bar()
    attn_used = attn_implementation
    try:
        try:
            model = _load(attn_implementation)
        except ValueError as exc:
            message = str(exc).lower()
            # transformers names the missing support either "sdpa" or "scaled_dot_product_attention".
            if attn_implementation != "sdpa" or (
                "sdpa" not in message and "scaled_dot_product" not in message
            ):
                raise
            attn_used = "eager"
            model = _load("eager")
        model = model.to(dev)
    except (OSError, ValueError, RuntimeError) as exc:
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            raise ModelError(
                f"out of memory loading '{ref.display}' on {dev}: try precision bf16/fp16 or device cpu"
            ) from exc
        raise ModelError(f"cannot load '{ref.display}' as {model_cls.__name__}: {_first_line(exc)}") from exc
    except SafetensorError as exc:  # a truncated or garbage weights file (an interrupted download)
        raise ModelError(
            f"cannot load '{ref.display}': its safetensors weights are corrupt or incomplete "
            f"({_first_line(exc)}); fetch the model again"
        ) from exc
    model.eval()
    compiled = (
        tuple(compile_encoders(model)) if (torch_compile_enabled() if compile is None else compile) else ()
    )
    config = getattr(model, "config", None)
    attn_used = getattr(config, "_attn_implementation", None) or attn_used
    n_params = sum(p.numel() for p in model.parameters())
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    nbytes += sum(b.numel() * b.element_size() for b in model.buffers())
    info = LoadedModelInfo(
        ref=ref,
        local_path=local_path,
        device=dev,
        precision=prec,
        n_params=int(n_params),
        nbytes=int(nbytes),
        attn_implementation=attn_used,
        compiled=compiled,
    )
    return model, info


def load_processor(
    processor_cls: Any, ref: str | ModelRef, *, allow_download: bool = True, **kwargs: Any
) -> Any:
    """``processor_cls.from_pretrained`` for ``ref`` from the local snapshot (no remote code)."""
    if kwargs.get("trust_remote_code"):
        raise ModelError(
            "trust_remote_code is never allowed: vfmstudio only runs code shipped with transformers"
        )
    kwargs.pop("trust_remote_code", None)
    ref = parse_model_ref(ref)
    local_path = resolve_local_path(ref, allow_download=allow_download)
    try:
        return processor_cls.from_pretrained(
            str(local_path), trust_remote_code=False, local_files_only=True, **kwargs
        )
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load the processor of '{ref.display}' as {processor_cls.__name__}: {_first_line(exc)}"
        ) from exc
