"""The VQ-VAE mask decoder: weight file layout, shapes, batching, the published math, and the paste."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vfmstudio_paligemma import _mask_decoder as md

from vfmstudio.ml.errors import ModelError
from vfmstudio.testing.paligemma_reference import evaluator_masks
from vfmstudio.testing.tiny_paligemma import vae_encoder_shapes, vae_state_shapes, write_random_vae

EMBED = 8


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory):
    return write_random_vae(tmp_path_factory.mktemp("vae") / "vae-oid.npz", seed=1, embed_dim=EMBED)


@pytest.fixture(scope="module")
def decoder(vae_file):
    return md.load_decoder(vae_file)


def codes(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 128, size=(n, 16))


# ---------------------------------------------------------------- loading


def test_the_documented_key_names_and_shapes_load(vae_file, decoder):
    with np.load(vae_file) as npz:
        assert set(npz.files) == set(vae_state_shapes(EMBED))
        assert npz["_vq_vae._embedding"].shape == (128, EMBED)
    assert decoder.codebook.weight.shape == (128, EMBED)  # the dimension is read from the file
    assert torch.equal(decoder.decoder[12].weight, torch.from_numpy(np.load(vae_file)["decoder.12.weight"]))


def test_a_file_laid_out_like_the_published_one_loads_its_decoder_and_ignores_the_encoder(tmp_path, caplog):
    """The published vae-oid.npz also holds the encoder that big_vision's preprocessing encodes masks with."""
    path = write_random_vae(tmp_path / "vae-oid.npz", seed=1, embed_dim=EMBED, with_encoder=True)
    with np.load(path) as npz:
        assert {k for k in npz.files if k.startswith("encoder.")} == set(vae_encoder_shapes(EMBED))
    with caplog.at_level("DEBUG", logger=md.__name__):
        decoder = md.load_decoder(path)
    reference = md.load_decoder(write_random_vae(tmp_path / "decoder-only.npz", seed=1, embed_dim=EMBED))
    c = codes(3, 4)
    np.testing.assert_array_equal(md.decode_logits(decoder, c), md.decode_logits(reference, c))
    assert (
        f"ignored {len(vae_encoder_shapes(EMBED))} keys" in caplog.text and "encoder.10.weight" in caplog.text
    )


def test_a_file_with_the_wrong_layout_is_refused_in_one_line(tmp_path, vae_file):
    with np.load(vae_file) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "decoder.6.weight"}
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ModelError, match="does not match the PaliGemma mask decoder layout") as info:
        md.load_decoder(bad)
    assert "\n" not in str(info.value)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="cannot read mask decoder weights"):
        md.load_decoder(tmp_path / "junk.npz")
    with pytest.raises(ModelError, match="do not exist"):
        md.load_decoder(tmp_path / "missing.npz")


# ---------------------------------------------------------------- decoding


def test_output_shape_dtype_and_determinism(decoder):
    c = codes(0, 3)
    a = md.decode_logits(decoder, c)
    b = md.decode_logits(decoder, c)
    assert a.shape == (3, 64, 64) and a.dtype == np.float32
    assert np.isfinite(a).all() and a.std() > 0
    np.testing.assert_array_equal(a, b)
    assert md.decode_logits(decoder, np.zeros((0, 16))).shape == (0, 64, 64)


