"""clip.classify against the Hugging Face pipeline, template ensembling, and the text/image caches."""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import pytest
import torch
from PIL import Image
from vfmstudio_clip import CLASSIFY
from vfmstudio_clip._model import class_embeddings, get_bundle
from vfmstudio_clip.templates import ENSEMBLE7

from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.core.context import RunContext
from vfmstudio.core.image import load_image
from vfmstudio.execution import Services, ToolError, prepare_tool, run_tool

LABELS = ("cat", "dog", "car", "a red bird")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip-images")
    rng = np.random.default_rng(7)
    out = []
    for i in range(10):
        h, w = 40 + 7 * i, 90 - 4 * i  # various sizes and aspect ratios, so resize + crop matter
        path = folder / f"img{i}.png"
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
        out.append(load_image(path))
    return out


def bundle_for(models, ref):
    return get_bundle(RunContext(tool_id="clip.classify", model_ref=str(ref), models=models))


@contextlib.contextmanager
def count_calls(*modules):
    counts = [0] * len(modules)
    handles = []
    for i, m in enumerate(modules):

        def hook(_m, _in, _out, i=i):
            counts[i] += 1

        handles.append(m.register_forward_hook(hook))
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


@functools.cache
def _pipeline(ref):
    from transformers import pipeline

    return pipeline("zero-shot-image-classification", model=str(ref), device="cpu")


def _pipeline_scores(ref, image, labels, template):
    out = _pipeline(str(ref))(
        Image.open(image.path), candidate_labels=list(labels), hypothesis_template=template
    )
    return {d["label"]: d["score"] for d in out}


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_scores_equal_the_hf_pipeline(tiny_model, services, images, name):
    ref = tiny_model(name)
    pred = run_tool(
        CLASSIFY, images[:4], {"labels": LABELS, "templates": "single"}, model=str(ref), services=services
    )
    assert pred.device == "cpu" and pred.precision == "fp32"
    for image, result in zip(images[:4], pred.results):
        expected = _pipeline_scores(ref, image, LABELS, "a photo of a {}.")
        ours = dict(zip(result.labels, result.scores.tolist()))
        assert set(ours) == set(LABELS)
        assert max(abs(ours[k] - expected[k]) for k in LABELS) <= 1e-5
        assert result.multi_label is (name == "siglip")
        if name == "clip":
            assert sum(ours.values()) == pytest.approx(1.0, abs=1e-5)
        # scores are not all alike, so the comparison above could fail
        assert max(ours.values()) - min(ours.values()) > 1e-3


def test_ensemble_is_the_normalised_mean_of_normalised_template_embeddings(tiny_model, models):
    bundle = bundle_for(models, tiny_model("clip"))
    tokenizer, model = bundle.processor.tokenizer, bundle.model
    labels = ("cat", "dog")
    got = class_embeddings(bundle, labels, ENSEMBLE7)
    for row, label in zip(got, labels):
        with torch.no_grad():
            enc = tokenizer([t.format(label) for t in ENSEMBLE7], padding=True, return_tensors="pt")
            emb = model.get_text_features(**enc).pooler_output
        emb = emb / emb.norm(dim=-1, keepdim=True)
        mean = emb.mean(dim=0)
        expected = (mean / mean.norm()).numpy()
        np.testing.assert_allclose(row, expected, atol=1e-6)
        assert np.linalg.norm(row) == pytest.approx(1.0, abs=1e-6)
    # Not merely the single-template embedding:
    single = class_embeddings(bundle, labels, ("a photo of a {}.",))
    assert np.abs(single - got).max() > 1e-3


