"""DINOv2 feature extraction: equal to a direct transformers forward, exact geometry, one forward per image."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from vfmstudio_dinov2 import _features

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.context import RunContext
from vfmstudio.core.image import LoadedImage
from vfmstudio.core.results import LayerMaps
from vfmstudio.execution import Services, ToolError, prepare_tool, run_tool
from vfmstudio.testing.tiny_models import TINY_DINOV2, TINY_NUM_REGISTERS


def make_image(height: int, width: int, seed: int = 0) -> LoadedImage:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return LoadedImage(
        path=None, pixels=pixels, id=f"img-{height}x{width}-{seed}", width=width, height=height, format="PNG"
    )


@pytest.fixture(scope="module")
def host():
    return PluginHost(builtins=("vfmstudio_dinov2",), entry_points=False).load()


@pytest.fixture
def services():
    return Services.create()


@pytest.mark.parametrize(
    ("name", "model_cls", "registers"),
    [
        ("dinov2", transformers.Dinov2Model, 0),
        ("dinov2-registers", transformers.Dinov2WithRegistersModel, TINY_NUM_REGISTERS),
    ],
)
def test_features_equal_a_direct_forward(tiny_model, services, name, model_cls, registers):
    path = tiny_model(name)
    image = make_image(150, 100)  # portrait: a non-square grid at every resolution
    ctx = RunContext(
        tool_id="test", model_ref=str(path), device="cpu", models=services.models, features=services.features
    )
    extractor = _features.extractor_for(ctx)
    feats = _features.features_for(ctx, extractor, image, resolution=70)
    geometry = feats.geometry
    assert geometry.grid == (7, 5) and geometry.resized == (105, 70)

    reference = model_cls.from_pretrained(path).eval()
    pixel_values = _features.preprocess(image.pixels, geometry)
    with torch.no_grad():
        out = reference(pixel_values=pixel_values, output_hidden_states=True)
    assert len(out.hidden_states) == TINY_DINOV2["num_hidden_layers"] + 1
    patches = out.last_hidden_state[0, 1 + registers :]
    norms = torch.stack([h[0, 1 + registers :].norm(dim=-1) for h in out.hidden_states]).reshape(-1, 7, 5)
    assert np.abs(feats.tokens - patches.numpy()).max() <= 1e-5
    assert np.abs(feats.cls - out.last_hidden_state[0, 0].numpy()).max() <= 1e-5
    assert np.abs(feats.layer_norms - norms.numpy()).max() <= 1e-5
    assert feats.tokens.shape == (35, TINY_DINOV2["hidden_size"])
    assert (
        feats.layer_names[0] == "embeddings"
        and len(feats.layer_names) == TINY_DINOV2["num_hidden_layers"] + 1
    )


def test_preprocessing_matches_a_pil_bicubic_resize_and_imagenet_normalisation():
    image = make_image(200, 300, seed=3)
    smooth = np.asarray(
        Image.fromarray(image.pixels).resize((150, 100), Image.BILINEAR)
    )  # natural-ish content
    image = LoadedImage(path=None, pixels=smooth, id="smooth", width=150, height=100, format="PNG")
    geometry = _features.plan_geometry(100, 150, 56, 14)
    ours = _features.preprocess(image.pixels, geometry)[0].numpy()
    rh, rw = geometry.resized
    top, left, ch, cw = geometry.crop
    pil = np.asarray(Image.fromarray(image.pixels).resize((rw, rh), Image.BICUBIC), dtype=np.float32) / 255.0
    pil = pil[top : top + ch, left : left + cw]
    reference = ((pil - np.array(_features.IMAGENET_MEAN)) / np.array(_features.IMAGENET_STD)).transpose(
        2, 0, 1
    )
    assert ours.shape == reference.shape == (3, 56, 84)
    # Same filter, both rounding to whole grey levels: within a grey level or two.
    assert np.abs(ours - reference).mean() < 0.01
    assert np.abs(ours - reference).max() < 0.05


def test_geometry_maps_the_patch_grid_back_to_original_pixels_exactly():
    g = _features.plan_geometry(300, 470, 448, 14)
    assert g.resized == (448, 702)  # 470 * 448 / 300 = 701.9
    assert g.crop == (0, 1, 448, 700) and g.grid == (32, 50)  # 702 = 50 * 14 + 2: one column off each side
    x0, y0, x1, y1 = g.extent
    sx = 702 / 470
    assert (x0, y0) == pytest.approx((1 / sx, 0.0)) and (x1, y1) == pytest.approx((701 / sx, 300.0))
    centres = g.patch_centres()
    assert centres.shape == (32 * 50, 2)
    # Patch (row 3, col 5) is resized pixels [1 + 70, 1 + 84) x [42, 56): its centre, scaled back.
    assert centres[3 * 50 + 5] == pytest.approx(((1 + 77) / sx, 49 * 300 / 448))
    assert g.patch_index(*centres[3 * 50 + 5]) == 3 * 50 + 5
    assert g.patch_index(-5, 1000) == 31 * 50  # off the grid: clamped to the nearest edge patch
    with pytest.raises(ValueError, match="resolution"):
        _features.plan_geometry(300, 451, 10, 14)


@pytest.fixture
def count_forwards():
    calls = {"n": 0, "batch": []}

    def count(module, args, output):
        if type(module).__name__ in ("Dinov2Model", "Dinov2WithRegistersModel"):
            calls["n"] += 1
            calls["batch"].append(int(output.last_hidden_state.shape[0]))

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    yield calls
    handle.remove()


def test_each_image_goes_through_the_model_once_whatever_the_interaction(
    host, tiny_model, services, tmp_path, count_forwards
):
    calls = count_forwards
    model = str(tiny_model("dinov2"))
    a, b, c = make_image(120, 160, 1), make_image(140, 140, 2), make_image(100, 180, 3)

    def run(tool_id, images, **params):
        return run_tool(
            host.tool(tool_id),
            images,
            {"resolution": 56, **params},
            model=model,
            device="cpu",
            services=services,
        )

    run("dinov2.pca", [a])
    assert calls["n"] == 1
    for threshold in (0.2, 0.5, 0.8, "auto"):
        run("dinov2.pca", [a], threshold=threshold, sign="flip", upsample="bicubic", cleanup=False)
    run("dinov2.joint-pca", [a, b])
    assert calls["n"] == 2  # only b is new
    run("dinov2.similarity", [a, b], points=((10, 10),))
    run("dinov2.similarity", [b, a], points=((50, 60), (5, 5)))
    run("dinov2.matches", [a, b], k=3)
    run("dinov2.matches", [b, a], foreground=False)
    for layer in (0, 1, -1):
        run("dinov2.norms", [a], layer=layer, k=2.0)
    mask = np.zeros((a.height, a.width), np.uint8)
    mask[30:90, 40:120] = 255
    Image.fromarray(mask).save(tmp_path / "a.png")
    run("dinov2.propagate", [a, b], masks=str(tmp_path / "a.png"), floor=-1.0)
    assert calls["n"] == 2
    run("dinov2.joint-pca", [a, b, c])
    assert calls["n"] == 3
    run("dinov2.pca", [a], resolution=70)  # a new resolution is a new input
    assert calls["n"] == 4


def test_prepare_batches_images_of_one_input_size_and_the_runs_read_the_cache(
    host, tiny_model, count_forwards
):
    model = str(tiny_model("dinov2-registers"))
    images = [
        make_image(120, 160, 1),
        make_image(120, 160, 2),
        make_image(100, 180, 3),
        make_image(121, 161, 4),
    ]
    services = Services.create()
    tool = host.tool("dinov2.pca")
    assert prepare_tool(tool, images, {"resolution": 56}, model=model, device="cpu", services=services)
    # 120x160, 121x161 -> 56x75 -> 4x5 patches; 100x180 -> 56x101 -> 4x7 patches: two forward passes.
    assert sorted(count_forwards["batch"]) == [1, 3]
    for image in images:
        run_tool(tool, [image], {"resolution": 56}, model=model, device="cpu", services=services)
    assert count_forwards["n"] == 2
    assert prepare_tool(tool, images, {"resolution": 56}, model=model, device="cpu", services=services)
    assert count_forwards["n"] == 2  # everything cached: prepare does nothing

    alone = Services.create()
    ctx = RunContext(tool_id="t", model_ref=model, device="cpu", models=alone.models, features=alone.features)
    batched = RunContext(
        tool_id="t", model_ref=model, device="cpu", models=services.models, features=services.features
    )
    for image in images:
        one = _features.features_for(ctx, _features.extractor_for(ctx), image, 56)
        many = _features.features_for(batched, _features.extractor_for(batched), image, 56)
        assert np.abs(one.tokens - many.tokens).max() <= 1e-5
        assert np.abs(one.layer_norms - many.layer_norms).max() <= 1e-4


@pytest.mark.parametrize("name", ["dinov2", "dinov2-registers"])
def test_norms_has_one_map_per_hidden_state(host, tiny_model, services, name):
    image = make_image(100, 130)
    pred = run_tool(
        host.tool("dinov2.norms"),
        [image],
        {"resolution": 56},
        model=str(tiny_model(name)),
        device="cpu",
        services=services,
    )
    (maps,) = pred.of_type(LayerMaps)
    assert maps.values.shape == (TINY_DINOV2["num_hidden_layers"] + 1, 4, 5)
    assert maps.names == ("embeddings", "block 1", "block 2", "block 3")
    assert (maps.values > 0).all()
    assert pred.device == "cpu" and pred.precision == "fp32"


def test_a_model_that_is_not_dinov2_is_refused_with_its_type(host, tmp_path, services):
    folder = tmp_path / "clip-ish"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "clip"}')
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ToolError, match="'clip' model, not DINOv2") as info:
        run_tool(
            host.tool("dinov2.pca"),
            [make_image(60, 60)],
            {},
            model=str(folder),
            device="cpu",
            services=services,
        )
    assert info.value.user_error


def test_registering_the_tools_does_not_import_torch():
    import subprocess

    code = (
        "import sys; from vfmstudio._plugin_host import PluginHost; "
        "h = PluginHost(builtins=('vfmstudio_dinov2',), entry_points=False).load(); "
        "print(sorted(h.tools)); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == str(
        sorted(
            f"dino.{n}" for n in ("pca", "joint-pca", "similarity", "matches", "norms", "propagate", "embed")
        )
    )
    assert out[1] == "False"
