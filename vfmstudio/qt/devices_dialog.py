"""Run › Devices…: what torch sees, as a few lines of text."""

from __future__ import annotations

from typing import Any


def describe(info: dict[str, Any]) -> str:
    lines = [
        f"torch {info.get('torch_version')} (CUDA build: {info.get('torch_cuda_build') or 'none'})",
        f"default device: {info.get('default_device')}",
        f"CUDA available: {info.get('cuda_available')}",
    ]
    for d in info.get("cuda_devices", []):
        free = d.get("free_bytes")
        lines.append(
            f"  {d['device']}: {d['name']}, {d['total_bytes'] / 2**30:.1f} GiB"
            f"{f', {free / 2**30:.1f} GiB free' if free is not None else ''}, "
            f"compute {d['capability']}, bf16 {'yes' if d['bf16'] else 'no'}"
        )
    lines.append(f"MPS available: {info.get('mps_available')}")
    lines.append(f"CPU: {info.get('cpu_count')} cores, torch uses {info.get('cpu_threads')} threads")
    ram = info.get("ram_total_bytes")
    if ram:
        lines.append(
            f"RAM: {ram / 2**30:.1f} GiB total, {(info.get('ram_available_bytes') or 0) / 2**30:.1f} "
            f"GiB available"
        )
    return "\n".join(lines)


def describe_torch_devices_job(_ctx: Any) -> dict:
    """Asked on the inference thread: importing torch takes a moment."""
    from vfmstudio.ml.devices import describe_torch_devices

    return describe_torch_devices()