def test_text_tower_runs_once_for_ten_images_and_label_edits_skip_the_image_tower(
    tiny_model, services, images
):
    ref = tiny_model("clip")
    bundle = bundle_for(services.models, ref)
    model = bundle.model
    with count_calls(model.text_model, model.vision_model.embeddings) as calls:
        for image in images:  # ten separate runs, as the window does image by image
            run_tool(
                CLASSIFY,
                [image],
                {"labels": "cat,dog,car", "templates": "ensemble7"},
                model=str(ref),
                services=services,
                params_from_text=True,
            )
        assert calls == [1, 10]
        # A label edit: one text pass for the new label only, no image forward pass.
        texts = []
        handle = model.text_model.register_forward_hook(
            lambda _m, _args, kwargs, _out: texts.append(kwargs["input_ids"].shape[0]), with_kwargs=True
        )
        try:
            run_tool(
                CLASSIFY,
                images,
                {"labels": "cat,dog,bird", "templates": "ensemble7"},
                model=str(ref),
                services=services,
                params_from_text=True,
            )
        finally:
            handle.remove()
        assert calls == [2, 10] and texts == [7]  # 'bird' with each of the 7 templates


def test_batch_preparation_fills_the_caches_for_per_image_runs(tiny_model, services, images):
    ref = str(tiny_model("clip"))
    bundle = bundle_for(services.models, ref)
    with count_calls(bundle.model.text_model, bundle.model.vision_model.embeddings) as calls:
        assert prepare_tool(
            CLASSIFY, images, {"labels": LABELS, "batch_size": 5}, model=ref, services=services
        )
        assert calls == [1, 2]
        for image in images:
            run_tool(CLASSIFY, [image], {"labels": LABELS}, model=ref, services=services)
        assert calls == [1, 2]


def test_images_go_through_the_model_in_batches_with_the_same_scores(tiny_model, services, models, images):
    ref = tiny_model("siglip")
    bundle = bundle_for(models, ref)
    with count_calls(bundle.model.vision_model.embeddings) as calls:
        batched = run_tool(
            CLASSIFY, images, {"labels": LABELS, "batch_size": 4}, model=str(ref), services=services
        )
        assert calls == [3]  # 10 images in batches of 4
    one_by_one = [
        run_tool(
            CLASSIFY,
            [im],
            {"labels": LABELS},
            model=str(ref),
            services=Services(models=models, features=ByteLRUCache(1 << 26)),
        ).results[0]
        for im in images[:3]
    ]
    for a, b in zip(batched.results, one_by_one):
        assert a.labels == b.labels
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_siglip_softmax_on_request_and_clip_refuses_independent_scores(tiny_model, services, images):
    pred = run_tool(
        CLASSIFY,
        images[:2],
        {"labels": LABELS, "multi_label": False},
        model=str(tiny_model("siglip")),
        services=services,
    )
    for r in pred.results:
        assert float(r.scores.sum()) == pytest.approx(1.0, abs=1e-5) and not r.multi_label
    with pytest.raises(ToolError, match="multi_label.*SigLIP") as err:
        run_tool(
            CLASSIFY,
            images[:1],
            {"labels": LABELS, "multi_label": "true"},
            model=str(tiny_model("clip")),
            services=services,
            params_from_text=True,
        )
    assert err.value.user_error


def test_labels_from_a_file_and_custom_templates(tiny_model, services, images, tmp_path):
    ref = str(tiny_model("clip"))
    label_file = tmp_path / "classes.txt"
    label_file.write_text("# my classes\ncat\n\ndog\ncar\n", encoding="utf-8")
    from_file = run_tool(
        CLASSIFY,
        images[:1],
        {"labels": str(label_file), "templates": "a photo of a {}."},
        model=ref,
        services=services,
        params_from_text=True,
    ).results[0]
    inline = run_tool(
        CLASSIFY,
        images[:1],
        {"labels": "cat, dog, car", "templates": "single"},
        model=ref,
        services=services,
        params_from_text=True,
    ).results[0]
    assert from_file.labels == inline.labels
    np.testing.assert_allclose(from_file.scores, inline.scores, atol=1e-7)
    two = run_tool(
        CLASSIFY,
        images[:1],
        {"labels": "cat,dog,car", "templates": "a {} | art of a {}"},
        model=ref,
        services=services,
        params_from_text=True,
    ).results[0]
    assert np.abs(np.sort(two.scores) - np.sort(inline.scores)).max() > 1e-4


