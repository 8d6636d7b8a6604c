"""clip.segment: dense modes against independent computations, sliding windows, results, caching."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import vfmstudio_clip._dense as dense_module
import vfmstudio_clip._segment as segment_module
from PIL import Image
from vfmstudio_clip import SEGMENT
from vfmstudio_clip._dense import dense_embeddings, plan_windows
from vfmstudio_clip._model import cached_class_embeddings, get_bundle
from vfmstudio_clip.templates import resolve_templates

from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.context import RunContext
from vfmstudio.core.image import load_image
from vfmstudio.core.results import Heatmap, Masks
from vfmstudio.execution import Services, ToolError, run_tool
from vfmstudio.testing.tiny_clip import CLIP_IMAGE_SIZE, CLIP_PATCH


def _image(folder, name, h, w, seed):
    rng = np.random.default_rng(seed)
    # smooth blobs rather than noise, so neighbouring patches differ but not wildly
    small = (rng.random((max(2, h // 12), max(2, w // 12), 3)) * 255).astype(np.uint8)
    path = folder / name
    Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR).save(path)
    return load_image(path)


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    """Exactly the model input size: one window, no resize."""
    return _image(tmp_path_factory.mktemp("seg"), "square.png", CLIP_IMAGE_SIZE, CLIP_IMAGE_SIZE, 1)


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    return _image(tmp_path_factory.mktemp("seg"), "wide.png", CLIP_IMAGE_SIZE, 2 * CLIP_IMAGE_SIZE, 2)


def ctx_for(services, ref):
    return RunContext(
        tool_id="clip.segment", model_ref=str(ref), models=services.models, features=services.features
    )


@contextlib.contextmanager
def count_calls(module):
    calls = [0]
    handle = module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


def _hf_last_block_input(bundle, image):
    """The last block's input from the HF forward pass (checked to be that by re-running the block)."""
    pv = bundle.processor.image_processor(images=[image.pixels], return_tensors="pt")["pixel_values"]
    vm = bundle.model.vision_model
    with torch.no_grad():
        out = vm(pixel_values=pv, output_hidden_states=True)
        x = out.hidden_states[-2]
        assert torch.allclose(vm.encoder.layers[-1](x, None), out.last_hidden_state, atol=1e-5)
    return x, out


