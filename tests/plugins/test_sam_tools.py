"""sam tools on tiny checkpoints: the embedding cache (counted encoder calls), prepare, refine batching,
segment-everything, and bad prompts refused with one line."""

from __future__ import annotations

import numpy as np
import pytest
import transformers
from PIL import Image
from vfmstudio_sam import automatic

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.image import LoadedImage
from vfmstudio.execution import ToolError, prepare_tool, run_tool

ENCODERS = {
    "sam": transformers.models.sam.modeling_sam.SamVisionEncoder,
    "sam2": transformers.models.sam2.modeling_sam2.Sam2VisionModel,
}
DECODERS = {
    "sam": transformers.models.sam.modeling_sam.SamMaskDecoder,
    "sam2": transformers.models.sam2.modeling_sam2.Sam2MaskDecoder,
}


@pytest.fixture(scope="module")
def host():
    return PluginHost(builtins=("vfmstudio_sam",), entry_points=False).load()


def photo(height: int = 90, width: int = 150, seed: int = 0) -> LoadedImage:
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


@pytest.fixture
def calls(monkeypatch):
    """Counts forward calls of the image encoders and mask decoders of both families."""
    counts = {"encoder": 0, "decoder": 0}

    def counting(cls, key):
        original = cls.forward

        def forward(self, *args, **kwargs):
            counts[key] += 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "forward", forward)

    for cls in ENCODERS.values():
        counting(cls, "encoder")
    for cls in DECODERS.values():
        counting(cls, "decoder")
    return counts


def run(host, services, tool, image, folder, **params):
    return run_tool(
        host.tools[tool],
        [image],
        params,
        model=str(folder),
        device="cpu",
        precision="fp32",
        services=services,
    )


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_second_click_on_the_same_image_runs_no_image_encoder(host, services, tiny_model, calls, family):
    folder, image = tiny_model(family), photo()
    first = run(host, services, "sam.segment", image, folder, points="40,30")
    assert calls == {"encoder": 1, "decoder": 1}
    second = run(host, services, "sam.segment", image, folder, points="40,30", negative="100,60")
    run(host, services, "sam.refine", image, folder, boxes="10,10,80,60")
    assert calls == {"encoder": 1, "decoder": 3}  # clicks only decode
    assert not (
        first.results[0].masks == second.results[0].masks
    ).all()  # the negative point changed the mask
    run(host, services, "sam.segment", photo(seed=1), folder, points="40,30")
    assert calls["encoder"] == 2  # another image is encoded once


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_prepare_fills_the_cache_the_clicks_read(host, services, tiny_model, calls, family):
    folder, images = tiny_model(family), [photo(seed=s) for s in range(3)]
    assert prepare_tool(
        host.tools["sam.segment"],
        images,
        {},
        model=str(folder),
        device="cpu",
        precision="fp32",
        services=services,
    )
    assert calls["encoder"] == 3
    warm = [run(host, services, "sam.segment", im, folder, points="20,20").results[0] for im in images]
    assert calls == {"encoder": 3, "decoder": 3}
    services.features = type(services.features)(256 << 20, name="features")  # cold: same masks from scratch
    cold = [run(host, services, "sam.segment", im, folder, points="20,20").results[0] for im in images]
    assert calls["encoder"] == 6
    for a, b in zip(warm, cold):
        assert (a.masks == b.masks).all() and a.scores[0] == b.scores[0]


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_refine_decodes_many_boxes_in_one_call_like_one_at_a_time(host, services, tiny_model, calls, family):
    folder, image = tiny_model(family), photo(seed=2)
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(0, 100, 12), rng.uniform(0, 50, 12)
    boxes = [(a, b, a + rng.uniform(10, 50), b + rng.uniform(10, 40)) for a, b in zip(x0, y0)]
    text = "; ".join(",".join(f"{v:.2f}" for v in b) for b in boxes)
    together = run(host, services, "sam.refine", image, folder, boxes=text, label="tree").results[0]
    assert calls["decoder"] == 1 and len(together) == 12 and set(together.labels) == {"tree"}
    for i, b in enumerate(text.split("; ")):
        alone = run(host, services, "sam.refine", image, folder, boxes=b).results[0]
        assert (alone.masks[0] == together.masks[i]).all()
        np.testing.assert_allclose(alone.scores[0], together.scores[i], atol=1e-5)


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_everything_keeps_stable_confident_masks_without_duplicates(host, services, tiny_model, family):
    folder, image = tiny_model(family), photo(seed=3)
    loose = run(
        host,
        services,
        "sam.everything",
        image,
        folder,
        points_per_side=6,
        pred_iou_thresh=-1.0,
        stability_thresh=0.0,
        nms_thresh=1.0,
    ).results[0]
    assert len(loose) > 1
    assert (np.diff(loose.scores) <= 0).all()  # best first
    strict = run(
        host,
        services,
        "sam.everything",
        image,
        folder,
        points_per_side=6,
        pred_iou_thresh=-1.0,
        stability_thresh=0.0,
        nms="mask",
        nms_thresh=0.5,
    ).results[0]
    assert 0 < len(strict) < len(loose)
    flat = strict.masks.reshape(len(strict), -1)
    for i in range(len(strict)):
        for j in range(i):
            inter, union = (flat[i] & flat[j]).sum(), (flat[i] | flat[j]).sum()
            assert inter / union <= 0.5 + 0.05  # NMS on the decoder's masks; upsampling moves edges slightly
    threshold = float(np.median(loose.scores))
    confident = run(
        host,
        services,
        "sam.everything",
        image,
        folder,
        points_per_side=6,
        pred_iou_thresh=threshold,
        stability_thresh=0.0,
        nms_thresh=1.0,
    ).results[0]
    assert len(confident) < len(loose) and (confident.scores > threshold).all()