@pytest.mark.parametrize(
    "params, message",
    [
        ({"labels": "cat,cat"}, "label 'cat' is given twice"),
        ({"labels": "cat,dog", "templates": "no placeholder"}, "needs exactly one {}"),
        ({"labels": " , "}, "at least one label"),
    ],
)
def test_bad_parameters_give_one_line_errors(tiny_model, services, images, params, message):
    with pytest.raises(ToolError, match=message) as err:
        run_tool(
            CLASSIFY,
            images[:1],
            params,
            model=str(tiny_model("clip")),
            services=services,
            params_from_text=True,
        )
    assert err.value.user_error and "\n" not in str(err.value)


def test_a_model_that_is_not_clip_is_refused(tiny_model, services, images):
    with pytest.raises(ToolError, match="'dinov2'.*CLIP and SigLIP") as err:
        run_tool(
            CLASSIFY, images[:1], {"labels": "cat,dog"}, model=str(tiny_model("dinov2")), services=services
        )
    assert err.value.user_error


def test_a_missing_tokenizer_package_names_what_to_install(tiny_model, images, monkeypatch):
    """google/siglip-* ship spiece.model + SiglipTokenizer only; without sentencepiece say what to install.

    sentencepiece is a dependency, so the ImportError transformers raises without it is simulated.
    """
    import vfmstudio.ml._loading as loading

    def no_sentencepiece(*args, **kwargs):
        raise ImportError(
            "SiglipTokenizer requires the SentencePiece library but it was not found in your "
            "environment. Check out the instructions on the installation page"
        )

    monkeypatch.setattr(loading, "load_processor", no_sentencepiece)
    fresh = Services(
        models=ByteLRUCache(1 << 30, name="models"), features=ByteLRUCache(1 << 20, name="features")
    )
    with pytest.raises(ToolError, match="pip install sentencepiece protobuf") as err:
        run_tool(CLASSIFY, images[:1], {"labels": "cat,dog"}, model=str(tiny_model("siglip")), services=fresh)
    assert err.value.user_error and "\n" not in str(err.value)


def test_cancel_between_image_batches_keeps_what_was_encoded(tiny_model, services, images):
    ref = str(tiny_model("clip"))
    bundle = bundle_for(services.models, ref)
    token = CancelToken()
    seen = []

    def on_progress(fraction, message):
        seen.append(message)
        if message.startswith("encoding images 5-"):  # the second batch of four
            token.cancel()

    with count_calls(bundle.model.vision_model.embeddings) as calls:
        with pytest.raises(Cancelled):
            run_tool(
                CLASSIFY,
                images,
                {"labels": LABELS, "batch_size": 4},
                model=ref,
                services=services,
                cancel=token,
                on_progress=on_progress,
            )
        assert calls == [1]
        run_tool(CLASSIFY, images, {"labels": LABELS, "batch_size": 4}, model=ref, services=services)
        assert calls == [3]  # the first four images were not encoded again
    assert any(m.startswith("encoding 4 labels x 1 templates") for m in seen)


def test_bf16_runs_keep_their_own_cache_entries(tiny_model, services, images):
    ref = str(tiny_model("clip"))
    fp32 = run_tool(CLASSIFY, images[:2], {"labels": LABELS}, model=ref, services=services, device="cpu")
    bf16 = run_tool(
        CLASSIFY, images[:2], {"labels": LABELS}, model=ref, services=services, device="cpu", precision="bf16"
    )
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    for a, b in zip(fp32.results, bf16.results):
        assert float(b.scores.sum()) == pytest.approx(1.0, abs=1e-5)
        # bf16 embeddings were computed, not the fp32 ones reused: scores differ a little
        scores_a, scores_b = dict(zip(a.labels, a.scores)), dict(zip(b.labels, b.scores))
        diff = max(abs(scores_a[k] - scores_b[k]) for k in LABELS)
        assert 0 < diff < 0.1
