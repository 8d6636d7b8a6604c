"""Device and precision resolution.

``resolve_device``/``resolve_precision``/``torch_dtype``/``describe_torch_devices`` import torch lazily, so
importing this module stays cheap. ``probe_device_without_torch`` guesses what "auto" would pick without
importing torch at all (for the CLI and the start-up status bar, where a 1-2 s torch import is too slow).

Precision policy: "auto" is bf16 on CUDA when the GPU supports it (else fp16), fp16 on MPS and fp32 on CPU.
An explicit fp16 on CPU is *refused* (DeviceError) rather than silently changed: many CPU kernels lack
fp16 or run it far slower than fp32, and a silent fallback would make results and timings lie about
the precision in use. bf16 on CPU is allowed (supported by torch, useful to halve memory).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from vfmstudio.ml.errors import DeviceError

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")

_PRECISION_ALIASES = {
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
}
BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "bf16": 2}


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a hard dependency
        raise DeviceError("torch is not installed: install vfmstudio with its model dependencies") from exc
    return torch


def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(requested: str = "auto") -> str:
    """Return a concrete torch device string: "cpu", "cuda:N" or "mps".

    "auto" picks CUDA, then MPS, then CPU. An explicit device that is not available raises DeviceError.
    """
    req = (requested or "auto").strip().lower()
    if req == "cpu":
        return "cpu"  # no torch import needed
    torch = _torch()
    if req == "auto":
        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()}"
        if _mps_available(torch):
            return "mps"
        return "cpu"
    m = re.fullmatch(r"cuda(?::(\d+))?", req)
    if m:
        if not torch.cuda.is_available():
            build = torch.version.cuda or getattr(torch.version, "hip", None)
            why = "no NVIDIA GPU/driver was found" if build else "this torch build has no CUDA support"
            raise DeviceError(f"device '{requested}' is not available: {why}; use device auto or cpu")
        count = torch.cuda.device_count()
        index = int(m.group(1)) if m.group(1) is not None else torch.cuda.current_device()
        if index >= count:
            raise DeviceError(
                f"device '{requested}' is not available: only {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )
        return f"cuda:{index}"
    if req == "mps":
        if not _mps_available(torch):
            raise DeviceError(
                "device 'mps' is not available: it needs Apple silicon and a torch build with MPS"
            )
        return "mps"
    raise DeviceError(f"unknown device {requested!r}: use one of auto, cpu, cuda, cuda:N, mps")


def normalize_precision(precision: str) -> str:
    """Canonical precision name ("auto", "fp32", "fp16", "bf16") or DeviceError."""
    p = (precision or "auto").strip().lower()
    if p == "auto":
        return p
    try:
        return _PRECISION_ALIASES[p]
    except KeyError:
        raise DeviceError(f"unknown precision {precision!r}: use one of auto, fp32, fp16, bf16") from None


def resolve_precision(precision: str = "auto", device: str = "cpu") -> str:
    """Return "fp32", "fp16" or "bf16" for ``device`` (a resolved device string, see resolve_device)."""
    p = normalize_precision(precision)
    kind = device.split(":", 1)[0]
    if p == "auto":
        if kind == "cuda":
            torch = _torch()
            index = int(device.split(":", 1)[1]) if ":" in device else None
            with torch.cuda.device(index) if index is not None else contextlib.nullcontext():
                return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if kind == "mps":
            return "fp16"
        return "fp32"
    if p == "fp16" and kind == "cpu":
        raise DeviceError("precision fp16 is not supported on cpu: use fp32 (or bf16 to halve memory)")
    if p == "bf16" and kind == "cuda":
        torch = _torch()
        if not torch.cuda.is_bf16_supported():
            raise DeviceError(f"precision bf16 is not supported by the GPU on {device}: use fp16 or fp32")
    return p


def torch_dtype(name: str):
    """The torch dtype for a precision name ("fp32", "fp16", "bf16" or an alias)."""
    p = normalize_precision(name)
    if p == "auto":
        raise DeviceError("precision 'auto' has no dtype: resolve it first with resolve_precision")
    torch = _torch()
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[p]


# --- without torch -----------------------------------------------------------------------------------


def _torch_version_fields() -> tuple[bool, dict[str, str | None]]:
    """Read torch/version.py as text: whether torch is installed and its cuda/hip build strings."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return False, {}
    locations = list(spec.submodule_search_locations or [])
    fields: dict[str, str | None] = {}
    for loc in locations:
        version_py = Path(loc) / "version.py"
        try:
            text = version_py.read_text(encoding="utf-8")
        except OSError:
            continue
        for key in ("cuda", "hip", "__version__"):
            m = re.search(rf"^{re.escape(key)}\s*(?::[^=\n]*)?=\s*(.+?)\s*$", text, re.MULTILINE)
            if m:
                value = m.group(1).strip()
                fields[key] = None if value == "None" else value.strip("'\"")
        break
    return True, fields


def _nvidia_driver_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def _cuda_hidden() -> bool:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible is not None and visible.strip() in ("", "-1")


def probe_device_without_torch() -> dict[str, Any]:
    """Guess the device that ``resolve_device("auto")`` would return, without importing torch.

    It is a guess (a driver may be present but broken): the real answer comes from resolve_device.
    """
    installed, fields = _torch_version_fields()
    cuda_build = fields.get("cuda")
    hip_build = fields.get("hip")
    device = "cpu"
    if installed and not _cuda_hidden():
        if cuda_build and _nvidia_driver_present():
            device = "cuda"
        elif hip_build and Path("/dev/kfd").exists():
            device = "cuda"  # ROCm builds expose AMD GPUs through the cuda device type
    if device == "cpu" and installed and sys.platform == "darwin" and platform.machine() == "arm64":
        device = "mps"
    return {
        "device": device,
        "torch_installed": installed,
        "torch_version": fields.get("__version__"),
        "torch_cuda_build": cuda_build,
        "source": "probe",
    }


def available_ram_bytes() -> int | None:
    """Memory the OS can give us now (MemAvailable on Linux); None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def total_ram_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def describe_torch_devices() -> dict[str, Any]:
    """Everything the device panel shows (imports torch)."""
    torch = _torch()
    cuda_devices: list[dict[str, Any]] = []
    cuda_ok = bool(torch.cuda.is_available())
    if cuda_ok:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            try:
                free, total = torch.cuda.mem_get_info(i)
            except RuntimeError:
                free, total = None, int(props.total_memory)
            with torch.cuda.device(i):
                bf16 = bool(torch.cuda.is_bf16_supported())
            cuda_devices.append(
                {
                    "device": f"cuda:{i}",
                    "name": props.name,
                    "total_bytes": int(total),
                    "free_bytes": None if free is None else int(free),
                    "capability": f"{props.major}.{props.minor}",
                    "bf16": bf16,
                }
            )
    return {
        "torch_version": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": cuda_ok,
        "cuda_devices": cuda_devices,
        "mps_available": _mps_available(torch),
        "cpu_threads": int(torch.get_num_threads()),
        "cpu_count": os.cpu_count(),
        "ram_total_bytes": total_ram_bytes(),
        "ram_available_bytes": available_ram_bytes(),
        "default_device": resolve_device("auto"),
        "source": "torch",
    }
