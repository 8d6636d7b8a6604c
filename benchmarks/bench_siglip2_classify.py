"""clip.classify on SigLIP 2 against transformers' zero-shot-image-classification pipeline, in one process.

Random weights with the shapes of google/siglip2-base-patch16-naflex (or, with ``--kind fixed``,
-patch16-224): ViT-B/16 image tower (256 patches), 12-layer text tower, texts padded to 64 tokens.
The text embedding table uses the small test Gemma tokenizer's vocabulary instead of Gemma's 256k
(a lookup: the cost does not depend on its size). Both sides classify the same images with the same
labels and template; the pipeline runs the text tower for every image, clip.classify encodes the labels
once and the images in batches. Prints both times, the speed ratio and the largest probability difference.

    .venv/bin/python benchmarks/bench_siglip2_classify.py [--kind naflex|fixed] [--images 64] [--labels 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch
from bench_clip_classify import LABELS, make_images, pipeline_vs_classify
from PIL import Image

from vfmstudio.testing import tiny_siglip2

VISION = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "patch_size": 16,
}
TEXT = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 64,
    "projection_size": 768,
}


def build_siglip2_base(dest: Path, kind: str, seed: int = 0) -> Path:
    """Random weights with the shapes of google/siglip2-base-patch16-{naflex,224} and the test tokenizer."""
    import transformers

    tokenizer = tiny_siglip2._tokenizer(transformers.GemmaTokenizer)
    text = {**tiny_siglip2._text_config(len(tokenizer)), **TEXT}
    torch.manual_seed(seed)
    if kind == "naflex":
        config = transformers.Siglip2Config(text_config=text, vision_config={**VISION, "num_patches": 256})
        model = transformers.Siglip2Model(config)
        image_processor = transformers.Siglip2ImageProcessorPil(max_num_patches=256, patch_size=16)
        processor = transformers.Siglip2Processor(image_processor=image_processor, tokenizer=tokenizer)
    else:
        config = transformers.SiglipConfig(text_config=text, vision_config={**VISION, "image_size": 224})
        model = transformers.SiglipModel(config)
        image_processor = transformers.SiglipImageProcessorPil(size={"height": 224, "width": 224}, resample=2)
        processor = transformers.SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.eval().save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("naflex", "fixed"), default="naflex")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--repeat", type=int, default=1, help="alternating runs of each; the best time counts"
    )
    args = parser.parse_args()
    labels = LABELS[: args.labels]
    template = "a photo of a {}."

    from transformers import pipeline
    from vfmstudio_clip import CLASSIFY

    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.core.image import load_image
    from vfmstudio.execution import Services, run_tool

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_siglip2_base(root / "siglip2-b16", args.kind)
        paths = make_images(root, args.images)
        images = [load_image(p) for p in paths]
        pil = [Image.open(p).convert("RGB") for p in paths]

        # Models loaded before timing on both sides; our feature cache starts empty.
        pipe = pipeline("zero-shot-image-classification", model=str(model_dir), device="cpu")
        models = ByteLRUCache(8 << 30, name="models")
        run_tool(
            CLASSIFY,
            images[:1],
            {"labels": ("warm-up",)},
            model=str(model_dir),
            services=Services(models=models, features=ByteLRUCache(1 << 20)),
        )
        load_before = os.getloadavg()[0]
        t_hf, t_ours, ours, diff = pipeline_vs_classify(
            pipe, pil, images, labels, template, str(model_dir), models, args.batch_size, args.repeat
        )
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"device {ours.device}, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(
        f"clip.classify, SigLIP 2 B/16 {args.kind} (random weights), {args.images} images x {len(labels)} labels, "
        f"batch {args.batch_size}, best of {args.repeat}"
    )
    print(f"  HF pipeline     {t_hf:7.2f} s  ({1000 * t_hf / args.images:6.1f} ms/image)")
    print(f"  clip.classify   {t_ours:7.2f} s  ({1000 * t_ours / args.images:6.1f} ms/image)")
    print(f"  speed-up        {t_hf / t_ours:7.2f} x")
    print(f"  max |prob diff| {diff:.2e}")


if __name__ == "__main__":
    main()
