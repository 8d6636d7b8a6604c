"""Issue 21: large images decoded at the reduced size a tool needs (ADR 0160).

A tool that resizes its input to a few hundred pixels does not need a 12000x9000 JPEG decoded in
full. ``load_image(min_side=)`` decodes JPEG at 1/2..1/8 scale (``Image.draft``) and reduces other
formats by whole blocks (``Image.reduce``), keeping the short side >= ``min_side``; batch runs pass
the side a tool declares (``ToolSpec.decode_side``), and only tools whose results carry no pixel
coordinates may declare one, so boxes and masks are always in full-image pixels.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core.image import ImageLoadError, load_image
from vfmstudio.core.results import Classification, Masks
from vfmstudio.core.tools import InputKind, Param, ParamType, ToolSpec

W, H = 1600, 1200


def _photo(seed=0) -> np.ndarray:
    """Smooth content (as photos are), so a reduced decode is comparable to a reduced full one."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (12, 16, 3), np.uint8)
    return np.asarray(Image.fromarray(small).resize((W, H), Image.Resampling.BILINEAR))


@pytest.fixture
def jpeg(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(_photo()).save(path, quality=95)
    return path


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(_photo(1)).save(path)
    return path


# ------------------------------------------------------------------ the loader


def test_jpeg_is_decoded_at_the_largest_scale_that_keeps_the_side(jpeg):
    full = load_image(jpeg)
    assert "reduced" not in full.metadata and full.full_size == (W, H)
    for side, factor in ((224, 4), (300, 4), (301, 2), (600, 2), (601, 1), (1200, 1)):
        img = load_image(jpeg, min_side=side)
        assert min(img.width, img.height) >= side
        if factor == 1:
            assert (img.width, img.height) == (W, H) and "reduced" not in img.metadata
            continue
        assert (img.width, img.height) == (W // factor, H // factor)
        assert img.full_size == (W, H) and img.id == full.id  # same file, same content id
        reduced = img.metadata["reduced"]
        assert reduced["factor"] == factor and reduced["min_side"] == side
        assert reduced["by"] == "DCT scaling while decoding"
        # The DCT-scaled decode matches the full decode averaged over the same blocks.
        reference = np.asarray(Image.fromarray(full.pixels).reduce(factor)).astype(int)
        assert np.abs(img.pixels.astype(int) - reference).mean() < 2.0


def test_other_formats_are_reduced_by_block_averages_exactly_as_pillow_does(png):
    img = load_image(png, min_side=224)
    factor = H // 224  # 5: the largest whole factor keeping the short side >= 224
    assert img.metadata["reduced"]["factor"] == factor
    assert img.metadata["reduced"]["by"] == "block averaging"
    with Image.open(png) as im:
        reference = np.asarray(im.convert("RGB").reduce(factor))
    assert img.pixels.shape == reference.shape == (-(-H // factor), -(-W // factor), 3)
    np.testing.assert_array_equal(img.pixels, reference)
    assert img.full_size == (W, H)


def test_the_full_size_is_upright_after_exif_rotation(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(_photo()).save(path, quality=90, exif=exif)
    img = load_image(path, min_side=224)
    assert img.metadata["orientation_applied"]
    assert (img.width, img.height) == (H // 4, W // 4)
    assert img.full_size == (H, W)


def test_modes_pillow_cannot_reduce_are_decoded_in_full(tmp_path):
    path = tmp_path / "grey16.png"
    values = np.linspace(0, 65535, W * H, dtype=np.uint16).reshape(H, W)
    Image.fromarray(values).save(path)
    img = load_image(path, min_side=224)
    assert (img.width, img.height) == (W, H) and "reduced" not in img.metadata
    assert img.pixels[-1, -1, 0] == 255


def test_limits_still_judge_the_full_size(jpeg):
    # The reduced image would be 400x300 (120000 pixels): the file is still refused by its header.
    with pytest.raises(ImageLoadError, match=f"image of {W}x{H} pixels exceeds the limit of 1000000"):
        load_image(jpeg, min_side=224, max_pixels=1_000_000)


# ------------------------------------------------------------------ the declaration


def _spec(**kw) -> ToolSpec:
    base = dict(id="test.tool", title="t", run="reduced_decode_tools:classify", returns=("classification",))
    return ToolSpec(**{**base, **kw})


def test_only_coordinate_free_tools_may_declare_a_decode_side():
    with pytest.raises(
        ValueError, match="decode_side is only for tools whose results carry no pixel coordinates"
    ):
        _spec(returns=("masks",), decode_side=224)
    with pytest.raises(ValueError, match="carry no pixel coordinates"):
        _spec(returns=("text", "detections"), decode_side=224)
    with pytest.raises(ValueError, match="carry no pixel coordinates"):
        _spec(returns=(), decode_side=224)  # undeclared results might be anything
    with pytest.raises(ValueError, match="must name one of its int parameters"):
        _spec(decode_side="resolution", params=(Param("resolution", ParamType.STR, "224"),))
    with pytest.raises(ValueError, match="positive int"):
        _spec(decode_side=0)


def test_the_side_comes_from_a_parameter_and_auto_means_full_size():
    spec = _spec(
        decode_side="resolution",
        params=(Param("resolution", ParamType.INT, 224, special=("auto",)),),
    )
    assert spec.input_side(spec.resolve_params()) == 224
    assert spec.input_side(spec.resolve_params({"resolution": 448})) == 448
    assert spec.input_side(spec.resolve_params({"resolution": "auto"})) is None
    assert _spec(decode_side=512).input_side({}) == 512
    assert _spec().input_side({}) is None
    assert spec.describe()["decode_side"] == "resolution"  # `vfmstudio tools --json` shows it


def test_built_in_global_tools_declare_a_side_and_dense_ones_do_not():
    from vfmstudio_clip import TOOLS as CLIP_TOOLS
    from vfmstudio_dinov2 import TOOLS as DINO_TOOLS
    from vfmstudio_paligemma import TOOLS as PALI_TOOLS

    tools = {t.id: t for t in (*CLIP_TOOLS, *DINO_TOOLS, *PALI_TOOLS)}
    assert tools["dino.embed"].input_side({"resolution": 448}) == 448
    assert tools["clip.classify"].decode_side == tools["clip.embed"].decode_side == 1024
    assert tools["paligemma.caption"].decode_side == 896
    for tool_id in ("paligemma.detect", "paligemma.segment", "clip.segment", "dino.pca"):
        assert tools[tool_id].decode_side is None, tool_id


# ------------------------------------------------------------------ batch runs

SEEN: list[tuple[int, int]] = []


def classify(ctx, images, params):
    SEEN.extend((im.width, im.height) for im in images)
    return [Classification(labels=("a", "b"), scores=np.array([0.75, 0.25]), image_id=images[0].id)]


def segment(ctx, images, params):
    im = images[0]
    SEEN.append((im.width, im.height))
    mask = np.zeros((1, im.height, im.width), bool)
    mask[0, im.height // 2 :, : im.width // 4] = True  # bottom-left quarter of the width
    return [Masks(masks=mask, labels=("thing",), image_id=im.id)]


@pytest.fixture
def tools_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "reduced_decode_tools", sys.modules[__name__])
    monkeypatch.setenv("VFMSTUDIO_PLUGIN_ISOLATION", "never")  # the functions live in this test module
    SEEN.clear()


def _batch(tmp_path, folder, tool, params=None, **spec_kw):
    from vfmstudio.engines.job import plan_run
    from vfmstudio.engines.local import run_local
    from vfmstudio.engines.outputs import iter_predictions
    from vfmstudio.engines.worker import RunSpec

    spec = RunSpec(
        tool=tool, params=tool.resolve_params(params), model=None, out=str(tmp_path / "out"),
        plugin_readers=False, **spec_kw,
    )  # fmt: skip
    progress = run_local(plan_run(spec, str(folder), batch_size=2))
    assert (progress.done, progress.failed) == (3, 0)
    return [prediction for _, prediction in iter_predictions(spec.out)]


def _folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(_photo(i)).save(folder / f"p{i}.jpg", quality=90)
    return folder


def test_a_batch_decodes_at_the_declared_side_and_says_so(tmp_path, tools_module):
    tool = _spec(
        decode_side="resolution", params=(Param("resolution", ParamType.INT, 224),), inputs=InputKind.IMAGE
    )
    predictions = _batch(tmp_path, _folder(tmp_path), tool)
    assert SEEN == [(W // 4, H // 4)] * 3
    for prediction in predictions:
        (note,) = prediction.notes
        assert f"decoded at 1/4 size ({W // 4}x{H // 4} of {W}x{H}, DCT scaling while decoding)" in note
        assert "short side of 224 px" in note


def test_a_batch_can_be_told_to_decode_in_full(tmp_path, tools_module):
    tool = _spec(decode_side=224)
    predictions = _batch(tmp_path, _folder(tmp_path), tool, reduced_decode=False)
    assert SEEN == [(W, H)] * 3 and all(p.notes == () for p in predictions)


def test_a_tool_returning_masks_sees_the_full_image_and_its_masks_are_in_full_pixels(tmp_path, tools_module):
    tool = _spec(run="reduced_decode_tools:segment", returns=("masks",))  # may not declare a side
    predictions = _batch(tmp_path, _folder(tmp_path), tool)
    assert SEEN == [(W, H)] * 3
    for prediction in predictions:
        (masks,) = prediction.of_type(Masks)
        assert masks.masks.shape == (1, H, W) and prediction.notes == ()
        ys, xs = np.nonzero(masks.masks[0])
        assert (xs.max(), ys.min()) == (W // 4 - 1, H // 2)


def test_dino_embed_from_a_reduced_decode_matches_the_full_one(tmp_path, tiny_model, jpeg, png):
    # The model input is the same 224-px resize either way; only the decoding route differs.
    from vfmstudio_dinov2 import TOOLS as DINO_TOOLS

    from vfmstudio.core.results import Embedding
    from vfmstudio.execution import Services, run_tool

    tool = next(t for t in DINO_TOOLS if t.id == "dino.embed")
    params = tool.resolve_params({"resolution": 224})
    model = str(tiny_model("dinov2"))
    vectors = []
    for image in (load_image(jpeg), load_image(jpeg, min_side=tool.input_side(params)), load_image(png)):
        services = Services.create()  # each decode its own forward pass, not the cached one
        prediction = run_tool(tool, [image], params, model=model, device="cpu", services=services)
        vectors.append(prediction.of_type(Embedding)[0].vector)
    full, reduced, other_photo = vectors
    assert load_image(jpeg, min_side=224).metadata["reduced"]["factor"] == 4
    assert float(np.dot(full, reduced)) > 0.9999  # unit vectors
    assert float(np.dot(full, other_photo)) < 0.9999  # the bound tells another photo apart (~0.994)


def test_features_of_reduced_images_never_reach_a_full_size_run(tmp_path, tools_module):
    # Same content id, other pixels: a caller's shared feature cache must not mix the two.
    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.engines.worker import BatchWorker, RunSpec
    from vfmstudio.execution import Services

    shared = Services(models=ByteLRUCache(1 << 20), features=ByteLRUCache(1 << 20))
    reduced = RunSpec(tool=_spec(decode_side=224), params={}, model=None, out=str(tmp_path / "a"))
    worker = BatchWorker(reduced, services=shared)
    assert worker.services.models is shared.models and worker.services.features is not shared.features
    full = RunSpec(tool=_spec(), params={}, model=None, out=str(tmp_path / "b"))
    assert BatchWorker(full, services=shared).services is shared


def test_run_decodes_reduced_without_overlays_and_in_full_with_them(
    tmp_path, tiny_model, jpeg, capsys, monkeypatch
):
    import json

    from vfmstudio.cli import main

    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    model = str(tiny_model("dinov2"))
    args = ["run", "dino.embed", str(jpeg), "--model", model, "--device", "cpu", "--param", "resolution=224"]
    assert main([*args, "--json"]) == 0
    (note,) = json.loads(capsys.readouterr().out)["notes"]
    assert note.startswith(f"big.jpg: decoded at 1/4 size ({W // 4}x{H // 4} of {W}x{H}")
    # With --out the overlays are drawn on the image: it is decoded in full, and nothing is noted.
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert "notes" not in json.loads((tmp_path / "out" / "prediction.json").read_text())
