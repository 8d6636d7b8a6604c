"""sam.segment and sam.refine equal the transformers reference pipelines on tiny random checkpoints.

SAM 1: ``SamProcessor`` (its PIL image processor) + ``SamModel`` on pixel values (image encoder and
decoder in one call) + ``post_process_masks``. SAM 2.1: ``Sam2Processor`` maps the prompts;
``Sam2ImageProcessorFast`` and its ``post_process_masks`` live in a module that imports torchvision,
which is not installed, so their two documented steps are written out below (the uint8 bilinear
antialiased resize with the fused normalisation; the bilinear upsampling of the logits to the image,
threshold 0). Images are non-square, so a swapped axis or a wrong ratio changes the masks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers
from PIL import Image
from transformers.models.sam2.processing_sam2 import Sam2Processor

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.image import LoadedImage
from vfmstudio.execution import run_tool
from vfmstudio.testing.tiny_sam import IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD

SIZES = [(90, 150), (140, 76)]  # (H, W): landscape and portrait


@pytest.fixture(scope="module")
def host():
    return PluginHost(builtins=("vfmstudio_sam",), entry_points=False).load()


def photo(height: int, width: int, seed: int = 0) -> LoadedImage:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    return LoadedImage(
        path=None,
        pixels=pixels,
        id=f"photo-{height}x{width}-{seed}",
        width=width,
        height=height,
        format="PNG",
        metadata={},
    )


# ---------------------------------------------------------------------------------------------- references


def sam1_reference(folder, image: LoadedImage, points=None, labels=None, boxes=None, multimask=False):
    processor = transformers.SamProcessor.from_pretrained(folder)
    model = transformers.SamModel.from_pretrained(folder).eval()
    kwargs = {}
    if points is not None:
        kwargs["input_points"] = [[points]]
        kwargs["input_labels"] = [[labels]]
    if boxes is not None:
        kwargs["input_boxes"] = [boxes]
    inputs = processor(images=image.pixels, return_tensors="pt", **kwargs)
    with torch.no_grad():
        out = model(**inputs, multimask_output=multimask)
    masks = processor.image_processor.post_process_masks(
        out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
    )[0]
    return masks.numpy(), out.iou_scores[0].numpy()


def sam2_pixel_values(image: LoadedImage) -> torch.Tensor:
    x = torch.from_numpy(image.pixels.copy()).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN) * (1.0 / (1 / 255))
    std = torch.tensor(IMAGENET_STD) * (1.0 / (1 / 255))
    return (x.float() - mean[:, None, None]) / std[:, None, None]


def sam2_reference(folder, image: LoadedImage, points=None, labels=None, boxes=None, multimask=False):
    processor = Sam2Processor.__new__(Sam2Processor)  # the prompt half only: no image processor needed
    processor.target_size, processor.point_pad_value = IMAGE_SIZE, -10
    kwargs = {}
    if points is not None:
        kwargs["input_points"] = [[points]]
        kwargs["input_labels"] = [[labels]]
    if boxes is not None:
        kwargs["input_boxes"] = [boxes]
    prompts = processor(
        images=None, original_sizes=[[image.height, image.width]], return_tensors="pt", **kwargs
    )
    model = transformers.Sam2Model.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(
            pixel_values=sam2_pixel_values(image),
            multimask_output=multimask,
            **{k: v for k, v in prompts.items() if k != "original_sizes"},
        )
    masks = (
        F.interpolate(out.pred_masks[0], (image.height, image.width), mode="bilinear", align_corners=False)
        > 0
    )
    return masks.numpy(), out.iou_scores[0].numpy()


REFERENCES = {"sam": sam1_reference, "sam2": sam2_reference}


def ours(host, services, folder, image, **params):
    prediction = run_tool(
        host.tools["sam.segment"],
        [image],
        params,
        model=str(folder),
        device="cpu",
        precision="fp32",
        services=services,
    )
    (masks,) = prediction.results
    return masks


def assert_same(ours_masks, ref_masks: np.ndarray, ours_scores, ref_scores: np.ndarray) -> None:
    assert ours_masks.shape == ref_masks.shape
    assert 0 < ref_masks.mean() < 1  # random weights still give masks with both sides: a real comparison
    for a, b in zip(ours_masks, ref_masks):
        assert (a == b).all()  # IoU 1.0
    np.testing.assert_allclose(ours_scores, ref_scores, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("family", ["sam", "sam2"])
@pytest.mark.parametrize("size", SIZES)
def test_one_point_gives_the_best_of_the_reference_multimask_outputs(
    host, services, tiny_model, family, size
):
    folder, image = tiny_model(family), photo(*size)
    x, y = size[1] * 0.4, size[0] * 0.6
    ref_masks, ref_scores = REFERENCES[family](folder, image, points=[[x, y]], labels=[1], multimask=True)
    best = int(ref_scores[0].argmax())
    got = ours(host, services, folder, image, points=f"{x},{y}")
    assert_same(got.masks, ref_masks[0, best][None], got.scores, ref_scores[0, best][None])


@pytest.mark.parametrize("family", ["sam", "sam2"])
@pytest.mark.parametrize("size", SIZES)
def test_positive_and_negative_points_equal_the_reference(host, services, tiny_model, family, size):
    folder, image = tiny_model(family), photo(*size, seed=1)
    h, w = size
    pos, neg = [[w * 0.3, h * 0.3], [w * 0.7, h * 0.5]], [[w * 0.1, h * 0.9]]
    ref_masks, ref_scores = REFERENCES[family](
        folder, image, points=pos + neg, labels=[1, 1, 0], multimask=False
    )
    got = ours(
        host,
        services,
        folder,
        image,
        points="; ".join(f"{x},{y}" for x, y in pos),
        negative="; ".join(f"{x},{y}" for x, y in neg),
    )
    assert_same(got.masks, ref_masks[0], got.scores, ref_scores[0])


@pytest.mark.parametrize("family", ["sam", "sam2"])
@pytest.mark.parametrize("size", SIZES)
def test_several_boxes_equal_the_reference_batch(host, services, tiny_model, family, size):
    folder, image = tiny_model(family), photo(*size, seed=2)
    h, w = size
    boxes = [
        [w * 0.1, h * 0.1, w * 0.6, h * 0.7],
        [w * 0.4, h * 0.2, w * 0.95, h * 0.9],
        [2.0, 3.0, 30.0, 40.0],
    ]
    ref_masks, ref_scores = REFERENCES[family](folder, image, boxes=boxes, multimask=False)
    got = ours(host, services, folder, image, boxes="; ".join(",".join(f"{v}" for v in b) for b in boxes))
    assert_same(got.masks, ref_masks[:, 0], got.scores, ref_scores[:, 0])


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_points_inside_a_box_equal_the_reference(host, services, tiny_model, family):
    folder, image = tiny_model(family), photo(90, 150, seed=3)
    box = [20.0, 10.0, 120.0, 80.0]
    ref_masks, ref_scores = REFERENCES[family](
        folder, image, points=[[60.0, 40.0], [30.0, 70.0]], labels=[1, 0], boxes=[box], multimask=False
    )
    got = ours(host, services, folder, image, points="60,40", negative="30,70", boxes="20,10,120,80")
    assert_same(got.masks, ref_masks[0], got.scores, ref_scores[0])


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_refine_equals_the_reference_and_keeps_the_labels(host, services, tiny_model, family):
    folder, image = tiny_model(family), photo(140, 76, seed=4)
    boxes = [[5.0, 5.0, 60.0, 70.0], [10.0, 50.0, 70.0, 130.0]]
    ref_masks, ref_scores = REFERENCES[family](folder, image, boxes=boxes, multimask=False)
    detections = (
        '{"type": "detections", "boxes_xyxy": [[5, 5, 60, 70], [10, 50, 70, 130]], "labels": ["cat", "dog"]}'
    )
    prediction = run_tool(
        host.tools["sam.refine"],
        [image],
        {"detections": detections},
        model=str(folder),
        device="cpu",
        precision="fp32",
        services=services,
    )
    (got,) = prediction.results
    assert got.labels == ("cat", "dog")
    assert_same(got.masks, ref_masks[:, 0], got.scores, ref_scores[:, 0])
