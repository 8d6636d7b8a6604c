"""SigLIP 2 (fixed resolution and NaFlex) in clip.classify, clip.search and clip.segment, against the HF pipeline."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from PIL import Image
from vfmstudio_clip import CLASSIFY, SEARCH, SEGMENT
from vfmstudio_clip._model import get_bundle

from vfmstudio.core.context import RunContext
from vfmstudio.core.image import load_image
from vfmstudio.core.results import Heatmap, Ranking
from vfmstudio.execution import Services, ToolError, run_tool
from vfmstudio.testing.tiny_siglip2 import GEMMA_SPECIALS, NAFLEX_MAX_PATCHES, TEXT_LENGTH

LABELS = ("cat", "dog", "car", "a red bird")
NAMES = ("siglip2", "siglip2-naflex")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("siglip2-images")
    rng = np.random.default_rng(3)
    out = []
    for i, (h, w) in enumerate([(64, 64), (40, 100), (90, 50), (33, 77), (120, 60), (50, 50)]):
        path = folder / f"img{i}.png"
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
        out.append(load_image(path))
    return out


@functools.cache
def _pipeline(ref):
    from transformers import pipeline

    return pipeline("zero-shot-image-classification", model=str(ref), device="cpu")


def pipeline_scores(ref, image, labels, template):
    out = _pipeline(str(ref))(
        Image.open(image.path), candidate_labels=list(labels), hypothesis_template=template
    )
    return {d["label"]: d["score"] for d in out}


@pytest.mark.parametrize("name", NAMES)
def test_classify_equals_the_hf_zero_shot_pipeline(tiny_model, images, name):
    ref = tiny_model(name)
    pred = run_tool(
        CLASSIFY,
        images,
        {"labels": LABELS, "templates": "single", "batch_size": 4},
        model=str(ref),
        services=Services.create(),
    )
    for image, result in zip(images, pred.results):
        expected = pipeline_scores(ref, image, LABELS, "a photo of a {}.")
        ours = dict(zip(result.labels, result.scores.tolist()))
        assert max(abs(ours[k] - expected[k]) for k in LABELS) <= 1e-5
        assert result.multi_label  # sigmoid per label, as the pipeline scores SigLIP-family models


@pytest.mark.parametrize("name", NAMES)
def test_text_is_lower_cased_gemma_tokens_padded_to_64(tiny_model, name):
    ref = tiny_model(name)
    bundle = get_bundle(
        RunContext(tool_id="clip.classify", model_ref=str(ref), models=Services.create().models)
    )
    assert bundle.family == "siglip" and bundle.lowercase and bundle.naflex is (name == "siglip2-naflex")
    tokenizer = bundle.processor.tokenizer
    assert tokenizer.convert_ids_to_tokens(list(range(len(GEMMA_SPECIALS)))) == list(GEMMA_SPECIALS)

    calls = []
    original = bundle.model.get_text_features

    def spy(**kwargs):
        calls.append(kwargs["input_ids"])
        return original(**kwargs)

    bundle.model.get_text_features = spy
    try:
        from vfmstudio_clip._model import encode_texts

        upper = encode_texts(bundle, ["A Photo of a CAT."])
        lower = encode_texts(bundle, ["a photo of a cat."])
    finally:
        del bundle.model.get_text_features
    assert calls[0].shape == (1, TEXT_LENGTH)
    assert torch.equal(calls[0], calls[1])  # the fixed-resolution GemmaTokenizer keeps case: we lower-case
    assert np.array_equal(upper, lower)
    ids = calls[0][0].tolist()
    assert ids[ids.index(tokenizer.eos_token_id) + 1 :] == [tokenizer.pad_token_id] * (
        TEXT_LENGTH - 1 - ids.index(tokenizer.eos_token_id)
    )


def test_naflex_keeps_the_aspect_ratio_and_batches_images_of_any_shape(tiny_model, images):
    from vfmstudio_clip._model import encode_images, image_inputs

    bundle = get_bundle(
        RunContext(
            tool_id="clip.classify",
            model_ref=str(tiny_model("siglip2-naflex")),
            models=Services.create().models,
        )
    )
    inputs = image_inputs(bundle, [im.pixels for im in images[:3]])
    assert inputs["pixel_values"].shape[:2] == (3, NAFLEX_MAX_PATCHES)
    rows, cols = inputs["spatial_shapes"].T.tolist()
    assert rows[0] == cols[0] and cols[1] > rows[1] and rows[2] > cols[2]  # square, landscape, portrait
    assert (inputs["pixel_attention_mask"].sum(1) == inputs["spatial_shapes"].prod(1)).all()
    together = encode_images(bundle, [im.pixels for im in images[:3]])
    alone = np.stack([encode_images(bundle, [im.pixels])[0] for im in images[:3]])
    assert np.abs(together - alone).max() <= 1e-5  # padding patches are masked out


@pytest.mark.parametrize("name", NAMES)
def test_search_ranks_by_the_same_embeddings_as_the_pipeline_scores(tiny_model, images, name):
    ref = tiny_model(name)
    pred = run_tool(
        SEARCH, images, {"query": "a photo of a Cat."}, model=str(ref), services=Services.create()
    )
    (ranking,) = pred.of_type(Ranking)
    # The pipeline's sigmoid is monotonic in the similarity: its order is the search order.
    scores = [
        pipeline_scores(ref, image, ["a photo of a cat."], "{}")["a photo of a cat."] for image in images
    ]
    by_id = dict(zip((im.id for im in images), scores))
    ranked = [by_id[i] for i in ranking.image_ids]
    assert ranked == sorted(scores, reverse=True)


def test_segment_runs_on_fixed_resolution_siglip2_and_refuses_naflex(tiny_model, images):
    pred = run_tool(
        SEGMENT,
        [images[1]],
        {"labels": "cat, dog", "templates": "single", "resolution": 64},
        model=str(tiny_model("siglip2")),
        services=Services.create(),
    )
    heat = pred.of_type(Heatmap)
    assert [h.label for h in heat] == ["cat", "dog"]
    # 40x100 at a 64 px short side (the model's input): 64x160, a 4x10 grid of 16 px patches over the whole image.
    assert heat[0].values.shape == (4, 10) and heat[0].extent == (0.0, 0.0, 100.0, 40.0)
    with pytest.raises(ToolError, match="NaFlex") as info:
        run_tool(
            SEGMENT,
            [images[1]],
            {"labels": "cat"},
            model=str(tiny_model("siglip2-naflex")),
            services=Services.create(),
        )
    assert info.value.user_error
