"""sam.text (SAM 3 concept prompts) on a tiny random SAM 3 checkpoint, against the transformers reference.

The reference is ``Sam3Model`` called on the pixel values and tokens ``Sam3Processor`` would make,
then ``Sam3ImageProcessor.post_process_instance_segmentation``. Its module imports torchvision (for
``batched_nms``, which that function does not use), so the test imports it with a stand-in for that
one name. Preprocessing is checked against transformers' PIL backend run with the checkpoint's
config (the same resize, rescale and normalise), and against the processor's documented torch steps.
"""

from __future__ import annotations

import importlib
import json
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers
from PIL import Image
from transformers.image_processing_backends import PilBackend

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.image import LoadedImage
from vfmstudio.execution import ToolError, prepare_tool, run_tool
from vfmstudio.testing.tiny_sam3 import IMAGE_SIZE, NUM_QUERIES, TEXT_LENGTH

SIZES = [(90, 150), (130, 70)]  # (H, W): landscape and portrait


@pytest.fixture(scope="module")
def host():
    return PluginHost(builtins=("vfmstudio_sam",), entry_points=False).load()


@pytest.fixture(scope="module")
def reference_postprocess():
    """``Sam3ImageProcessor.post_process_instance_segmentation``, imported without torchvision."""
    name = "transformers.models.sam3.image_processing_sam3"
    stubs = {}
    for mod in ("torchvision", "torchvision.ops", "torchvision.ops.boxes"):
        stubs[mod] = types.ModuleType(mod)
    stubs["torchvision.ops.boxes"].batched_nms = None  # automatic-mask NMS: not on this path
    saved = {k: sys.modules.get(k) for k in [*stubs, name]}
    sys.modules.update(stubs)
    try:
        module = importlib.import_module(name)
    finally:
        for k, v in saved.items():  # the stand-in must not outlive the import
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return lambda outputs, **kw: module.Sam3ImageProcessor.post_process_instance_segmentation(
        None, outputs, **kw
    )


def photo(height: int, width: int, seed: int = 0) -> LoadedImage:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    return LoadedImage(
        path=None,
        pixels=pixels,
        id=f"photo-{height}x{width}-{seed}",
        width=width,
        height=height,
        format="PNG",
        metadata={},
    )


def run(host, services, image, folder, **params):
    return run_tool(
        host.tools["sam.text"],
        [image],
        params,
        model=str(folder),
        device="cpu",
        precision="fp32",
        services=services,
    )


def processor_torch_steps(image: LoadedImage, config: dict) -> torch.Tensor:
    """Sam3ImageProcessor's steps on a CPU: torchvision's uint8 resize (bilinear, antialiased) is
    ``F.interpolate`` on the uint8 tensor; then one fused rescale-and-normalise."""
    x = torch.from_numpy(image.pixels.copy()).permute(2, 0, 1)[None]
    size = (config["size"]["height"], config["size"]["width"])
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(config["image_mean"]) / config["rescale_factor"]
    std = torch.tensor(config["image_std"]) / config["rescale_factor"]
    return (x.float() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def reference(folder, image: LoadedImage, text: str, threshold: float, postprocess):
    config = json.loads((folder / "preprocessor_config.json").read_text())
    model = transformers.Sam3Model.from_pretrained(folder).eval()
    tokenizer = transformers.CLIPTokenizer.from_pretrained(folder)
    tokens = tokenizer(text, padding="max_length", max_length=TEXT_LENGTH, return_tensors="pt")
    with torch.no_grad():
        out = model(pixel_values=processor_torch_steps(image, config), **tokens)
    (result,) = postprocess(
        out, threshold=threshold, mask_threshold=0.5, target_sizes=[(image.height, image.width)]
    )
    all_scores = (out.pred_logits.sigmoid() * out.presence_logits.sigmoid())[0]
    return result, all_scores


# ---------------------------------------------------------------------------------------------- checkpoint


def test_tiny_sam3_loads_like_the_hub_repo(tiny_model):
    folder = tiny_model("sam3")
    model = transformers.Sam3Model.from_pretrained(folder)
    assert model.config.vision_config.backbone_config.image_size == IMAGE_SIZE
    assert model.config.detr_decoder_config.num_queries == NUM_QUERIES
    tokenizer = transformers.CLIPTokenizer.from_pretrained(folder)
    ids = tokenizer("a red car")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id and len(ids) == 5
    assert not [name for name, p in model.named_parameters() if not p.detach().abs().sum()]
    assert not list(folder.glob("*.bin")) and (folder / "model.safetensors").is_file()


# ---------------------------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("size", SIZES)
def test_preprocessing_equals_the_processor_steps_and_the_pil_backend(tiny_model, size):
    from vfmstudio_sam import _concept
    from vfmstudio_sam._model import _read_checkpoint

    from vfmstudio.plugin_api import parse_model_ref

    folder, image = tiny_model("sam3"), photo(*size)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    ckpt = _read_checkpoint(parse_model_ref(str(folder)))
    assert (ckpt.family, ckpt.input_size, ckpt.mean, ckpt.std) == ("sam3", IMAGE_SIZE, (0.5,) * 3, (0.5,) * 3)
    ours = _concept.pixel_values(_concept.ConceptModel(ckpt, None, None, "cpu", "fp32"), image)
    assert ours.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, processor_torch_steps(image, config), rtol=0, atol=1e-6)
    # transformers' PIL backend with the same config resizes in PIL (uint8): at most one grey level apart.
    pil = PilBackend(
        **{k: v for k, v in config.items() if not k.endswith("_type") and k != "processor_class"}
    )
    slow = torch.as_tensor(np.stack(pil.preprocess([image.pixels], return_tensors="np")["pixel_values"]))
    step = 1 / 255 / 0.5
    assert (ours - slow).abs().max() <= step + 1e-6
    assert (ours - slow).abs().mean() < 0.1 * step


