"""Image preprocessing of the HF image processors, in torch on the model's device (ADR 0092).

The PIL image processors (used when torchvision is absent) cost ~4 ms per photo on one CPU core,
more than a batched ViT forward per image on a GPU. :class:`DevicePreprocess` repeats the steps of
the CLIP/SigLIP-style processors (CLIP, SigLIP, PaliGemma's SigLIP): bicubic antialiased resize (short
side, or to a fixed size), centre crop, rescale, normalise. On a CPU the processors keep running, so
results there stay equal to the reference pipelines'.

This module imports torch at the top: import it only where a model runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class DevicePreprocess:
    """The CLIP/SigLIP image processor's steps in torch: bicubic antialiased resize (short side, or to a
    fixed size), centre crop, rescale, normalise. Equal to the PIL processor up to the rounding of the
    resize (PIL works in fixed point): at most two grey levels, a fifth of a level on average."""

    shortest_edge: int | None
    size: tuple[int, int] | None  # (height, width) when the processor resizes to a fixed size
    crop: tuple[int, int] | None
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, ip: Any) -> DevicePreprocess | None:
        """The steps of ``ip`` when they are the ones above; None for anything else (the processor runs)."""
        size = getattr(ip, "size", None)
        if (
            not getattr(ip, "do_resize", False)
            or int(getattr(ip, "resample", -1)) != 3
            or size is None
            or not getattr(ip, "do_rescale", False)
            or not getattr(ip, "do_normalize", False)
            or getattr(ip, "do_pad", None)
            or getattr(size, "longest_edge", None)
        ):
            return None
        crop_size = getattr(ip, "crop_size", None) if getattr(ip, "do_center_crop", False) else None
        shortest = getattr(size, "shortest_edge", None)
        fixed = (
            (size.height, size.width)
            if getattr(size, "height", None) and getattr(size, "width", None)
            else None
        )
        if not shortest and not fixed:
            return None
        crop = (crop_size.height, crop_size.width) if crop_size is not None else None
        if crop is not None and not (crop[0] and crop[1]):
            return None
        mean, std = tuple(ip.image_mean), tuple(ip.image_std)
        if len(mean) != 3 or len(std) != 3:
            return None
        return cls(
            shortest_edge=shortest,
            size=None if shortest else fixed,
            crop=crop,
            scale=float(ip.rescale_factor),
            mean=mean,
            std=std,
        )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        # transformers' get_resize_output_image_size: the long side is truncated, not rounded.
        s = int(self.shortest_edge or 0)
        return (int(s * height / width), s) if width <= height else (s, int(s * width / height))

    def __call__(
        self, pixels: np.ndarray, device: str | torch.device = "cpu", uint8_resize: bool | None = None
    ) -> torch.Tensor:
        """(H, W, 3) uint8 -> (1, 3, h, w) float32 normalised, on ``device``.

        ``uint8_resize`` (default: on a CPU) uses torch's uint8 kernel, which rounds like PIL; GPUs
        resize in float and round."""
        x = torch.tensor(pixels, device=device).permute(2, 0, 1).unsqueeze(0)
        h, w = self.output_size(pixels.shape[0], pixels.shape[1])
        if uint8_resize if uint8_resize is not None else x.device.type == "cpu":
            x = torch.nn.functional.interpolate(
                x, size=(h, w), mode="bicubic", antialias=True, align_corners=False
            )
            x = x.float()
        else:
            x = (
                torch.nn.functional.interpolate(
                    x.float(), size=(h, w), mode="bicubic", antialias=True, align_corners=False
                )
                .clamp_(0, 255)
                .round_()
            )
        if self.crop is not None:
            ch, cw = self.crop
            if h < ch or w < cw:  # the processor pads with zeros here; leave such images to it
                raise ValueError(f"image resized to {w}x{h} is smaller than the {cw}x{ch} crop")
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[:, :, top : top + ch, left : left + cw]
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return ((x * self.scale - mean) / std).contiguous()


def pixel_values_on_device(
    image_processor: Any, pixels: Sequence[np.ndarray], device: str, dtype: torch.dtype
) -> torch.Tensor | None:
    """(B, 3, h, w) model input made on ``device``, or None where the processor must run instead: on a
    CPU (exact parity with the reference pipelines), for processor settings not covered above, and
    for an image smaller than the crop (the processor pads it)."""
    if torch.device(device).type == "cpu" or not len(pixels):
        return None
    spec = DevicePreprocess.of(image_processor)
    if spec is None:
        return None
    try:
        return torch.cat([spec(px, device) for px in pixels]).to(dtype)
    except ValueError:
        return None