def test_stability_score_and_nms_follow_their_definitions():
    logits = np.array([[[3.0, 0.5], [-0.5, -3.0]], [[2.0, 2.0], [-2.0, -2.0]], [[-5.0, -5.0], [-5.0, -5.0]]])
    # mask 0: 1 pixel above +1, 3 above -1 -> 1/3; mask 1: 2 and 2 -> 1; mask 2: nothing above -1 -> 0
    np.testing.assert_allclose(automatic.stability_score(logits), [1 / 3, 1.0, 0.0])
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5]], np.float32)
    scores = np.array([0.5, 0.9, 0.8, 0.7], np.float32)
    # box 1 (best) suppresses box 0 (IoU 0.81); box 3 overlaps box 1 by 36/95 and stays
    assert automatic.nms(scores, 0.7, boxes=boxes).tolist() == [1, 2, 3]
    assert automatic.nms(scores, 0.3, boxes=boxes).tolist() == [1, 2]
    grid = automatic.point_grid(2, 100, 50)
    np.testing.assert_allclose(grid, [[25, 12.5], [75, 12.5], [25, 37.5], [75, 37.5]])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"points": "200,10"}, "parameter 'points': (200, 10) lies outside"),
        ({"points": "10,10", "negative": "10,-1"}, "parameter 'negative': (10, -1) lies outside"),
        ({"boxes": "0,0,151,20"}, "reaches outside"),
        ({}, "got no prompt"),
        ({"negative": "5,5"}, "got only negative points"),
        ({"boxes": "5,5,4,20"}, "is empty"),
        ({"boxes": "1,2,3"}, "a box is 'x0,y0,x1,y1'"),
        ({"points": "5,5", "boxes": "0,0,20,20; 5,5,30,30"}, "at most one box"),
    ],
)
def test_bad_prompts_are_refused_before_any_model_runs(host, services, tiny_model, calls, params, message):
    with pytest.raises(ToolError) as info:
        run(host, services, "sam.segment", photo(), tiny_model("sam"), **params)
    assert info.value.user_error and message in str(info.value) and "\n" not in str(info.value)
    assert calls == {"encoder": 0, "decoder": 0}


def test_text_prompts_on_a_sam1_checkpoint_are_refused_by_name(host, services, tiny_model):
    with pytest.raises(ToolError) as info:
        run(host, services, "sam.text", photo(), tiny_model("sam"), text="cat")
    assert info.value.user_error and "takes no text prompt" in str(info.value) and "SAM 3" in str(info.value)


def test_refine_reads_the_boxes_of_a_prediction_file(host, services, tiny_model, tmp_path):
    import json

    from vfmstudio.core.results import Detections, Prediction

    image = photo()
    detections = Detections(
        boxes_xyxy=np.array([[10, 10, 60, 50], [-3, 0, 160, 95]], np.float32),
        labels=("cat", "sofa"),
        image_id=image.id,
    )
    path = tmp_path / "prediction.json"
    prediction = Prediction(tool="paligemma.detect", model="x", image_ids=(image.id,), results=(detections,))
    path.write_text(json.dumps(prediction.to_json(tmp_path)))
    got = run(
        host,
        services,
        "sam.refine",
        image,
        tiny_model("sam"),
        detections=str(path),
        boxes="1,1,20,20",
        label="cup",
    ).results[0]
    assert got.labels == ("cup", "cat", "sofa")  # overhanging detector boxes are clipped, not refused
    with pytest.raises(ToolError, match="no such file"):
        run(host, services, "sam.refine", image, tiny_model("sam"), detections=str(tmp_path / "missing.json"))
