"""Refining many boxes on a CPU: decoder calls and upsampling steps sized to stay under the fresh-mapping
size (docs/adr/0184), with the same masks and scores as one decoder call for all boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from vfmstudio_sam import _decode
from vfmstudio_sam._embedding import ImageEmbedding

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.image import LoadedImage
from vfmstudio.execution import run_tool
from vfmstudio.testing.tiny_sam import HIDDEN, IMAGE_SIZE, PATCH

DECODERS = (
    transformers.models.sam.modeling_sam.SamMaskDecoder,
    transformers.models.sam2.modeling_sam2.Sam2MaskDecoder,
)


@pytest.fixture(scope="module")
def host():
    return PluginHost(builtins=("vfmstudio_sam",), entry_points=False).load()


def photo(height: int = 90, width: int = 150) -> LoadedImage:
    coarse = np.random.default_rng(4).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    return LoadedImage(
        path=None, pixels=pixels, id="chunks", width=width, height=height, format="PNG", metadata={}
    )


class _Sam:  # what decoder_batch reads of a loaded model
    def __init__(self, device: str):
        self.device = device


def test_cpu_decoder_chunks_keep_each_activation_under_the_budget():
    vit_b = ImageEmbedding(tensors=(torch.zeros(1, 256, 64, 64),), original=(960, 1280), resized=(768, 1024))
    # The upscaled mask features of one box: 32 channels x 256 x 256 float32 = 8 MB; two fit in 16 MB.
    assert _decode.decoder_batch(_Sam("cpu"), vit_b) == 2
    assert _decode.decoder_batch(_Sam("cuda:0"), vit_b) == _decode.MAX_DECODER_BATCH
    sam2 = ImageEmbedding(
        tensors=(torch.zeros(1, 32, 256, 256), torch.zeros(1, 64, 128, 128), torch.zeros(1, 256, 64, 64)),
        original=(960, 1280),
        resized=(1024, 1024),
    )
    assert _decode.decoder_batch(_Sam("cpu"), sam2) == 2  # the image embedding, not the high-res features
    tiny = ImageEmbedding(tensors=(torch.zeros(1, 32, 8, 8),), original=(90, 150), resized=(72, 128))
    assert _decode.decoder_batch(_Sam("cpu"), tiny) == _decode.MAX_DECODER_BATCH
    # Upsampling: 1280 x 960 float32 masks are 4.9 MB each: three per step on a CPU.
    assert _decode.upsampling_step("cpu", 1280 * 960) == 3
    assert _decode.upsampling_step("cpu", 8000 * 6000) == 1
    assert _decode.upsampling_step("cuda:0", 1280 * 960) == _decode.FULL_SIZE_FLOATS // (1280 * 960)


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_refine_in_small_chunks_equals_one_decoder_call(host, services, tiny_model, monkeypatch, family):
    folder, image = tiny_model(family), photo()
    rng = np.random.default_rng(1)
    x0, y0 = rng.uniform(0, 100, 7), rng.uniform(0, 50, 7)
    boxes = "; ".join(
        f"{a:.1f},{b:.1f},{a + rng.uniform(10, 50):.1f},{b + rng.uniform(10, 40):.1f}" for a, b in zip(x0, y0)
    )

    def refine():
        return run_tool(
            host.tools["sam.refine"], [image], {"boxes": boxes}, model=str(folder), device="cpu",
            precision="fp32", services=services,
        ).results[0]  # fmt: skip

    whole = refine()
    calls = {"decoder": 0, "upsample": 0}
    for cls in DECODERS:
        original = cls.forward

        def forward(self, *args, _original=original, **kwargs):
            calls["decoder"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "forward", forward)
    interpolate = _decode.F.interpolate

    def counted(x, *args, **kwargs):
        calls["upsample"] += 1
        return interpolate(x, *args, **kwargs)

    monkeypatch.setattr(_decode.F, "interpolate", counted)
    # Budget: three boxes' upscaled mask features (the tiny models' embedding: 32 x 8 x 8), less than
    # one 128 x 128 upsampled mask: 3 decoder calls for 7 boxes, one mask per upsampling step.
    grid = IMAGE_SIZE // PATCH
    monkeypatch.setattr(_decode, "CPU_TENSOR_BYTES", 3 * 2 * HIDDEN * grid * grid * 4)
    chunked = refine()
    passes = 2 if family == "sam" else 1  # SAM 1 upsamples to the padded input, then to the image
    assert calls == {"decoder": math.ceil(7 / 3), "upsample": passes * 7}
    assert (chunked.masks == whole.masks).all() and chunked.masks.any()
    np.testing.assert_allclose(chunked.scores, whole.scores, rtol=0, atol=1e-5)
