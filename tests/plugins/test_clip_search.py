"""clip.search: ranking by text and example image, folders, and the embedding cache."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import vfmstudio_clip._search as search_module
from PIL import Image
from vfmstudio_clip import SEARCH
from vfmstudio_clip._model import get_bundle

from vfmstudio.core.context import RunContext
from vfmstudio.core.image import load_image
from vfmstudio.execution import ToolError, run_tool


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    rng = np.random.default_rng(3)
    for i in range(6):
        Image.fromarray((rng.random((40 + 5 * i, 60, 3)) * 255).astype(np.uint8)).save(root / f"img{i}.png")
    (root / "notes.txt").write_text("not an image")
    return root


@contextlib.contextmanager
def count_calls(module):
    calls = [0]
    handle = module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


def _reference_similarity(bundle, paths, query):
    """Cosine similarity from the HF model's own feature functions, one image at a time."""
    model, proc = bundle.model, bundle.processor
    with torch.no_grad():
        t = model.get_text_features(
            **proc.tokenizer([query], padding=True, return_tensors="pt")
        ).pooler_output[0]
        t = t / t.norm()
        sims = {}
        for p in paths:
            pv = proc.image_processor(images=Image.open(p), return_tensors="pt")["pixel_values"]
            e = model.get_image_features(pixel_values=pv).pooler_output[0]
            sims[p.name] = float(e @ t / e.norm())
    return sims


def test_ranks_images_by_cosine_similarity_to_the_query(tiny_model, services, folder):
    ref = str(tiny_model("clip"))
    images = [load_image(p) for p in sorted(folder.glob("*.png"))]
    ranking = run_tool(SEARCH, images, {"query": "a photo of a cat"}, model=ref, services=services).results[0]
    assert len(ranking.image_ids) == 6 and (np.diff(ranking.scores) <= 0).all()
    bundle = get_bundle(RunContext(tool_id="clip.search", model_ref=ref, models=services.models))
    expected = _reference_similarity(bundle, sorted(folder.glob("*.png")), "a photo of a cat")
    assert list(ranking.names) == sorted(expected, key=lambda n: -expected[n])
    for name, score in zip(ranking.names, ranking.scores):
        assert score == pytest.approx(expected[name], abs=1e-5)


def test_a_second_query_over_a_folder_costs_one_text_encoding(tiny_model, services, folder, monkeypatch):
    ref = str(tiny_model("siglip"))
    seed = load_image(folder / "img0.png")
    bundle = get_bundle(RunContext(tool_id="clip.search", model_ref=ref, models=services.models))
    decoded = []
    real_load = search_module.load_image
    monkeypatch.setattr(search_module, "load_image", lambda p, **kw: decoded.append(p) or real_load(p, **kw))
    with (
        count_calls(bundle.model.vision_model.embeddings) as vision,
        count_calls(bundle.model.text_model) as text,
    ):
        first = run_tool(
            SEARCH,
            [seed],
            {"query": "a dog", "folder": str(folder), "batch_size": 4},
            model=ref,
            services=services,
        ).results[0]
        assert len(first.image_ids) == 6  # the given image is not counted twice; notes.txt is skipped
        assert vision[0] == 2 and text[0] == 1 and len(decoded) == 5
        second = run_tool(
            SEARCH, [seed], {"query": "a red car", "folder": str(folder)}, model=ref, services=services
        ).results[0]
        assert vision[0] == 2 and text[0] == 2 and len(decoded) == 5  # nothing decoded or encoded again
    assert set(second.image_ids) == set(first.image_ids) and second.query == "a red car"


def test_example_image_ranks_itself_first_and_top_k_trims(tiny_model, services, folder):
    ref = str(tiny_model("clip"))
    images = [load_image(p) for p in sorted(folder.glob("*.png"))]
    ranking = run_tool(
        SEARCH, images, {"example": str(folder / "img4.png"), "top_k": 3}, model=ref, services=services
    ).results[0]
    assert ranking.names[0] == "img4.png" and ranking.scores[0] == pytest.approx(1.0, abs=1e-5)
    assert len(ranking.image_ids) == 3 and ranking.query == "like img4.png"
    both = run_tool(
        SEARCH,
        images,
        {"query": "a cat", "example": str(folder / "img4.png"), "example_weight": 0.5},
        model=ref,
        services=services,
    ).results[0]
    text_only = run_tool(SEARCH, images, {"query": "a cat"}, model=ref, services=services).results[0]
    score = dict(zip(both.names, both.scores))
    text_score = dict(zip(text_only.names, text_only.scores))
    assert score["img4.png"] == pytest.approx(0.5 * text_score["img4.png"] + 0.5, abs=1e-5)


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, "give a text query or an example image"),
        ({"query": "cat", "folder": "/no/such/folder"}, "parameter 'folder'.*is not a folder"),
        ({"example": "/no/such/image.png"}, "parameter 'example'"),
    ],
)
def test_bad_search_parameters(tiny_model, services, folder, params, message):
    with pytest.raises(ToolError, match=message) as err:
        run_tool(
            SEARCH,
            [load_image(folder / "img0.png")],
            params,
            model=str(tiny_model("clip")),
            services=services,
        )
    assert err.value.user_error
