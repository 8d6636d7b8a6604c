"""PaliGemma tools end to end on the tiny checkpoint, through ``run_tool`` and the CLI (the user paths)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from vfmstudio_paligemma import TOOLS, _generation, _mask_decoder, _model

from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.core.context import RunContext
from vfmstudio.core.image import load_image
from vfmstudio.core.jobs import JobRunner
from vfmstudio.core.results import Detections, Masks, Text
from vfmstudio.execution import Services, ToolError, prepare_tool, run_tool
from vfmstudio.testing.paligemma_reference import evaluator_masks
from vfmstudio.testing.tiny_paligemma import write_random_vae

TOOL = {t.id: t for t in TOOLS}
W, H = 60, 40


@pytest.fixture(scope="module")
def pg_dir(tiny_model):
    return tiny_model("paligemma")


@pytest.fixture(scope="module")
def pg(pg_dir):
    return _model.load(str(pg_dir), "cpu", "fp32")


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("pg-images") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def image(image_path):
    return load_image(image_path)


@pytest.fixture(scope="module")
def vae_path(tmp_path_factory):
    return write_random_vae(tmp_path_factory.mktemp("pg-vae") / "vae-oid.npz", seed=3)


def services() -> Services:
    return Services(
        models=ByteLRUCache(1 << 30, name="models"), features=ByteLRUCache(1 << 28, name="features")
    )


class ForceText(transformers.LogitsProcessor):
    """Test-only: makes greedy decoding emit ``ids`` then <eos>, whatever the random weights say."""

    def __init__(self, ids: list[int], prompt_len: int, eos: int):
        self.ids, self.prompt_len, self.eos = ids + [eos], prompt_len, eos

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_len
        target = self.ids[min(step, len(self.ids) - 1)]
        forced = torch.full_like(scores, float("-inf"))
        forced[:, target] = 0.0
        return forced


class BanEos(transformers.LogitsProcessor):
    def __init__(self, eos: int):
        self.eos = eos

    def __call__(self, input_ids, scores):
        scores[:, self.eos] = float("-inf")
        return scores


@pytest.fixture
def force_output(monkeypatch, pg):
    """``force_output("<loc0001>... cat")``: every generation in this test returns that text."""
    tokenizer = pg.processor.tokenizer

    def install(text: str) -> None:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == text  # the tokenizer round-trips it
        monkeypatch.setattr(
            _generation, "logits_processor_hooks", [lambda n: ForceText(ids, n, tokenizer.eos_token_id)]
        )

    return install


@pytest.fixture
def forward_calls():
    """Counts forward passes of the vision tower and the language model (any instance)."""
    calls: Counter[str] = Counter()

    def hook(module, args, output):
        name = type(module).__name__
        if name in ("SiglipVisionModel", "Gemma2Model"):
            calls[name] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    yield calls
    handle.remove()


# ---------------------------------------------------------------- the tiny checkpoint


def test_tiny_checkpoint_loads_with_the_real_classes_and_tokens(pg_dir):
    processor = transformers.PaliGemmaProcessor.from_pretrained(pg_dir)
    model = transformers.PaliGemmaForConditionalGeneration.from_pretrained(pg_dir)
    tok = processor.tokenizer
    ids = tok.convert_tokens_to_ids(
        ["<pad>", "<eos>", "<bos>", "<loc0000>", "<loc1023>", "<seg000>", "<seg127>"]
    )
    assert ids[:3] == [0, 1, 2] and len(set(ids)) == 7 and tok.unk_token_id not in ids
    assert processor.image_token_id == model.config.image_token_id == tok.convert_tokens_to_ids("<image>")
    assert model.config.text_config.model_type == "gemma2"
    assert model.config.vision_config.model_type == "siglip_vision_model"
    # loc/seg tokens survive decoding without special tokens; <image>/<eos> do not.
    text = "<loc0001><loc0002> cat ; <seg005>"
    assert (
        tok.decode(tok(text, add_special_tokens=False)["input_ids"] + [1], skip_special_tokens=True) == text
    )


# ---------------------------------------------------------------- generation


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # in the processor, numpy 2
@pytest.mark.parametrize("prompt", ["caption en", "detect cat ; dog", "answer en what is in the image"])
def test_generation_equals_a_direct_greedy_generate(pg, image, prompt):
    ours = _generation.generate(RunContext(tool_id="paligemma.prompt"), pg, image, prompt, 12)
    inputs = pg.processor(images=image.pixels, text="<image>" + prompt, return_tensors="pt")
    inputs.pop("labels")
    with torch.inference_mode():
        ref = pg.model.generate(**inputs, max_new_tokens=12, do_sample=False)
    ref_ids = ref[0, inputs["input_ids"].shape[1] :].tolist()
    if ref_ids and ref_ids[-1] == pg.processor.tokenizer.eos_token_id:
        ref_ids = ref_ids[:-1]
    assert list(ours.token_ids) == ref_ids
    assert len(set(ref_ids)) > 3  # the tiny model's output is not a trivial repetition
    assert ours.text == pg.processor.tokenizer.decode(ref_ids, skip_special_tokens=True).strip()


def test_generation_in_bf16_equals_a_direct_generate_in_bf16(pg_dir, image):
    pg16 = _model.load(str(pg_dir), "cpu", "bf16")
    assert next(pg16.model.parameters()).dtype == torch.bfloat16
    ours = _generation.generate(RunContext(tool_id="paligemma.caption"), pg16, image, "caption en", 8)
    inputs = _generation.prepare_inputs(pg16, image, "caption en")  # pixel values cast to bf16
    with torch.inference_mode():
        ref = pg16.model.generate(**inputs, max_new_tokens=8, do_sample=False)
    ref_ids = [
        t
        for t in ref[0, inputs["input_ids"].shape[1] :].tolist()
        if t != pg16.processor.tokenizer.eos_token_id
    ]
    assert list(ours.token_ids) == ref_ids and len(ref_ids) > 0


def test_text_streams_token_by_token(pg_dir, image):
    partials = []
    pred = run_tool(
        TOOL["paligemma.caption"],
        [image],
        {"max_new_tokens": 10},
        model=str(pg_dir),
        services=services(),
        on_partial=partials.append,
    )
    (result,) = pred.results
    assert isinstance(result, Text) and result.prompt == "caption en" and result.image_id == image.id
    assert all(isinstance(p, Text) and p.image_id == image.id for p in partials)
    assert len(partials) >= 2
    texts = [p.text for p in partials]
    assert texts[-1].strip() == result.text
    assert pred.device == "cpu" and pred.precision == "fp32"


def test_cancel_stops_within_one_step_and_the_model_stays_usable(
    pg_dir, pg, image, monkeypatch, forward_calls
):
    eos = pg.processor.tokenizer.eos_token_id
    token = CancelToken()
    at_cancel = {}

    class CancelAtStep(BanEos):
        """Cancels (as the window's thread would) while step 3 is being decoded."""

        def __call__(self, input_ids, scores):
            if input_ids.shape[1] - self.prompt_len == 3 and not token.cancelled:
                token.cancel()
                at_cancel["forwards"] = forward_calls["Gemma2Model"]
            return super().__call__(input_ids, scores)

    def hook(prompt_len):
        processor = CancelAtStep(eos)
        processor.prompt_len = prompt_len
        return processor

    monkeypatch.setattr(_generation, "logits_processor_hooks", [hook])
    svc = services()
    seen = []
    with pytest.raises(Cancelled):
        run_tool(
            TOOL["paligemma.prompt"],
            [image],
            {"prompt": "caption en", "max_new_tokens": 500},
            model=str(pg_dir),
            services=svc,
            cancel=token,
            on_partial=seen.append,
        )
    assert at_cancel["forwards"] == 4  # prefill + 3 decoding steps
    assert forward_calls["Gemma2Model"] - at_cancel["forwards"] <= 1
    assert len(seen) == 3  # nothing streamed after the cancel
    monkeypatch.setattr(_generation, "logits_processor_hooks", [lambda n: BanEos(eos)])
    pred = run_tool(
        TOOL["paligemma.prompt"],
        [image],
        {"prompt": "caption en", "max_new_tokens": 6},
        model=str(pg_dir),
        services=svc,
    )
    assert len(pred.results[0].text) > 0


def test_cancel_from_the_window_thread_through_the_job_runner(pg_dir, pg, image, monkeypatch, forward_calls):
    """The window's path: generation on the inference thread, cancel from another thread mid-way."""
    monkeypatch.setattr(
        _generation, "logits_processor_hooks", [lambda n: BanEos(pg.processor.tokenizer.eos_token_id)]
    )
    svc = services()
    streamed, started = [], threading.Event()

    def on_partial(update):
        streamed.append(update.value)
        if len(streamed) >= 3:
            started.set()

    def job(jc):
        return run_tool(
            TOOL["paligemma.prompt"],
            [image],
            {"prompt": "caption en", "max_new_tokens": 500},
            model=str(pg_dir),
            services=svc,
            cancel=jc.cancel,
            on_partial=jc.partial,
        )

    runner = JobRunner()
    try:
        handle = runner.submit(job, key="view-1", on_partial=on_partial)
        assert started.wait(120)
        before = forward_calls["Gemma2Model"]
        handle.cancel()
        result = handle.result(timeout=120)
        assert result.status == "cancelled"
        assert forward_calls["Gemma2Model"] - before <= 1  # at most the step that was running
        assert all(isinstance(t, Text) for t in streamed)
    finally:
        runner.shutdown()


def test_reruns_reuse_the_generation_and_new_prompts_reuse_the_image_features(pg_dir, image, forward_calls):
    svc = services()

    def run(tool, **params):
        forward_calls.clear()
        run_tool(TOOL[tool], [image], {"max_new_tokens": 8, **params}, model=str(pg_dir), services=svc)
        return dict(forward_calls)

    first = run("paligemma.detect", classes="cat ; dog")
    assert first["SiglipVisionModel"] == 1 and first["Gemma2Model"] >= 1
    assert run("paligemma.detect", classes="cat ; dog") == {}  # same inputs: no forward pass at all
    other = run("paligemma.ask", question="what is this")
    assert "SiglipVisionModel" not in other and other["Gemma2Model"] >= 1


def test_batched_preparation_encodes_images_together_and_runs_reuse_it(
    pg_dir, pg, image, tmp_path, forward_calls
):
    others = []
    for i, size in enumerate([(30, 50), (64, 64)]):
        path = tmp_path / f"other{i}.png"
        Image.fromarray(np.random.default_rng(10 + i).integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
        others.append(load_image(path))
    images = [image, *others]
    params = {"max_new_tokens": 6}
    plain = [
        run_tool(TOOL["paligemma.caption"], [im], params, model=str(pg_dir), services=services())
        for im in images
    ]
    svc = services()
    forward_calls.clear()
    assert prepare_tool(TOOL["paligemma.caption"], images, params, model=str(pg_dir), services=svc)
    assert forward_calls == {"SiglipVisionModel": 1}  # one batched pass, no generation
    forward_calls.clear()
    prepared = [
        run_tool(TOOL["paligemma.caption"], [im], params, model=str(pg_dir), services=svc) for im in images
    ]
    assert "SiglipVisionModel" not in forward_calls
    for im in images:  # ``pg`` has the same weights, device and precision, hence the same cache keys
        with torch.inference_mode():
            single = pg.model.get_image_features(_generation.prepare_inputs(pg, im, "x")["pixel_values"])
        torch.testing.assert_close(
            svc.features.get(_generation._features_key(pg, im)), single.pooler_output, rtol=1e-5, atol=1e-5
        )
    for a, b in zip(plain, prepared):
        assert a.results[0].text and a.results[0].equals(b.results[0])


# ---------------------------------------------------------------- forced outputs, the user path


def test_forced_detection_output_gives_exact_boxes_and_labels(pg_dir, image, force_output):
    force_output(
        "<loc0256><loc0128><loc0768><loc0512> cat ; <loc0000><loc0000><loc1023><loc1023> hot dog ; "
        "<loc0010><loc0020><loc0030>"
    )  # the last object is cut short: skipped
    pred = run_tool(
        TOOL["paligemma.detect"],
        [image],
        {"classes": "cat ; hot dog"},
        model=str(pg_dir),
        services=services(),
    )
    (det,) = pred.results
    assert isinstance(det, Detections) and det.labels == ("cat", "hot dog")
    np.testing.assert_allclose(
        det.boxes_xyxy, [[7.5, 10.0, 30.0, 30.0], [0.0, 0.0, 1023 / 1024 * W, 1023 / 1024 * H]]
    )
    np.testing.assert_allclose(det.scores, [1.0, 1.0])  # forced tokens have probability 1
    assert det.image_id == image.id


def test_forced_detection_without_a_label_takes_the_only_class(pg_dir, image, force_output):
    force_output("<loc0000><loc0000><loc0512><loc0512>")
    pred = run_tool(
        TOOL["paligemma.detect"], [image], {"classes": "cat"}, model=str(pg_dir), services=services()
    )
    assert pred.results[0].labels == ("cat",)


def test_forced_segmentation_output_gives_exact_masks(pg_dir, image, vae_path, force_output):
    seg_a, seg_b = list(range(16)), [127 - 3 * i for i in range(16)]
    force_output(
        "<loc0256><loc0128><loc0768><loc0512>" + "".join(f"<seg{v:03d}>" for v in seg_a) + " cat ; "
        "<loc0100><loc0500><loc0900><loc1000>" + "".join(f"<seg{v:03d}>" for v in seg_b) + " dog ; "
        "<loc0001><loc0002><loc0003><loc0004><seg001>"
    )  # incomplete mask: skipped
    pred = run_tool(
        TOOL["paligemma.segment"],
        [image],
        {"classes": "cat ; dog", "vae_path": str(vae_path)},
        model=str(pg_dir),
        services=services(),
    )
    (masks,) = pred.results
    assert isinstance(masks, Masks) and masks.labels == ("cat", "dog") and masks.size == (H, W)
    boxes = np.array(
        [[7.5, 10.0, 30.0, 30.0], [500 / 1024 * W, 100 / 1024 * H, 1000 / 1024 * W, 900 / 1024 * H]]
    )
    np.testing.assert_allclose(masks.boxes_xyxy, boxes, rtol=1e-6)
    decoder = _mask_decoder.load_decoder(vae_path)
    logits = _mask_decoder.decode_logits(decoder, np.array([seg_a, seg_b]))
    want = evaluator_masks(logits, [(256, 128, 768, 512), (100, 500, 900, 1000)], H, W)
    np.testing.assert_array_equal(masks.masks, np.stack(want))
    assert masks.masks[0].any() and not masks.masks[0][:10].any() and not masks.masks[0][:, 30:].any()
    covered = run_tool(
        TOOL["paligemma.segment"],
        [image],
        {"classes": "cat ; dog", "vae_path": str(vae_path), "paste": "cover"},
        model=str(pg_dir),
        services=services(),
    )
    np.testing.assert_array_equal(covered.results[0].masks, _mask_decoder.paste_masks(logits, boxes, W, H))


def test_a_segment_whose_box_is_empty_in_pixels_is_dropped_as_the_evaluator_does(
    pg_dir, image, vae_path, force_output
):
    segs = "".join(f"<seg{v:03d}>" for v in range(16))
    # On a 60x40 image, y 100..110 / 1023 * 40 truncates to 3..4 (kept) and x 10..15 / 1023 * 60 to 0..0.
    force_output(
        f"<loc0100><loc0010><loc0110><loc0015>{segs} cat ; <loc0100><loc0100><loc0900><loc0900>{segs} dog"
    )
    pred = run_tool(
        TOOL["paligemma.segment"],
        [image],
        {"classes": "cat ; dog", "vae_path": str(vae_path)},
        model=str(pg_dir),
        services=services(),
    )
    assert pred.results[0].labels == ("dog",)


class ForceTextWithRivals(ForceText):
    """Forced tokens at logit 0 and, at step k, a rival token at logit ``rivals[k]`` < 0: greedy still picks
    the forced token, with probability 1 / (1 + exp(rivals[k]))."""

    def __init__(self, ids, prompt_len, eos, rival_id, rivals):
        super().__init__(ids, prompt_len, eos)
        self.rival_id, self.rivals = rival_id, rivals

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_len
        forced = super().__call__(input_ids, scores)
        forced[:, self.rival_id] = self.rivals[min(step, len(self.rivals) - 1)]
        return forced


def test_detection_scores_are_the_geometric_mean_of_their_loc_and_label_token_probabilities(
    pg_dir, pg, image, monkeypatch
):
    tokenizer = pg.processor.tokenizer
    text = "<loc0256><loc0128><loc0768><loc0512> cat ; <loc0000><loc0000><loc1023><loc1023> hot dog"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    rivals = list(np.random.default_rng(0).uniform(-4.0, -0.05, size=len(ids) + 1))
    rival_id = tokenizer.convert_tokens_to_ids("<seg127>")
    monkeypatch.setattr(
        _generation,
        "logits_processor_hooks",
        [lambda n: ForceTextWithRivals(ids, n, tokenizer.eos_token_id, rival_id, rivals)],
    )
    pred = run_tool(
        TOOL["paligemma.detect"],
        [image],
        {"classes": "cat ; hot dog"},
        model=str(pg_dir),
        services=services(),
    )
    # Which steps belong to which object, from the token pieces: four locs open an object, the pieces up
    # to ';' that are not blanks are its label.
    pieces = tokenizer.convert_ids_to_tokens(ids)
    groups: list[list[int]] = []
    for k, piece in enumerate(pieces):
        if piece.startswith("<loc"):
            if not groups or len(groups[-1]) >= 4 and not pieces[k - 1].startswith("<loc"):
                groups.append([])
            groups[-1].append(k)
        elif piece not in ("▁", ";") and groups:
            groups[-1].append(k)
    logp = -np.log1p(np.exp(np.asarray(rivals)))
    want = [np.exp(logp[g].mean()) for g in groups]
    assert [len(g) for g in groups] == [5, 8]
    np.testing.assert_allclose(pred.results[0].scores, want, rtol=1e-5)
    assert 0.2 < min(want) < max(want) < 1.0


def test_segmentation_without_objects_needs_no_decoder_weights(pg_dir, image, force_output, monkeypatch):
    monkeypatch.delenv(_mask_decoder.VAE_ENV, raising=False)
    force_output("nothing here")
    pred = run_tool(
        TOOL["paligemma.segment"], [image], {"classes": "cat"}, model=str(pg_dir), services=services()
    )
    assert len(pred.results[0]) == 0 and pred.results[0].size == (H, W)
    (why,) = pred.of_type(Text)  # "0 items" comes with the reason: what the model said instead
    assert "nothing here" in why.text and "<seg>" in why.text


# ---------------------------------------------------------------- refusals with one clear line


def test_gated_model_offline_explains_the_licence_and_token(isolated_hub, image):
    with pytest.raises(ToolError) as info:
        run_tool(TOOL["paligemma.caption"], [image], {}, services=services())
    message = str(info.value)
    assert info.value.user_error and "\n" not in message
    for part in ("google/paligemma2-3b-mix-224", "gated", "licence", "HF_TOKEN", "vfmstudio models pull"):
        assert part in message


def test_a_hub_refusal_says_accept_the_licence_and_configure_a_token(isolated_hub, image, monkeypatch):
    import vfmstudio.ml._loading as loading
    from vfmstudio.ml.errors import GatedModelError

    monkeypatch.setattr(loading, "_device_free_bytes", lambda device: 1 << 40)

    def refuse(ref, **kwargs):  # what ml.hub raises when the hub answers 401/403 for a gated repo
        raise GatedModelError(ref.repo_id)

    monkeypatch.setattr(loading, "resolve_local_path", refuse)
    with pytest.raises(ToolError) as info:
        run_tool(TOOL["paligemma.detect"], [image], {"classes": "cat"}, device="cpu", services=services())
    message = str(info.value)
    assert info.value.user_error and "\n" not in message
    for part in ("gated", "licence", "HF_TOKEN", "hf auth login", "google/paligemma2-3b-mix-224"):
        assert part in message


def test_a_model_too_large_for_the_device_is_refused_before_loading(pg_dir, image, monkeypatch):
    import vfmstudio.ml._loading as loading

    monkeypatch.setattr(loading, "_device_free_bytes", lambda device: 64 * 1024 * 1024)

    def never(*args, **kwargs):
        raise AssertionError("weights must not be read when they cannot fit")

    monkeypatch.setattr(transformers.PaliGemmaForConditionalGeneration, "from_pretrained", never)
    with pytest.raises(ToolError, match="needs about .* but only 64.0 MiB is available on cpu") as info:
        run_tool(TOOL["paligemma.caption"], [image], {}, model=str(pg_dir), services=services())
    assert info.value.user_error


def test_a_known_model_too_large_is_refused_before_any_download(isolated_hub, image, monkeypatch):
    import vfmstudio.ml._loading as loading

    monkeypatch.setattr(loading, "_device_free_bytes", lambda device: 2 * 1024**3)
    with pytest.raises(ToolError) as info:  # 3B parameters in fp32 on the CPU: about 12 GB
        run_tool(TOOL["paligemma.caption"], [image], {}, device="cpu", services=services())
    assert "google/paligemma2-3b-mix-224' needs about 13.2 GiB" in str(info.value)
    assert "only 2.0 GiB is available on cpu" in str(info.value) and "bf16" in str(info.value)


@pytest.mark.parametrize("tool, params, match", [
    ("paligemma.detect", {"classes": " ; "}, "parameter 'classes'"),
    ("paligemma.ask", {"question": "  "}, "parameter 'question'"),
    ("paligemma.caption", {"lang": "en fr"}, "parameter 'lang'"),
    ("paligemma.detect", {}, "parameter 'classes' is required"),
])  # fmt: skip
def test_bad_parameters_are_named(pg_dir, image, tool, params, match):
    with pytest.raises(ToolError, match=match) as info:
        run_tool(TOOL[tool], [image], params, model=str(pg_dir), services=services())
    assert info.value.user_error


# ---------------------------------------------------------------- registration and the CLI


def test_listing_the_tools_does_not_import_torch():
    code = (
        "import sys\nfrom vfmstudio._plugin_host import PluginHost\n"
        "host = PluginHost(builtins=('vfmstudio_paligemma',), entry_points=False).load()\n"
        "print(sorted(t for t in host.tools if t.startswith('paligemma.')))\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sorted(TOOL))


def _cli_json(capsys, *argv) -> dict:
    from vfmstudio.cli import main

    assert main(["run", *argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("tool, params", [
    ("paligemma.caption", ["length=long"]),
    ("paligemma.ask", ["question=what is in the image"]),
    ("paligemma.ocr", []),
    ("paligemma.prompt", ["prompt=cap en"]),
    ("paligemma.segment", ["classes=cat"]),
])  # fmt: skip
def test_cli_runs_every_tool(capsys, pg_dir, image_path, vae_path, monkeypatch, tool, params):
    monkeypatch.setenv(_mask_decoder.VAE_ENV, str(vae_path))
    argv = [tool, str(image_path), "--model", str(pg_dir), "--device", "cpu"]
    for p in [*params, "max_new_tokens=6"]:
        argv += ["--param", p]
    out = _cli_json(capsys, *argv)
    assert out["tool"] == tool and out["device"] == "cpu"
    assert [r["type"] for r in out["results"]] == list(TOOL[tool].returns)


def test_cli_forced_detection_json(capsys, pg_dir, image_path, force_output):
    force_output("<loc0256><loc0128><loc0768><loc0512> cat ; <loc0000><loc0000><loc0512><loc0512> dog")
    out = _cli_json(
        capsys, "paligemma.detect", str(image_path), "--model", str(pg_dir), "--param", "classes=cat ; dog"
    )
    (det,) = out["results"]
    assert det["labels"] == ["cat", "dog"]
    np.testing.assert_allclose(det["boxes_xyxy"], [[7.5, 10.0, 30.0, 30.0], [0.0, 0.0, 30.0, 20.0]])


def test_the_installed_command_runs_detect(pg_dir, image_path, tmp_path):
    exe = Path(sys.executable).with_name("vfmstudio")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [
            str(exe),
            "run",
            "paligemma.detect",
            str(image_path),
            "--model",
            str(pg_dir),
            "--param",
            "classes=cat ; dog",
            "--param",
            "max_new_tokens=8",
            "--json",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    prediction = json.loads(out.stdout)
    assert prediction["tool"] == "paligemma.detect" and prediction["results"][0]["type"] == "detections"
    assert prediction["params"]["classes"] == ["cat", "dog"]
    assert (tmp_path / "out" / "prediction.json").is_file()


def test_detection_scores_filter_what_is_accepted_as_labels(pg_dir, pg, image, monkeypatch):
    """The scores reach accepting (the window's Accept, `export --min-score`): low ones are dropped."""
    from vfmstudio.core.annotations import accept_prediction

    tokenizer = pg.processor.tokenizer
    text = "<loc0256><loc0128><loc0768><loc0512> cat ; <loc0000><loc0000><loc1023><loc1023> dog"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    rivals = [-6.0] * 6 + [-0.01] * (len(ids) - 6 + 1)  # sure of the first object, unsure of the second
    rival_id = tokenizer.convert_tokens_to_ids("<seg127>")
    monkeypatch.setattr(
        _generation,
        "logits_processor_hooks",
        [lambda n: ForceTextWithRivals(ids, n, tokenizer.eos_token_id, rival_id, rivals)],
    )
    pred = run_tool(
        TOOL["paligemma.detect"], [image], {"classes": "cat ; dog"}, model=str(pg_dir), services=services()
    )
    scores = pred.results[0].scores
    assert scores[0] > 0.99 and 0.4 < scores[1] < 0.6
    accepted = accept_prediction(pred, "photo.png", min_score=0.9).annotations
    assert [a.label for a in accepted] == ["cat"] and accepted[0].provenance.score == pytest.approx(scores[0])