def test_batched_decoding_equals_one_object_at_a_time(decoder):
    c = codes(1, 5)
    batched = md.decode_logits(decoder, c)
    single = np.concatenate([md.decode_logits(decoder, c[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-5)


def test_wrong_code_shape_is_refused(decoder):
    with pytest.raises(ValueError, match=r"expected shape \(N, 16\)"):
        decoder(torch.zeros(2, 15, dtype=torch.long))


def _np_conv(x, w, b, pad):
    n, cin, h, wd = x.shape
    cout, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, cout, h, wd))
    for ky in range(k):
        for kx in range(k):
            out += np.einsum("nchw,oc->nohw", xp[:, :, ky : ky + h, kx : kx + wd], w[:, :, ky, kx])
    return out + b[None, :, None, None]


def _np_conv_transpose(x, w, b):
    """Stride 2, kernel 4, padding 1, written from the definition: each input pixel scatters a 4x4 patch."""
    n, cin, h, wd = x.shape
    _, cout, k, _ = w.shape
    full = np.zeros((n, cout, 2 * h + 2, 2 * wd + 2))
    for ky in range(k):
        for kx in range(k):
            full[:, :, ky : ky + 2 * h : 2, kx : kx + 2 * wd : 2] += np.einsum(
                "nchw,co->nohw", x, w[:, :, ky, kx]
            )
    return full[:, :, 1:-1, 1:-1] + b[None, :, None, None]


def test_matches_the_published_decoder_math_written_in_numpy(vae_file, decoder):
    p = {k: v.astype(np.float64) for k, v in np.load(vae_file).items()}
    c = codes(2, 2)
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    x = p["_vq_vae._embedding"][c].reshape(2, 4, 4, EMBED).transpose(0, 3, 1, 2)  # row-major 4x4 grid
    x = relu(_np_conv(x, p["decoder.0.weight"], p["decoder.0.bias"], 0))
    for block in (2, 3):
        r = relu(_np_conv(x, p[f"decoder.{block}.net.0.weight"], p[f"decoder.{block}.net.0.bias"], 1))
        r = relu(_np_conv(r, p[f"decoder.{block}.net.2.weight"], p[f"decoder.{block}.net.2.bias"], 1))
        x = x + _np_conv(r, p[f"decoder.{block}.net.4.weight"], p[f"decoder.{block}.net.4.bias"], 0)
    for i in (4, 6, 8, 10):
        x = relu(_np_conv_transpose(x, p[f"decoder.{i}.weight"], p[f"decoder.{i}.bias"]))
    want = _np_conv(x, p["decoder.12.weight"], p["decoder.12.bias"], 0)[:, 0]
    assert want.shape == (2, 64, 64)
    np.testing.assert_allclose(md.decode_logits(decoder, c), want, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- paste


def test_paste_stays_inside_the_box_and_fills_it_for_positive_logits():
    logits = np.stack(
        [np.ones((64, 64)), -np.ones((64, 64)), np.random.default_rng(0).standard_normal((64, 64))]
    )
    boxes = np.array([[10.2, 5.0, 30.7, 20.0], [0, 0, 50, 40], [40.0, 30.0, 49.5, 39.9]], dtype=np.float32)
    masks = md.paste_masks(logits.astype(np.float32), boxes, width=50, height=40)
    assert masks.shape == (3, 40, 50) and masks.dtype == bool
    expected = np.zeros((40, 50), dtype=bool)
    expected[5:20, 10:31] = True  # floor of the start, ceil of the end
    np.testing.assert_array_equal(masks[0], expected)
    assert not masks[1].any()
    outside = np.ones((40, 50), dtype=bool)
    outside[30:40, 40:50] = False
    assert not (masks[2] & outside).any() and masks[2].any()


def test_paste_resizes_bilinearly_to_the_box():
    logits = np.full((1, 64, 64), -1.0, dtype=np.float32)
    logits[0, :, 32:] = 1.0  # right half inside
    masks = md.paste_masks(logits, np.array([[0, 0, 16, 8]]), width=20, height=10)
    assert masks[0, :8, 8:16].all() and not masks[0, :8, :8].any() and not masks[0, 8:].any()


@pytest.mark.parametrize("box_w, box_h", [(150, 97), (64, 64), (23, 40), (7, 5)])
def test_paste_resizes_like_the_reference_evaluator(box_w, box_h):
    """The big_vision evaluator resizes the 64x64 map with PIL's bilinear filter, then thresholds at 0."""
    from PIL import Image

    logits = np.random.default_rng(box_w).standard_normal((1, 64, 64)).astype(np.float32)
    logits = np.cumsum(np.cumsum(logits, axis=1), axis=2) / 64  # smooth, like real mask logits
    mask = md.paste_masks(logits, np.array([[0, 0, box_w, box_h]]), width=box_w, height=box_h)[0]
    ref = np.asarray(Image.fromarray(logits[0]).resize([box_w, box_h], resample=Image.BILINEAR)) > 0
    np.testing.assert_array_equal(mask, ref)  # values agree to ~1e-6 (antialiased bilinear, as PIL)


def test_pixel_box_is_at_least_one_pixel_and_clamped():
    assert md.pixel_box((49.9, 39.9, 49.95, 39.95), 50, 40) == (49, 39, 50, 40)
    assert md.pixel_box((-5, -5, 100, 100), 50, 40) == (0, 0, 50, 40)


# ---------------------------------------------------------------- where the weights come from


def test_weights_path_from_parameter_then_environment(vae_file, monkeypatch, tmp_path):
    monkeypatch.setenv(md.VAE_ENV, str(vae_file))
    assert md.resolve_vae_path("") == vae_file
    assert md.resolve_vae_path(str(vae_file)) == vae_file
    with pytest.raises(ModelError, match="parameter 'vae_path'"):
        md.resolve_vae_path(str(tmp_path / "nope.npz"))
    monkeypatch.setenv(md.VAE_ENV, str(tmp_path / "nope.npz"))
    with pytest.raises(ModelError, match=md.VAE_ENV):
        md.resolve_vae_path(None)


def test_offline_without_a_cached_copy_says_what_to_do(isolated_hub, monkeypatch):
    monkeypatch.delenv(md.VAE_ENV, raising=False)
    with pytest.raises(ModelError) as info:
        md.resolve_vae_path(None)
    message = str(info.value)
    for part in (
        "vae-oid.npz",
        "big-vision/paligemma-hf",
        "offline",
        "vae_path",
        md.VAE_ENV,
        str(isolated_hub),
    ):
        assert part in message
    assert "\n" not in message


@pytest.mark.parametrize("space", md.VAE_SPACES)
def test_a_cached_copy_of_the_space_file_is_used_offline(isolated_hub, monkeypatch, vae_file, space):
    monkeypatch.delenv(md.VAE_ENV, raising=False)
    # The layout huggingface_hub gives a downloaded space file.
    repo = isolated_hub / ("spaces--" + space.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "vae-oid.npz").write_bytes(vae_file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    assert md.resolve_vae_path(None) == snapshot / "vae-oid.npz"


# ---------------------------------------------------------------- the evaluator's paste


def _smooth_logits(seed: int, n: int) -> np.ndarray:
    raw = np.random.default_rng(seed).standard_normal((n, 64, 64)).astype(np.float32)
    return (np.cumsum(np.cumsum(raw, axis=1), axis=2) / 64).astype(np.float32)


@pytest.mark.parametrize("width, height", [(640, 480), (57, 203), (1000, 30)])
def test_evaluator_paste_equals_big_visions_evaluator(width, height):
    rng = np.random.default_rng(width)
    starts = rng.integers(0, 1000, size=(200, 2))
    sizes = np.concatenate([rng.integers(0, 12, size=(100, 2)), rng.integers(0, 400, size=(100, 2))])
    locs = [
        (int(y0), int(x0), int(min(y0 + dy, 1023)), int(min(x0 + dx, 1023)))
        for (y0, x0), (dy, dx) in zip(starts, sizes)
    ]
    locs += [(500, 500, 400, 600), (0, 0, 1023, 1023), (1022, 1022, 1023, 1023)]
    logits = _smooth_logits(width, len(locs))
    want = evaluator_masks(logits, locs, height, width)
    dropped = 0
    for m64, t, ref in zip(logits, locs, want):
        box = md.evaluator_box(t, width, height)
        assert (box is None) == (ref is None), t
        if box is None:
            dropped += 1
            continue
        np.testing.assert_array_equal(md.paste_mask(m64, box, width, height), ref)
    assert 0 < dropped < len(locs)  # the sample has boxes that the evaluator drops, and many it keeps


def test_small_boxes_paste_where_the_evaluator_puts_them_not_where_they_are_drawn():
    """Boxes scale by 1/1024 for drawing but masks by 1/1023 with truncation, as the evaluator does."""
    locs = (100, 100, 108, 106)  # a few pixels on a 640x480 image
    logits = np.ones((1, 64, 64), np.float32)
    (want,) = evaluator_masks(logits, [locs], 480, 640)
    box = md.evaluator_box(locs, 640, 480)
    assert box == (62, 46, 66, 50)
    np.testing.assert_array_equal(md.paste_mask(logits[0], box, 640, 480), want)


def test_the_space_file_downloads_through_the_engine_with_deadlines(fake_hub, monkeypatch):
    """The mask decoder weights come from a Space: fetched (and bounded) like models, then reused offline."""
    monkeypatch.delenv(md.VAE_ENV, raising=False)
    data = b"not really an npz, but bytes to fetch " * 100
    fake_hub.add_repo(md.VAE_SPACE, {md.VAE_FILE: data, "app.py": b"print()"}, repo_type="space")
    fake_hub.fault, fake_hub.fault_target = "trickle", "files"
    monkeypatch.setenv("VFMSTUDIO_HUB_DEADLINE_S", "1")
    monkeypatch.setenv("VFMSTUDIO_HUB_MIN_RATE", "1000000")
    with pytest.raises(ModelError, match="download cut while fetching vae-oid.npz") as info:
        md.resolve_vae_path(None)
    assert "\n" not in str(info.value) and md.VAE_ENV in str(info.value)

    fake_hub.fault = None
    path = md.resolve_vae_path(None)
    assert path.read_bytes() == data and "spaces--big-vision--paligemma-hf" in str(path)
    assert not any("app.py" in r["path"] for r in fake_hub.requests)  # only the one file
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert md.resolve_vae_path(None) == path
