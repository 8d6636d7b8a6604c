"""core.rle (numpy COCO RLE) matches pycocotools byte for byte, both ways."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_util

from vfmstudio.core import rle

# pycocotools 2.0 decodes through numpy with a deprecated __array__ call; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

masks_2d = st.integers(1, 40).flatmap(
    lambda h: st.integers(1, 40).flatmap(lambda w: arrays(np.bool_, (h, w)))
)


def _theirs(mask: np.ndarray) -> dict:
    return mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))


@settings(max_examples=300, deadline=None)
@given(masks_2d)
def test_encode_equals_pycocotools(mask):
    ours, theirs = rle.encode(mask), _theirs(mask)
    assert ours["counts"].encode("ascii") == theirs["counts"]
    assert ours["size"] == list(theirs["size"])
    assert rle.area(ours) == int(mask_util.area(theirs))
    assert np.array_equal(rle.decode({"size": theirs["size"], "counts": theirs["counts"]}), mask)
    assert np.array_equal(
        mask_util.decode({"size": ours["size"], "counts": ours["counts"].encode()}).astype(bool), mask
    )


def test_large_runs_and_blocks():
    rng = np.random.default_rng(0)
    for shape in [(480, 640), (1, 5000), (3000, 2)]:
        for density in (0.0, 0.001, 0.5, 1.0):
            mask = rng.random(shape) < density
            mask[: shape[0] // 2, : shape[1] // 3] = True  # long runs: multi-group deltas, negative deltas
            assert rle.encode(mask)["counts"].encode() == _theirs(mask)["counts"]


@settings(max_examples=200, deadline=None)
@given(masks_2d)
def test_project_masks_decode_like_the_reference_decoder(mask):
    from vfmstudio.core.annotations import Mask

    text = rle.encode(mask)["counts"]
    assert rle.string_to_counts(text) == rle._string_to_counts_exact(text)
    again = Mask.from_rle({"size": list(mask.shape), "counts": text})
    assert again == Mask.from_array(mask) and np.array_equal(again.to_array(), mask)
