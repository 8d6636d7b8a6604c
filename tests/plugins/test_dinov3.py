"""DINOv3 in the dino tools: equal to a direct DINOv3ViTModel forward, patch 16 from the config, registers apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from vfmstudio_dinov2 import _features

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.context import RunContext
from vfmstudio.core.image import LoadedImage
from vfmstudio.core.results import Correspondences, LayerMaps, Masks, Table
from vfmstudio.execution import Services, prepare_tool, run_tool
from vfmstudio.testing.tiny_models import TINY_DINOV3, TINY_NUM_REGISTERS

LAYERS = TINY_DINOV3["num_hidden_layers"] + 1  # embeddings + one per block


def make_image(height: int, width: int, seed: int = 0) -> LoadedImage:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return LoadedImage(
        path=None, pixels=pixels, id=f"img-{height}x{width}-{seed}", width=width, height=height, format="PNG"
    )


@pytest.fixture(scope="module")
def host():
    return PluginHost(builtins=("vfmstudio_dinov2",), entry_points=False).load()


@pytest.fixture(scope="module")
def reference(tiny_model):
    return transformers.DINOv3ViTModel.from_pretrained(tiny_model("dinov3")).eval()


def context(path, services: Services) -> RunContext:
    return RunContext(
        tool_id="test", model_ref=str(path), device="cpu", models=services.models, features=services.features
    )


@pytest.mark.parametrize(
    ("size", "resolution", "grid"),
    [
        ((96, 96), 64, (4, 4)),  # square
        ((150, 100), 80, (7, 5)),  # portrait: 120x80 resized, cropped to 112x80
        ((100, 170), 48, (3, 5)),  # landscape: 48x82 resized, cropped to 48x80
    ],
)
def test_features_equal_a_direct_dinov3_forward(tiny_model, reference, size, resolution, grid):
    services = Services.create()
    image = make_image(*size)
    ctx = context(tiny_model("dinov3"), services)
    extractor = _features.extractor_for(ctx)
    assert extractor.patch == TINY_DINOV3["patch_size"] == 16  # from config.json, not a constant
    feats = _features.features_for(ctx, extractor, image, resolution)
    assert feats.grid == grid
    top, left, ch, cw = feats.geometry.crop
    assert ch % 16 == 0 and cw % 16 == 0

    pixel_values = _features.preprocess(image.pixels, feats.geometry)
    with torch.no_grad():
        out = reference(pixel_values=pixel_values, output_hidden_states=True)
    skip = 1 + TINY_NUM_REGISTERS
    assert out.last_hidden_state.shape[1] == skip + grid[0] * grid[1]
    assert len(out.hidden_states) == LAYERS
    norms = torch.stack([h[0].norm(dim=-1) for h in out.hidden_states])  # (layers, tokens)
    assert np.abs(feats.tokens - out.last_hidden_state[0, skip:].numpy()).max() <= 1e-5
    assert np.abs(feats.cls - out.pooler_output[0].numpy()).max() <= 1e-5
    assert np.abs(feats.layer_norms - norms[:, skip:].reshape(LAYERS, *grid).numpy()).max() <= 1e-5
    assert feats.special_norms.shape == (LAYERS, skip)
    assert np.abs(feats.special_norms - norms[:, :skip].numpy()).max() <= 1e-5


def test_norms_show_register_tokens_apart_from_patch_tokens(host, tiny_model, reference):
    image = make_image(100, 130)
    pred = run_tool(
        host.tool("dino.norms"),
        [image],
        {"resolution": 64},
        model=str(tiny_model("dinov3")),
        device="cpu",
        services=Services.create(),
    )
    (maps,) = pred.of_type(LayerMaps)
    assert maps.values.shape == (LAYERS, 4, 5)  # 64x83 -> 64x80: 4x5 patches of 16 px, no register in it
    assert maps.names == ("embeddings", "block 1", "block 2", "block 3")
    patch_table, special = pred.of_type(Table)
    assert patch_table.columns[0] == "layer"
    assert special.columns == ("layer", "CLS", "register 1", "register 2", "register 3", "register 4")
    assert special.title == "CLS and register token norms"
    assert special.column("layer") == list(maps.names)

    geometry = _features.plan_geometry(100, 130, 64, 16)
    with torch.no_grad():
        out = reference(pixel_values=_features.preprocess(image.pixels, geometry), output_hidden_states=True)
    for i, h in enumerate(out.hidden_states):
        expected = h[0, : 1 + TINY_NUM_REGISTERS].norm(dim=-1).numpy()
        assert np.abs(np.array(special.rows[i][1:]) - expected).max() <= 1e-3  # the table rounds to 4 places
        assert (
            np.abs(maps.values[i].ravel() - h[0, 1 + TINY_NUM_REGISTERS :].norm(dim=-1).numpy()).max() <= 1e-5
        )


def test_every_dino_tool_runs_on_dinov3_and_prepare_batches_by_16px_grid(host, tiny_model, tmp_path):
    from PIL import Image

    model = str(tiny_model("dinov3"))
    services = Services.create()
    a, b, c = make_image(96, 128, 1), make_image(96, 128, 2), make_image(90, 150, 3)
    calls = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, args, out: (
            calls.append(out.last_hidden_state.shape[0]) if type(m).__name__ == "DINOv3ViTModel" else None
        )
    )
    try:
        # 96x128 -> 64x85 -> 4x5 patches (both a and b); 90x150 -> 64x107 -> 4x6: two batches.
        assert prepare_tool(
            host.tool("dino.pca"), [a, b, c], {"resolution": 64}, model=model, device="cpu", services=services
        )
        assert sorted(calls) == [1, 2]

        def run(tool_id, images, **params):
            return run_tool(
                host.tool(tool_id),
                images,
                {"resolution": 64, **params},
                model=model,
                device="cpu",
                services=services,
            )

        run("dino.pca", [a])
        run("dino.joint-pca", [a, b, c])
        run("dino.similarity", [a, b], points=((10, 10),))
        (m,) = run("dino.matches", [a, c], foreground=False, k=3).of_type(Correspondences)
        assert 0 < len(m) <= 3
        mask = np.zeros((a.height, a.width), np.uint8)
        mask[20:70, 30:100] = 255
        Image.fromarray(mask).save(tmp_path / "a.png")
        (masks,) = run("dino.propagate", [a, b], masks=str(tmp_path / "a.png"), floor=-1.0).of_type(Masks)
        assert masks.image_id == b.id
        assert len(calls) == 2  # every tool read the features prepare() cached
    finally:
        handle.remove()


# ---------------------------------------------------------------------------------------------- planted, 16 px

P, ROWS, COLS, DIM = 16, 8, 12, 24


class Planted16(_features.Extractor):
    """Planted tokens on a 16-pixel grid: the tools' geometry must follow the descriptor's patch size."""

    patch = P

    def __init__(self, name: str, tokens: dict[int, np.ndarray]):
        self.cache_key = ("test", name)
        self.tokens = tokens

    def encode(self, pixel_values: torch.Tensor) -> _features.Encoded:
        greys = [
            round(float(x[0, 0, 0]) * _features.IMAGENET_STD[0] * 255 + _features.IMAGENET_MEAN[0] * 255)
            for x in pixel_values
        ]
        tokens = torch.stack([torch.from_numpy(self.tokens[g]) for g in greys])
        norms = torch.linalg.vector_norm(tokens, dim=2).unsqueeze(1)
        return _features.Encoded(tokens=tokens, cls=tokens.mean(1), layer_norms=norms, layer_names=("last",))


@pytest.fixture
def plant(monkeypatch):
    def register(tokens: dict[int, np.ndarray]) -> str:
        ref = f"test:planted16-{id(tokens)}"
        extractor = Planted16(ref, tokens)
        monkeypatch.setitem(_features.EXTRACTORS, ref, lambda ctx, r: extractor)
        return ref

    return register


def blank(value: int) -> LoadedImage:
    pixels = np.full((ROWS * P, COLS * P, 3), value, np.uint8)
    return LoadedImage(
        path=None, pixels=pixels, id=f"blank16-{value}", width=COLS * P, height=ROWS * P, format="PNG"
    )


def patch_of(xy) -> int:
    return int(xy[1] // P) * COLS + int(xy[0] // P)


@pytest.mark.parametrize("tool_id", ["dino.pca", "dinov2.pca"])  # the former id runs the same tool
def test_pca_recovers_a_planted_foreground_exactly_on_a_16px_grid(host, plant, tool_id):
    fg = np.zeros((ROWS, COLS), bool)
    fg[2:6, 3:9] = True
    rng = np.random.default_rng(0)
    tokens = rng.normal(0, 0.3, size=(ROWS * COLS, DIM)).astype(np.float32)
    tokens[fg.ravel(), 0] += 3.0
    pred = run_tool(
        host.tool(tool_id),
        [blank(0)],
        {"resolution": ROWS * P, "upsample": "nearest"},
        model=plant({0: tokens}),
        services=Services.create(),
    )
    assert pred.tool == "dino.pca"
    (masks,) = pred.of_type(Masks)
    assert np.array_equal(masks.masks[0], np.kron(fg, np.ones((P, P), bool)))


def test_matches_recover_a_known_patch_permutation_on_a_16px_grid(host, plant):
    rng = np.random.default_rng(7)
    a = rng.normal(size=(ROWS * COLS, DIM)).astype(np.float32)
    perm = rng.permutation(ROWS * COLS)  # patch j of B is patch perm[j] of A
    model = plant({0: a, 1: a[perm]})
    pred = run_tool(
        host.tool("dino.matches"),
        [blank(0), blank(1)],
        {"resolution": ROWS * P, "foreground": False, "k": 1000},
        model=model,
        services=Services.create(),
    )
    (every,) = pred.of_type(Correspondences)
    assert len(every) == ROWS * COLS
    assert all(perm[patch_of(t)] == patch_of(s) for s, t in zip(every.source_xy, every.target_xy))
