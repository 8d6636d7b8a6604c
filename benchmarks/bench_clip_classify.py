"""clip.classify against transformers' zero-shot-image-classification pipeline, in one process.

A real-size CLIP ViT-B/32 (openai/clip-vit-base-patch32 shapes, 151 M parameters) with random weights
is built locally (no hub access), then both classify the same images with the same labels and
template. The pipeline runs the text tower for every image; clip.classify encodes the labels once and
the images in batches. Prints both times, the speed ratio and the largest probability difference.

    .venv/bin/python benchmarks/bench_clip_classify.py [--images 64] [--labels 20] [--batch-size 16] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

LABELS = (
    "cat",
    "dog",
    "car",
    "bird",
    "tree",
    "sky",
    "road",
    "person",
    "house",
    "flower",
    "grass",
    "water",
    "building",
    "boat",
    "bicycle",
    "horse",
    "chair",
    "table",
    "bottle",
    "airplane",
    "train",
    "sheep",
)


def build_clip_base(dest: Path, patch: int = 32, seed: int = 0) -> Path:
    """Random weights with the shapes of openai/clip-vit-base-patch{patch}, the tiny test tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    from vfmstudio.testing.tiny_clip import _clip_bpe

    vocab, merges = _clip_bpe()
    config = CLIPConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": patch,
        },
        projection_dim=512,
        logit_scale_init_value=4.6052,  # the trained value (scale 100)
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(dest, safe_serialization=True)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessorPil(), tokenizer=CLIPTokenizer(vocab=vocab, merges=merges)
    )
    processor.save_pretrained(dest)
    return dest


def make_images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        h, w = (480, 640) if i % 2 else (600, 400)
        small = (rng.random((h // 40, w // 40, 3)) * 255).astype(np.uint8)
        path = folder / f"img{i:03d}.jpg"
        Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


def pipeline_vs_classify(pipe, pil, images, labels, template, model_dir, models, batch_size, repeat):
    """The HF pipeline and ``clip.classify`` on the same images, alternated ``repeat`` times (each one's
    best time counts: other load on the machine comes and goes), our feature cache cold each time.
    Returns (pipeline seconds, ours seconds, our prediction, largest probability difference)."""
    from vfmstudio_clip import CLASSIFY

    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.execution import Services, run_tool

    t_hf = t_ours = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        hf = pipe(pil, candidate_labels=list(labels), hypothesis_template=template)
        t_hf = min(t_hf, time.perf_counter() - t0)
        services = Services(models=models, features=ByteLRUCache(1 << 30, name="features"))
        t0 = time.perf_counter()
        ours = run_tool(
            CLASSIFY,
            images,
            {"labels": labels, "templates": "single", "batch_size": batch_size},
            model=model_dir,
            services=services,
        )
        t_ours = min(t_ours, time.perf_counter() - t0)
    diff = 0.0
    for ref, res in zip(hf, ours.results):
        got = dict(zip(res.labels, res.scores.tolist()))
        diff = max(diff, max(abs(d["score"] - got[d["label"]]) for d in ref))
    return t_hf, t_ours, ours, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--repeat", type=int, default=2, help="alternating runs of each; the best time counts"
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
        model_dir = build_clip_base(root / "clip-b32", patch=32)
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

        # Alternate the two and keep each one's best time: other load on the machine comes and goes.
        t_hf, t_ours, ours, diff = pipeline_vs_classify(
            pipe, pil, images, labels, template, str(model_dir), models, args.batch_size, args.repeat
        )
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"device {ours.device}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"clip.classify, CLIP ViT-B/32 (random weights), {args.images} images x {len(labels)} labels, "
        f"batch {args.batch_size}, best of {args.repeat}"
    )
    print(f"  HF pipeline     {t_hf:7.2f} s  ({1000 * t_hf / args.images:6.1f} ms/image)")
    print(f"  clip.classify   {t_ours:7.2f} s  ({1000 * t_ours / args.images:6.1f} ms/image)")
    print(f"  speed-up        {t_hf / t_ours:7.2f} x")
    print(f"  max |prob diff| {diff:.2e}")


if __name__ == "__main__":
    main()