def _ln(t, ln):
    return F.layer_norm(t, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def _project(bundle, y):
    vm = bundle.model.vision_model
    z = _ln(y[0, 1:], vm.post_layernorm) @ bundle.model.visual_projection.weight.T
    return (z / z.norm(dim=-1, keepdim=True)).numpy()


def test_maskclip_equals_identity_attention_computed_by_hand(tiny_model, services, square):
    ctx = ctx_for(services, tiny_model("clip"))
    bundle = get_bundle(ctx)
    x, _ = _hf_last_block_input(bundle, square)
    layer = bundle.model.vision_model.encoder.layers[-1]
    attn, mlp = layer.self_attn, layer.mlp
    with torch.no_grad():
        h = _ln(x, layer.layer_norm1)
        v = h @ attn.v_proj.weight.T + attn.v_proj.bias
        y = x + (v @ attn.out_proj.weight.T + attn.out_proj.bias)  # every token attends only to itself
        u = _ln(y, layer.layer_norm2) @ mlp.fc1.weight.T + mlp.fc1.bias
        u = u * torch.sigmoid(1.702 * u)  # quick_gelu, CLIP's activation
        y = y + (u @ mlp.fc2.weight.T + mlp.fc2.bias)
        expected = _project(bundle, y)
    plan = plan_windows(square.height, square.width, image_size=bundle.image_size, patch=bundle.patch_size)
    assert len(plan.windows) == 1 and plan.grid == (6, 6)
    got = dense_embeddings(ctx, bundle, square, "maskclip", plan)
    np.testing.assert_allclose(got.reshape(-1, got.shape[-1]), expected, atol=2e-5)
    patch = dense_embeddings(ctx, bundle, square, "patch", plan)
    assert np.abs(patch - got).max() > 1e-2


def test_patch_mode_equals_projected_tokens_of_the_hf_forward(tiny_model, services, square):
    ctx = ctx_for(services, tiny_model("clip"))
    bundle = get_bundle(ctx)
    _, out = _hf_last_block_input(bundle, square)
    with torch.no_grad():
        expected = _project(bundle, out.last_hidden_state)
    plan = plan_windows(square.height, square.width, image_size=bundle.image_size, patch=bundle.patch_size)
    got = dense_embeddings(ctx, bundle, square, "patch", plan)
    np.testing.assert_allclose(got.reshape(-1, got.shape[-1]), expected, atol=2e-5)


def test_sclip_uses_qq_plus_kk_attention(tiny_model, services, square):
    ctx = ctx_for(services, tiny_model("clip"))
    bundle = get_bundle(ctx)
    x, _ = _hf_last_block_input(bundle, square)
    layer = bundle.model.vision_model.encoder.layers[-1]
    attn = layer.self_attn
    n_heads, d = attn.num_heads, x.shape[-1] // attn.num_heads
    with torch.no_grad():
        h = _ln(x, layer.layer_norm1)[0]

        def split(lin):
            return (h @ lin.weight.T + lin.bias).reshape(-1, n_heads, d).permute(1, 0, 2)

        q, k, v = split(attn.q_proj), split(attn.k_proj), split(attn.v_proj)
        a = torch.softmax(q @ q.transpose(1, 2) / d**0.5, -1) + torch.softmax(
            k @ k.transpose(1, 2) / d**0.5, -1
        )
        o = (a @ v).permute(1, 0, 2).reshape(-1, n_heads * d)
        y = x + attn.out_proj(o)[None]
        y = y + layer.mlp(layer.layer_norm2(y))
        expected = _project(bundle, y)
    plan = plan_windows(square.height, square.width, image_size=bundle.image_size, patch=bundle.patch_size)
    got = dense_embeddings(ctx, bundle, square, "sclip", plan)
    np.testing.assert_allclose(got.reshape(-1, got.shape[-1]), expected, atol=2e-5)


def test_window_plan_covers_the_image_with_model_sized_windows():
    plan = plan_windows(300, 500, image_size=224, patch=16, resolution=448, stride=112)
    assert (plan.height, plan.width) == (448, 752)  # short side 448; 746.7 snapped to 47 patches
    assert (plan.window_h, plan.window_w) == (224, 224)
    assert plan.tops == (0, 112, 224) and plan.lefts[-1] + 224 == 752
    assert all(left % 16 == 0 for left in plan.lefts)
    small = plan_windows(100, 60, image_size=224, patch=16, resolution=112)
    assert (small.height, small.width) == (192, 112) and small.windows == [(0, 0)]  # one smaller window
    so400m = plan_windows(384, 384, image_size=384, patch=14)
    assert so400m.window_h == 378 and so400m.grid == (27, 27)
    with pytest.raises(ValueError, match="stride.*multiple of the model's patch size 16"):
        plan_windows(300, 500, image_size=224, patch=16, stride=100)
    with pytest.raises(ValueError, match="stride.*larger than the 224 px window"):
        plan_windows(300, 1000, image_size=224, patch=16, stride=240)


def test_sliding_windows_average_overlapping_windows(tiny_model, services, wide, tmp_path):
    """Patches seen by one window equal that window run alone; overlaps are the mean of both windows."""
    ctx = ctx_for(services, tiny_model("clip"))
    bundle = get_bundle(ctx)
    plan = plan_windows(wide.height, wide.width, image_size=bundle.image_size, patch=bundle.patch_size)
    assert plan.lefts == (0, 24, 48) and plan.grid == (6, 12)
    full = dense_embeddings(ctx, bundle, wide, "maskclip", plan)
    crops = []
    for left in plan.lefts:
        path = tmp_path / f"crop{left}.png"
        Image.fromarray(np.asarray(wide.pixels)[:, left : left + CLIP_IMAGE_SIZE]).save(path)
        crop = load_image(path)
        crops.append(
            dense_embeddings(
                ctx,
                bundle,
                crop,
                "maskclip",
                plan_windows(crop.height, crop.width, image_size=bundle.image_size, patch=bundle.patch_size),
            )
        )
    step = 24 // CLIP_PATCH
    np.testing.assert_allclose(full[:, :step], crops[0][:, :step], atol=1e-5)
    np.testing.assert_allclose(
        full[:, step : 2 * step], (crops[0][:, step:] + crops[1][:, :step]) / 2, atol=1e-5
    )
    np.testing.assert_allclose(full[:, -step:], crops[2][:, -step:], atol=1e-5)


def test_results_are_heatmaps_per_class_and_a_partition_into_masks(tiny_model, services, wide):
    labels = ("cat", "dog", "car")
    pred = run_tool(
        SEGMENT,
        [wide],
        {"labels": labels, "background": 0.0, "resolution": 96},
        model=str(tiny_model("clip")),
        services=services,
    )
    heat = [r for r in pred.results if isinstance(r, Heatmap)]
    masks = [r for r in pred.results if isinstance(r, Masks)]
    assert [h.label for h in heat] == list(labels) and len(masks) == 1
    stack = np.stack([h.values for h in heat])
    assert stack.shape == (3, 12, 24)  # short side 96 px at patch 8, sliding windows
    np.testing.assert_allclose(stack.sum(axis=0), 1.0, atol=1e-5)
    assert heat[0].extent == (0.0, 0.0, float(wide.width), float(wide.height))
    m = masks[0]
    assert m.size == (wide.height, wide.width) and "background" not in m.labels
    assert (m.masks.sum(axis=0) == 1).all()  # every pixel in exactly one class
    assert len(m.labels) >= 2  # random weights still split the image somewhere
    everything_background = run_tool(
        SEGMENT,
        [wide],
        {"labels": labels, "background": 1.0},
        model=str(tiny_model("clip")),
        services=services,
    ).results[-1]
    assert everything_background.labels == ("background",) and everything_background.masks.all()


def test_reruns_with_new_labels_thresholds_or_modes_skip_the_forward_pass(tiny_model, services, wide):
    ref = str(tiny_model("clip"))
    bundle = get_bundle(ctx_for(services, ref))
    with (
        count_calls(bundle.model.vision_model.embeddings) as vision,
        count_calls(bundle.model.text_model) as text,
    ):
        run_tool(
            SEGMENT,
            [wide],
            {"labels": "cat,dog", "mode": "maskclip"},
            model=ref,
            services=services,
            params_from_text=True,
        )
        assert vision[0] == 1 and text[0] == 1
        run_tool(
            SEGMENT,
            [wide],
            {"labels": "cat,dog,car", "mode": "maskclip", "background": 0.2},
            model=ref,
            services=services,
            params_from_text=True,
        )
        # Same resolution as maskclip's auto (sclip's own auto is 1.5x the input): one block reruns.
        run_tool(
            SEGMENT,
            [wide],
            {"labels": "cat,dog,car", "mode": "sclip", "resolution": bundle.image_size},
            model=ref,
            services=services,
            params_from_text=True,
        )
        assert vision[0] == 1 and text[0] == 2


def test_siglip_segments_through_its_pooling_head(tiny_model, services, square):
    pred = run_tool(
        SEGMENT,
        [square],
        {"labels": "cat,dog", "mode": "maskclip", "background": 0.0},
        model=str(tiny_model("siglip")),
        services=services,
        params_from_text=True,
    )
    heat = [r for r in pred.results if isinstance(r, Heatmap)]
    assert heat[0].values.shape == (6, 6)
    np.testing.assert_allclose(heat[0].values + heat[1].values, 1.0, atol=1e-5)


def test_background_is_not_a_class_name(tiny_model, services, square):
    with pytest.raises(ToolError, match="'background' is added by the tool") as err:
        run_tool(
            SEGMENT,
            [square],
            {"labels": "cat,background"},
            model=str(tiny_model("clip")),
            services=services,
            params_from_text=True,
        )
    assert err.value.user_error


def test_siglip_patch_mode_is_the_hf_tokens_through_the_pooling_heads_value_path(
    tiny_model, services, square
):
    ctx = ctx_for(services, tiny_model("siglip"))
    bundle = get_bundle(ctx)
    vm = bundle.model.vision_model
    pv = bundle.processor.image_processor(images=[square.pixels], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        tokens = vm(pixel_values=pv).last_hidden_state[0]  # post-LayerNorm already applied by SigLIP
        mha, d = vm.head.attention, tokens.shape[-1]
        v = tokens @ mha.in_proj_weight[2 * d :].T + mha.in_proj_bias[2 * d :]
        r = v @ mha.out_proj.weight.T + mha.out_proj.bias
        z = r + vm.head.mlp(vm.head.layernorm(r))
        expected = (z / z.norm(dim=-1, keepdim=True)).numpy()
    plan = plan_windows(square.height, square.width, image_size=bundle.image_size, patch=bundle.patch_size)
    got = dense_embeddings(ctx, bundle, square, "patch", plan)
    np.testing.assert_allclose(got.reshape(-1, got.shape[-1]), expected, atol=2e-5)


def test_images_smaller_than_the_model_input_use_one_interpolated_window(tiny_model, services, tmp_path):
    small = _image(tmp_path, "small.png", 30, 20, 5)
    pred = run_tool(
        SEGMENT,
        [small],
        {"labels": "cat,dog", "resolution": 32, "background": 0.0},
        model=str(tiny_model("clip")),
        services=services,
        params_from_text=True,
    )
    heat = [r for r in pred.results if isinstance(r, Heatmap)]
    assert heat[0].values.shape == (6, 4)  # 48 x 32 px: short side 32, long side 48, one non-square window
    masks = pred.results[-1]
    assert masks.size == (30, 20) and (masks.masks.sum(axis=0) == 1).all()


def test_many_windows_stream_instead_of_caching_the_block_inputs(
    tiny_model, services, models, wide, monkeypatch
):
    ref = str(tiny_model("clip"))
    params = {"labels": "cat,dog", "mode": "maskclip", "resolution": 96, "stride": 16}
    cached = run_tool(SEGMENT, [wide], params, model=ref, services=services, params_from_text=True)
    monkeypatch.setattr(dense_module, "MAX_CACHED_INPUTS", 0)
    fresh = Services(models=models, features=ByteLRUCache(256 << 20))
    bundle = get_bundle(ctx_for(fresh, ref))
    with count_calls(bundle.model.vision_model.embeddings) as vision:
        streamed = run_tool(SEGMENT, [wide], params, model=ref, services=fresh, params_from_text=True)
        assert vision[0] == 5  # 96 x 192 px in 48 px windows every 16 px: 4 x 10 windows, batches of 8
        run_tool(
            SEGMENT, [wide], {**params, "mode": "sclip"}, model=ref, services=fresh, params_from_text=True
        )
        assert vision[0] == 10  # a mode switch runs the windows again when their inputs were not kept
    for a, b in zip(cached.results[:2], streamed.results[:2]):
        np.testing.assert_allclose(a.values, b.values, atol=1e-6)


# ---------------------------------------------------------------- SCLIP's post-processing


def _sclip_postprocess(
    patch_logits: np.ndarray, height: int, width: int, logit_scale: float, prob_thd: float
):
    """SCLIP's ``forward_feature`` + ``postprocess_result`` (wangf3014/SCLIP, clip_segmentor.py), transcribed:
    logits (1, K, gh, gw) upsampled with F.interpolate(mode='bilinear'), times logit_scale, softmax over
    the classes, argmax; pixels whose best probability is under prob_thd become background (-1 here)."""
    t = torch.from_numpy(np.ascontiguousarray(patch_logits.transpose(2, 0, 1)))[None].float()
    seg_logits = torch.nn.functional.interpolate(t, size=(height, width), mode="bilinear")[0]
    seg_logits = (seg_logits * logit_scale).softmax(0)
    pred = seg_logits.argmax(0)
    pred[seg_logits.max(0)[0] < prob_thd] = -1
    return pred.numpy()


def test_masks_come_from_upsampled_logits_as_sclip_does(tiny_model, services, wide):
    ref = str(tiny_model("clip"))
    labels = ("cat", "dog", "car")
    params = {"labels": labels, "mode": "sclip", "background": 0.4, "logit_scale": 40.0}
    pred = run_tool(SEGMENT, [wide], params, model=ref, services=services)
    ctx = ctx_for(services, ref)
    bundle = get_bundle(ctx)
    plan = plan_windows(
        wide.height,
        wide.width,
        image_size=bundle.image_size,
        patch=bundle.patch_size,
        resolution=segment_module.auto_resolution("sclip", bundle.image_size, bundle.patch_size),
    )
    dense = dense_embeddings(ctx, bundle, wide, "sclip", plan)
    class_emb = cached_class_embeddings(ctx, bundle, labels, resolve_templates("ensemble7"))
    want = _sclip_postprocess(dense @ class_emb.T, wide.height, wide.width, 40.0, 0.4)
    masks = pred.results[-1]
    got = np.full((wide.height, wide.width), -2)
    for mask, label in zip(masks.masks, masks.labels):
        got[mask] = -1 if label == "background" else labels.index(label)
    np.testing.assert_array_equal(got, want)
    assert len(set(np.unique(want))) >= 2


def test_sclip_defaults_to_one_and_a_half_times_the_input_like_sclips_336_px():
    assert segment_module.auto_resolution("sclip", 224, 16) == 336
    assert segment_module.auto_resolution("sclip", 384, 14) == 574  # so400m: 1.5 x 384 in whole patches
    assert segment_module.auto_resolution("maskclip", 224, 16) is None