# ---------------------------------------------------------------------------------------------- equality


@pytest.mark.parametrize("size", SIZES)
def test_text_results_equal_the_reference_model_and_postprocessing(
    host, services, tiny_model, reference_postprocess, size
):
    folder, image = tiny_model("sam3"), photo(*size)
    _, all_scores = reference(folder, image, "red car", 0.0, reference_postprocess)
    middle = all_scores.sort().values[NUM_QUERIES // 2 - 1 : NUM_QUERIES // 2 + 1]
    threshold = float(middle.mean())  # half the instances kept, half dropped, no score near the cut
    ref, _ = reference(folder, image, "red car", threshold, reference_postprocess)
    assert 0 < len(ref["scores"]) < NUM_QUERIES

    (ours,) = run(host, services, image, folder, text="red car", threshold=threshold).results
    order = torch.argsort(ref["scores"], descending=True, stable=True).numpy()
    assert len(ours) == len(order)
    np.testing.assert_allclose(ours.scores, ref["scores"].numpy()[order], rtol=0, atol=1e-5)
    assert (np.diff(ours.scores) <= 0).all()  # best first
    # Boxes: the reference's, clipped to the image (the detector may reach past the border).
    w, h = image.width, image.height
    ref_boxes = ref["boxes"].numpy()[order].clip(0, [w, h, w, h])
    np.testing.assert_allclose(ours.boxes_xyxy, ref_boxes, rtol=0, atol=1e-4)
    ref_masks = ref["masks"].numpy()[order].astype(bool)
    assert ours.masks.shape == (len(order), h, w)
    assert (ours.masks == ref_masks).all()  # IoU 1.0
    assert ours.masks.any() and not ours.masks.all()
    assert ours.labels == ("red car",) * len(order)


def test_a_label_names_the_class_and_another_concept_changes_the_result(host, services, tiny_model):
    folder, image = tiny_model("sam3"), photo(*SIZES[0])
    car = run(host, services, image, folder, text="red car", threshold=0.0, label="vehicle").results[0]
    dog = run(host, services, image, folder, text="dog", threshold=0.0).results[0]
    assert len(car) == len(dog) == NUM_QUERIES  # threshold 0 keeps every query
    assert set(car.labels) == {"vehicle"} and set(dog.labels) == {"dog"}
    assert not np.allclose(car.scores, dog.scores)


def test_a_second_concept_on_the_same_image_runs_no_vision_encoder(host, services, tiny_model, monkeypatch):
    # Imported by its full name: through the lazy package, a missing torchvision gives placeholders.
    modeling_sam3 = importlib.import_module("transformers.models.sam3.modeling_sam3")
    calls = {"vision": 0, "text": 0}
    for cls, key in (
        (modeling_sam3.Sam3VisionModel, "vision"),
        (transformers.CLIPTextModelWithProjection, "text"),
    ):
        original = cls.forward

        def forward(self, *args, _original=original, _key=key, **kwargs):
            calls[_key] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "forward", forward)
    folder, image = tiny_model("sam3"), photo(*SIZES[1])
    run(host, services, image, folder, text="car")
    run(host, services, image, folder, text="dog")
    assert calls == {"vision": 1, "text": 2}
    run(host, services, photo(*SIZES[1], seed=3), folder, text="car")
    assert calls == {"vision": 2, "text": 3}
    # prepare (batch runs, the window's prefetch) fills the same cache entries.
    fresh = [photo(*SIZES[0], seed=s) for s in (5, 6)]
    prepare_tool(
        host.tools["sam.text"],
        fresh,
        {"text": "car"},
        model=str(folder),
        device="cpu",
        precision="fp32",
        services=services,
    )
    assert calls == {"vision": 4, "text": 3}
    for image in fresh:
        run(host, services, image, folder, text="car")
    assert calls == {"vision": 4, "text": 5}


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("family", "params", "message"),
    [
        ("sam", {"text": "car"}, "takes no text prompt; concept prompts need a SAM 3 checkpoint"),
        ("sam2", {"text": "car"}, "takes no text prompt; concept prompts need a SAM 3 checkpoint"),
        ("sam3", {"text": "   "}, "parameter 'text': give the name of a concept"),
        ("sam3", {"text": " ".join(["car"] * 40)}, "parameter 'text': 42 tokens; SAM 3 reads at most 32"),
    ],
)
def test_bad_text_prompts_are_refused_in_one_line(host, services, tiny_model, family, params, message):
    with pytest.raises(ToolError) as info:
        run(host, services, photo(*SIZES[0]), tiny_model(family), **params)
    assert info.value.user_error and message in str(info.value) and "\n" not in str(info.value)


