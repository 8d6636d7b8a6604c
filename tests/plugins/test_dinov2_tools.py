"""DINOv2 tools on planted features: injected descriptors go through the same extraction, cache and geometry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from vfmstudio_dinov2 import _features

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.image import LoadedImage
from vfmstudio.core.results import (
    Correspondences,
    FeatureImage,
    Heatmap,
    Histogram,
    LayerMaps,
    Masks,
    Prediction,
    Table,
)
from vfmstudio.execution import Services, ToolError, run_tool

P = 14
ROWS, COLS = 12, 16  # every synthetic image is 168 x 224 px at resolution 168: no resize, no crop
DIM = 32


@pytest.fixture(scope="module")
def host():
    return PluginHost(builtins=("vfmstudio_dinov2",), entry_points=False).load()


@pytest.fixture
def services():
    return Services.create()


def blank(value: int, height: int = ROWS * P, width: int = COLS * P) -> LoadedImage:
    pixels = np.full((height, width, 3), value, np.uint8)
    return LoadedImage(
        path=None,
        pixels=pixels,
        id=f"blank-{value}-{height}x{width}",
        width=width,
        height=height,
        format="PNG",
    )


class Planted(_features.Extractor):
    """Tokens chosen by the test, one set per image (told apart by their grey level)."""

    def __init__(self, name: str, tokens: dict[int, np.ndarray], norms: dict[int, np.ndarray] | None = None):
        self.cache_key = ("test", name)
        self.tokens = tokens
        self.norms = norms or {}

    def encode(self, pixel_values: torch.Tensor) -> _features.Encoded:
        greys = [
            round(float(x[0, 0, 0]) * _features.IMAGENET_STD[0] * 255 + _features.IMAGENET_MEAN[0] * 255)
            for x in pixel_values
        ]
        tokens = torch.stack([torch.from_numpy(self.tokens[g]) for g in greys])
        norms = torch.stack(
            [torch.from_numpy(self.norms.get(g, np.linalg.norm(self.tokens[g], axis=1)[None])) for g in greys]
        )
        names = tuple(f"layer {i}" for i in range(norms.shape[1]))
        return _features.Encoded(tokens=tokens, cls=tokens.mean(1), layer_norms=norms, layer_names=names)


@pytest.fixture
def plant(monkeypatch):
    """plant(tokens_by_grey) -> a model ref whose descriptor returns those tokens."""
    counter = iter(range(1000))

    def register(tokens: dict[int, np.ndarray], norms=None) -> str:
        ref = f"test:planted-{next(counter)}"
        extractor = Planted(ref, tokens, norms)
        monkeypatch.setitem(_features.EXTRACTORS, ref, lambda ctx, r: extractor)
        return ref

    return register


def box(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros((ROWS, COLS), bool)
    m[r0:r1, c0:c1] = True
    return m


def planted_tokens(fg: np.ndarray, direction: np.ndarray, seed: int = 0, strength: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tokens = rng.normal(0, 0.3, size=(fg.size, DIM)).astype(np.float32)
    tokens[fg.ravel()] += strength * direction
    return tokens


def unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = 1.0
    return v


def pixels_of(patch_mask: np.ndarray) -> np.ndarray:
    return np.kron(patch_mask, np.ones((P, P), bool))


def run(host, services, tool_id, images, model, **params):
    return run_tool(
        host.tool(tool_id),
        images,
        {"resolution": ROWS * P, **params},
        model=model,
        device="cpu",
        services=services,
    )


# ---------------------------------------------------------------------------------------------- pca


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["fg-on-positive-pc1", "fg-on-negative-pc1"])
@pytest.mark.parametrize(
    "fg", [box(3, 9, 4, 12), box(1, 11, 2, 14)], ids=["central-minority", "central-majority"]
)
def test_pca_recovers_a_planted_foreground_exactly(host, services, plant, sign, fg):
    model = plant({0: planted_tokens(fg, sign * unit(0))})
    pred = run(host, services, "dinov2.pca", [blank(0)], model, upsample="nearest")
    (masks,) = pred.of_type(Masks)
    assert masks.labels == ("foreground",)
    assert np.array_equal(masks.masks[0], pixels_of(fg))
    (heat,) = pred.of_type(Heatmap)
    (hist,) = pred.of_type(Histogram)
    assert heat.values.shape == (ROWS, COLS) and heat.extent == (0.0, 0.0, COLS * P, ROWS * P)
    assert np.array_equal(heat.values > hist.threshold, fg)  # foreground is the high side of the slider
    assert hist.counts.sum() == ROWS * COLS and hist.edges[0] == 0.0 and hist.edges[-1] == 1.0
    (picture,) = pred.of_type(FeatureImage)
    assert picture.rgb.shape == (ROWS * P, COLS * P, 3)
    assert np.array_equal(picture.foreground, pixels_of(fg))
    assert not picture.rgb[~pixels_of(fg)].any()  # background black
    assert picture.rgb[pixels_of(fg)].any()

    flipped = run(host, services, "dinov2.pca", [blank(0)], model, upsample="nearest", sign="flip")
    assert np.array_equal(flipped.of_type(Masks)[0].masks[0], ~pixels_of(fg))


def test_pca_threshold_moves_the_cut_and_cleanup_removes_specks(host, services, plant):
    fg = box(3, 9, 4, 12)
    tokens = planted_tokens(fg, unit(0))
    tokens[0] += 3.0 * unit(0)  # a lone foreground-like patch in the corner
    model = plant({0: tokens})
    clean = run(host, services, "dinov2.pca", [blank(0)], model, upsample="nearest")
    assert np.array_equal(clean.of_type(Masks)[0].masks[0], pixels_of(fg))
    raw = run(host, services, "dinov2.pca", [blank(0)], model, upsample="nearest", cleanup=False)
    assert raw.of_type(Masks)[0].masks[0][:P, :P].all()
    everything = run(host, services, "dinov2.pca", [blank(0)], model, threshold=0.0, cleanup=False)
    nothing = run(host, services, "dinov2.pca", [blank(0)], model, threshold=1.0, cleanup=False)
    assert everything.of_type(Masks)[0].masks[0].mean() > 0.99
    assert not nothing.of_type(Masks)[0].masks[0].any()
    assert nothing.of_type(Histogram)[0].threshold == 1.0


def test_pca_upsampling_modes_draw_the_same_object(host, services, plant):
    fg = box(3, 9, 4, 12)
    model = plant({0: planted_tokens(fg, unit(0))})
    for mode in ("bilinear", "bicubic"):
        mask = run(host, services, "dinov2.pca", [blank(0)], model, upsample=mode).of_type(Masks)[0].masks[0]
        assert np.array_equal(mask[P // 2 :: P, P // 2 :: P], fg)  # cell centres agree
        assert (mask != pixels_of(fg)).mean() < 0.02  # only the smoothed edges differ


def test_pca_on_a_large_photo_caps_the_picture_but_not_the_mask(host, services, plant):
    fg = box(3, 9, 4, 12)
    model = plant({0: planted_tokens(fg, unit(0))})
    big = blank(0, height=ROWS * 175, width=COLS * 175)  # 2100 x 2800: a patch is 175 px here
    pred = run(host, services, "dinov2.pca", [big], model, upsample="nearest")
    (picture,) = pred.of_type(FeatureImage)
    assert picture.rgb.shape == (768, 1024, 3) and picture.extent == (0.0, 0.0, 2800.0, 2100.0)
    assert np.array_equal(picture.foreground, np.kron(fg, np.ones((64, 64), bool)))
    (masks,) = pred.of_type(Masks)
    assert np.array_equal(masks.masks[0], np.kron(fg, np.ones((175, 175), bool)))


def test_joint_pca_gives_the_same_part_the_same_colour_in_every_image(host, services, plant):
    rng = np.random.default_rng(1)

    def parts(regions: list[np.ndarray]) -> np.ndarray:
        # Four parts of one object: four centroids span the three colour components.
        tokens = rng.normal(0, 0.1, size=(ROWS * COLS, DIM)).astype(np.float32)
        for i, region in enumerate(regions):
            tokens[region.ravel()] += 3 * unit(0) + 2 * unit(1 + i)
        return tokens

    regions_a = [box(2, 5, 3, 6), box(2, 5, 6, 9), box(5, 9, 3, 6), box(5, 9, 6, 9)]
    regions_b = [box(4, 7, 10, 14), box(7, 10, 10, 14), box(4, 10, 7, 10), box(2, 4, 7, 14)]
    model = plant({0: parts(regions_a), 1: parts(regions_b)})
    pred = run(host, services, "dinov2.joint-pca", [blank(0), blank(1)], model, upsample="nearest")
    pictures = pred.of_type(FeatureImage)
    assert [p.image_id for p in pictures] == [blank(0).id, blank(1).id]

    def colour(picture, region):
        return picture.rgb[pixels_of(region)].astype(float).mean(axis=0)

    colours_a = [colour(pictures[0], r) for r in regions_a]
    colours_b = [colour(pictures[1], r) for r in regions_b]
    for i, (ca, cb) in enumerate(zip(colours_a, colours_b)):
        assert np.abs(ca - cb).max() < 20, f"part {i}: {ca} in the first image, {cb} in the second"
        for j, other in enumerate(colours_a):
            if j != i:
                assert np.abs(ca - other).max() > 60
    masks = pred.of_type(Masks)
    assert np.array_equal(masks[1].masks[0], pixels_of(np.logical_or.reduce(regions_b)))


# ---------------------------------------------------------------------------------------------- matching


def patch_of(xy) -> int:
    x, y = xy
    return int(y // P) * COLS + int(x // P)


def test_matches_recover_a_known_patch_permutation(host, services, plant):
    rng = np.random.default_rng(7)
    a = rng.normal(size=(ROWS * COLS, DIM)).astype(np.float32)
    perm = rng.permutation(ROWS * COLS)  # patch j of B is patch perm[j] of A
    model = plant({0: a, 1: a[perm]})
    images = [blank(0), blank(1)]
    (few,) = run(host, services, "dinov2.matches", images, model, foreground=False, k=20).of_type(
        Correspondences
    )
    assert len(few) == 20 and len({patch_of(xy) for xy in few.source_xy}) == 20
    assert all(perm[patch_of(t)] == patch_of(s) for s, t in zip(few.source_xy, few.target_xy))
    assert np.allclose(few.scores, 1.0, atol=1e-5) and (np.diff(few.scores) <= 1e-6).all()
    assert few.source_image == images[0].id and few.target_image == images[1].id
    (every,) = run(host, services, "dinov2.matches", images, model, foreground=False, k=1000).of_type(
        Correspondences
    )
    assert len(every) == ROWS * COLS
    assert all(perm[patch_of(t)] == patch_of(s) for s, t in zip(every.source_xy, every.target_xy))


def test_matches_restricted_to_foreground_stay_on_it(host, services, plant):
    fg_a, fg_b = box(3, 9, 4, 12), box(2, 10, 2, 9)
    rng = np.random.default_rng(3)
    codes = rng.normal(size=(ROWS * COLS, DIM)).astype(np.float32) * 0.2

    def tokens(fg):
        t = codes.copy()
        t[fg.ravel()] += 3 * unit(0)
        return t

    model = plant({0: tokens(fg_a), 1: tokens(fg_b)})
    (m,) = run(host, services, "dinov2.matches", [blank(0), blank(1)], model, k=10).of_type(Correspondences)
    assert len(m) > 0
    assert all(fg_a.ravel()[patch_of(s)] for s in m.source_xy)
    assert all(fg_b.ravel()[patch_of(t)] for t in m.target_xy)


def textured_pair(dx: int, dy: int) -> tuple[LoadedImage, LoadedImage]:
    """Two 300x400 windows of one smooth random texture, the second shifted by (dx, dy).

    Smooth at the scale of a patch, so raw pixel patches on two misaligned grids still correlate.
    """
    rng = np.random.default_rng(11)
    coarse = rng.integers(0, 256, size=(16, 24, 3), dtype=np.uint8)
    canvas = np.asarray(Image.fromarray(coarse).resize((600, 400), Image.BICUBIC))
    a, b = canvas[:300, :400].copy(), canvas[dy : dy + 300, dx : dx + 400].copy()
    return (
        LoadedImage(path=None, pixels=a, id="texture-a", width=400, height=300, format="PNG"),
        LoadedImage(path=None, pixels=b, id=f"texture-b-{dx}-{dy}", width=400, height=300, format="PNG"),
    )


def test_raw_patch_matching_recovers_a_shift_in_original_pixels(host, services):
    # Not multiples of a patch, and the images are resized by 448 / 300: the two patch grids are
    # misaligned by about half a patch, the hard case for matching.
    dx, dy = 37, 23
    a, b = textured_pair(dx, dy)
    one_patch = P * 300 / 448  # a patch in original pixels
    pred = run_tool(
        host.tool("dinov2.matches"),
        [a, b],
        {"foreground": False, "k": 20},
        model="builtin:raw-patches",
        services=services,
    )
    (m,) = pred.of_type(Correspondences)
    assert len(m) == 20
    error = np.abs(m.source_xy - m.target_xy - (dx, dy)).max(axis=1)
    assert np.median(error) <= one_patch / 2
    assert (error <= one_patch).mean() >= 0.9

    sim = run_tool(
        host.tool("dinov2.similarity"),
        [a, b],
        {"points": "200,150; 120,240; 330,60"},
        model="builtin:raw-patches",
        services=services,
    )
    (best,) = sim.of_type(Correspondences)
    assert np.abs(best.target_xy - (best.source_xy - (dx, dy))).max() <= one_patch


# ---------------------------------------------------------------------------------------------- similarity


def test_similarity_maps_every_image_for_every_point(host, services, plant):
    rng = np.random.default_rng(5)
    a = rng.normal(size=(ROWS * COLS, DIM)).astype(np.float32)
    b = rng.normal(size=(ROWS * COLS, DIM)).astype(np.float32)
    b[70] = a[20] * 2.0  # same direction: cosine 1
    model = plant({0: a, 1: b})
    point = ((20 % COLS) * P + 3.0, (20 // COLS) * P + 9.0)  # inside patch 20 of the source
    pred = run(host, services, "dinov2.similarity", [blank(0), blank(1)], model, points=(point, (5.0, 5.0)))
    heat = pred.of_type(Heatmap)
    assert len(heat) == 4  # 2 points x 2 images, the source included
    assert [h.image_id for h in heat] == [blank(0).id, blank(1).id] * 2
    assert heat[0].values.ravel()[20] == pytest.approx(1.0) and heat[1].values.ravel()[70] == pytest.approx(
        1.0
    )
    assert heat[0].value_range == heat[1].value_range  # one scale per point across images
    (best,) = pred.of_type(Correspondences)
    assert best.source_xy[0].tolist() == list(point)
    assert patch_of(best.target_xy[0]) == 70 and best.scores[0] == pytest.approx(1.0)


def test_similarity_refuses_a_point_outside_the_source(host, services, plant):
    model = plant({0: np.ones((ROWS * COLS, DIM), np.float32)})
    with pytest.raises(ToolError, match="outside") as info:
        run(host, services, "dinov2.similarity", [blank(0)], model, points=((500.0, 10.0),))
    assert info.value.user_error


# ---------------------------------------------------------------------------------------------- norms


def test_norms_flag_planted_high_norm_tokens_on_the_chosen_layer(host, services, plant):
    rng = np.random.default_rng(2)
    norms = rng.normal(10, 0.5, size=(3, ROWS * COLS)).astype(np.float32)
    outliers = [17, 40, 41]
    norms[2, outliers] = 60.0  # artifacts appear in the last layer only
    model = plant({0: rng.normal(size=(ROWS * COLS, DIM)).astype(np.float32)}, norms={0: norms})
    pred = run(host, services, "dinov2.norms", [blank(0)], model)
    (maps,) = pred.of_type(LayerMaps)
    assert maps.values.shape == (3, ROWS, COLS)
    (table,) = pred.of_type(Table)
    assert table.column("layer") == ["layer 0", "layer 1", "layer 2"]
    assert table.column("outlier share")[2] == pytest.approx(3 / (ROWS * COLS), abs=1e-4)
    assert table.column("outlier share")[0] < 0.01 and table.column("max")[2] == 60.0
    (mask,) = pred.of_type(Masks)
    expected = np.zeros(ROWS * COLS, bool)
    expected[outliers] = True
    assert np.array_equal(mask.masks[0], pixels_of(expected.reshape(ROWS, COLS)))
    first = run(host, services, "dinov2.norms", [blank(0)], model, layer=0).of_type(Masks)[0]
    assert first.masks[0].sum() < 3 * P * P
    with pytest.raises(ToolError, match="layer") as info:
        run(host, services, "dinov2.norms", [blank(0)], model, layer=3)
    assert info.value.user_error


# ---------------------------------------------------------------------------------------------- propagate


def two_class_tokens(cls1: np.ndarray, cls2: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tokens = rng.normal(0, 0.3, size=(ROWS * COLS, DIM)).astype(np.float32) + 2 * unit(5)
    tokens[cls1.ravel()] += 3 * unit(0)
    tokens[cls2.ravel()] += 3 * unit(1)
    return tokens


@pytest.fixture
def labelled(plant, tmp_path):
    """A reference with two classes and a label PNG, and a target with the classes elsewhere."""
    ref1, ref2 = box(2, 6, 2, 7), box(7, 11, 9, 15)
    tgt1, tgt2 = box(6, 10, 1, 5), box(1, 4, 10, 14)
    model = plant({0: two_class_tokens(ref1, ref2, 0), 1: two_class_tokens(tgt1, tgt2, 1)})
    label = (pixels_of(ref1) * 1 + pixels_of(ref2) * 2).astype(np.uint8)
    Image.fromarray(label).save(tmp_path / "ref.png")
    return model, (ref1, ref2), (tgt1, tgt2), tmp_path / "ref.png"


def test_propagate_carries_label_png_classes_to_a_target(host, services, labelled):
    model, refs, (tgt1, tgt2), png = labelled
    pred = run(
        host, services, "dinov2.propagate", [blank(0), blank(1)], model, masks=str(png), upsample="nearest"
    )
    (masks,) = pred.of_type(Masks)
    assert masks.image_id == blank(1).id
    assert masks.labels == ("class 1", "class 2")
    assert np.array_equal(masks.masks[0], pixels_of(tgt1)) and np.array_equal(masks.masks[1], pixels_of(tgt2))
    assert (masks.scores > 0.9).all()


def test_propagate_reads_masks_json_inline_and_from_a_prediction_file(host, services, labelled, tmp_path):
    model, (ref1, ref2), (tgt1, tgt2), _ = labelled
    given = Masks(masks=np.stack([pixels_of(ref1), pixels_of(ref2)]), labels=("cat", "dog"))
    inline = json.dumps(given.to_json())
    pred = run(
        host, services, "dinov2.propagate", [blank(0), blank(1)], model, masks=inline, upsample="nearest"
    )
    (masks,) = pred.of_type(Masks)
    assert masks.labels == ("cat", "dog") and np.array_equal(masks.masks[0], pixels_of(tgt1))

    envelope = Prediction(tool="x.y", model=None, image_ids=("r",), results=(given,))
    (tmp_path / "pred.json").write_text(json.dumps(envelope.to_json()))
    pred = run(
        host, services, "dinov2.propagate", [blank(0), blank(1)], model, masks=str(tmp_path / "pred.json")
    )
    assert pred.of_type(Masks)[0].labels == ("cat", "dog")


def test_propagate_similarity_floor_leaves_unlike_patches_unlabelled(host, services, labelled):
    model, _, _, png = labelled
    pred = run(host, services, "dinov2.propagate", [blank(0), blank(1)], model, masks=str(png), floor=0.999)
    (masks,) = pred.of_type(Masks)
    assert len(masks) == 0  # no reference patch is that similar: nothing is labelled


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        ("{missing}", "does not parse"),
        ("/nonexistent/mask.png", "no such file"),
        ("REF;REF", "reference mask"),
        (" ; ", "give a mask file"),
    ],
)
def test_propagate_rejects_bad_mask_parameters_with_a_clear_message(host, services, labelled, masks, message):
    model, _, _, png = labelled
    with pytest.raises(ToolError, match=message) as info:
        run(
            host,
            services,
            "dinov2.propagate",
            [blank(0), blank(1)],
            model,
            masks=masks.replace("REF", str(png)),
        )
    assert info.value.user_error


def test_propagate_rejects_a_mask_of_the_wrong_size_or_a_photo(host, services, labelled, tmp_path):
    model, _, _, _ = labelled
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ToolError, match="10x10"):
        run(
            host, services, "dinov2.propagate", [blank(0), blank(1)], model, masks=str(tmp_path / "small.png")
        )
    photo = np.random.default_rng(0).integers(0, 256, (ROWS * P, COLS * P, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    with pytest.raises(ToolError, match="distinct values"):
        run(
            host, services, "dinov2.propagate", [blank(0), blank(1)], model, masks=str(tmp_path / "photo.png")
        )
