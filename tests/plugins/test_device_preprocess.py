"""CLIP/SigLIP/PaliGemma preprocessing in torch (used on GPUs) against the models' own PIL image processors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil

from vfmstudio.ml._preprocess import DevicePreprocess, pixel_values_on_device


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.random((1, 3, max(2, h // 30), max(2, w // 30)), dtype=np.float32) * 255)
    big = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    noisy = big[0].permute(1, 2, 0).numpy() + rng.normal(0, 12, (h, w, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "processor", [CLIPImageProcessorPil(), SiglipImageProcessorPil()], ids=["clip", "siglip"]
)
@pytest.mark.parametrize("uint8_resize", [True, False], ids=["uint8-resize", "float-resize"])
@pytest.mark.parametrize("shape", [(480, 640), (640, 427), (300, 300), (225, 1000)])
def test_equals_the_processor_up_to_resize_rounding(processor, uint8_resize, shape):
    spec = DevicePreprocess.of(processor)
    assert spec is not None
    pixels = _photo(*shape, seed=sum(shape))
    expected = processor(images=[pixels], return_tensors="pt")["pixel_values"]
    got = spec(pixels, "cpu", uint8_resize=uint8_resize)
    assert got.shape == expected.shape and got.dtype == torch.float32
    grey = (got - expected).abs() * torch.tensor(spec.std).view(1, 3, 1, 1) / spec.scale
    # PIL resizes in fixed point, torch in float: they round a share of the pixels differently.
    assert float(grey.max()) <= 2.0 + 1e-3
    assert float(grey.mean()) < 0.25


def test_processors_it_does_not_know_are_left_to_themselves():
    assert DevicePreprocess.of(CLIPImageProcessorPil(do_normalize=False)) is None
    assert DevicePreprocess.of(CLIPImageProcessorPil(resample=2)) is None  # bilinear
    assert DevicePreprocess.of(object()) is None


def test_an_image_smaller_than_the_crop_is_refused():
    spec = DevicePreprocess.of(CLIPImageProcessorPil(size={"shortest_edge": 200}))
    with pytest.raises(ValueError, match="smaller than"):
        spec(_photo(100, 100, 0), "cpu")


def test_on_a_cpu_the_processor_runs():
    pixels = [_photo(480, 640, 1)]
    assert pixel_values_on_device(CLIPImageProcessorPil(), pixels, "cpu", torch.float32) is None


def test_the_paligemma_processor_is_covered(tiny_model):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(tiny_model("paligemma"))).image_processor
    spec = DevicePreprocess.of(processor)
    assert spec is not None and spec.crop is None  # SigLIP: straight to a fixed size
    pixels = _photo(300, 500, 3)
    expected = processor(images=[pixels], return_tensors="pt")["pixel_values"]
    grey = (spec(pixels, "cpu", uint8_resize=False) - expected).abs() * torch.tensor(spec.std).view(
        1, 3, 1, 1
    )
    assert float(grey.max()) / spec.scale <= 2.0 + 1e-3