def test_point_prompts_on_sam3_point_to_sam_text(host, services, tiny_model):
    with pytest.raises(ToolError) as info:
        run_tool(
            host.tools["sam.segment"],
            [photo(*SIZES[0])],
            {"points": "10,10"},
            model=str(tiny_model("sam3")),
            device="cpu",
            precision="fp32",
            services=services,
        )
    assert info.value.user_error and "takes concept prompts through sam.text" in str(info.value)


# ---------------------------------------------------------------------------------------------- CLI


def test_sam_text_from_the_cli_prints_masks_and_refuses_bad_text_with_exit_2(tiny_model, tmp_path, capsys):
    from vfmstudio.cli import main
    from vfmstudio.core.results import Prediction

    picture = tmp_path / "street.png"
    Image.fromarray(photo(*SIZES[0]).pixels).save(picture)
    argv = ["run", "sam.text", str(picture), "--model", str(tiny_model("sam3")), "--device", "cpu"]
    assert main([*argv, "--param", "text=bus", "--param", "threshold=0", "--json"]) == 0
    (masks,) = Prediction.from_json(json.loads(capsys.readouterr().out)).results
    assert masks.kind == "masks" and len(masks) == NUM_QUERIES and set(masks.labels) == {"bus"}
    assert masks.masks.shape == (NUM_QUERIES, *SIZES[0])
    assert main([*argv, "--param", "text=" + "bus " * 40]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "SAM 3 reads at most 32" in err and "\n" not in err


def test_a_sam3_folder_without_preprocessor_config_uses_sam3_defaults_or_the_nested_processor_config(
    tiny_model, tmp_path
):
    from vfmstudio_sam._model import _read_checkpoint

    from vfmstudio.plugin_api import parse_model_ref

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((tiny_model("sam3") / name).read_bytes())
    ckpt = _read_checkpoint(parse_model_ref(str(bare)))
    # The ViT's side from config.json, SAM 3's mean and std (not SAM 1's 1024 and ImageNet statistics).
    assert (ckpt.family, ckpt.input_size, ckpt.mean, ckpt.std) == ("sam3", IMAGE_SIZE, (0.5,) * 3, (0.5,) * 3)
    nested = {"image_processor": {"size": {"height": 98, "width": 98}, "image_mean": [0.4, 0.4, 0.4]}}
    (bare / "processor_config.json").write_text(json.dumps(nested))
    ckpt = _read_checkpoint(parse_model_ref(str(bare)))
    assert (ckpt.input_size, ckpt.mean, ckpt.std) == (98, (0.4,) * 3, (0.5,) * 3)
