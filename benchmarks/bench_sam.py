"""sam: click -> mask on a cached embedding, embedding cost, and refine batching, against bare model calls.

Real-size random-weight checkpoints built locally: SAM ViT-B (facebook/sam-vit-base shapes, 1024 px
input) and SAM 2.1 Hiera-S (facebook/sam2.1-hiera-small shapes). On a 1280x960 photo, in one process:

- click: ``sam.segment`` with one point on a warm embedding (what the Smart tool runs per click:
  prompt checks, prompt encoder + mask decoder, best of 3 masks, upsampling to the image) against the
  bare decoder call (``model(image_embeddings=..., input_points=...)`` on ready tensors);
- embedding: ``prepare`` on a cold feature cache (preprocessing + encoder + cache) against the bare
  ``get_image_embeddings`` on a ready tensor (target <= 1.05);
- refine: 50 boxes in one ``sam.refine`` call against 50 calls of one box, and against the same call
  sized as before ADR 0184 (all boxes in one decoder call and one upsampling step), with the page
  faults of each.

    .venv/bin/python benchmarks/bench_sam.py [--repeat 3] [--clicks 15] [--only sam|sam2] [--refine-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image

WIDTH, HEIGHT = 1280, 960


def build_sam_vit_b(dest: Path) -> Path:
    from vfmstudio.testing.tiny_sam import SAM_PREPROCESSOR

    torch.manual_seed(0)
    model = transformers.SamModel(transformers.SamConfig()).eval()  # the defaults are ViT-B
    model.save_pretrained(dest)
    pre = {**SAM_PREPROCESSOR, "size": {"longest_edge": 1024}, "pad_size": {"height": 1024, "width": 1024}}
    (dest / "preprocessor_config.json").write_text(json.dumps(pre))
    return dest


def build_sam2_small(dest: Path) -> Path:
    from vfmstudio.testing.tiny_sam import SAM2_PREPROCESSOR

    torch.manual_seed(0)
    config = transformers.Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": 96,
                "blocks_per_stage": [1, 2, 11, 2],
                "embed_dim_per_stage": [96, 192, 384, 768],
                "num_attention_heads_per_stage": [1, 2, 4, 8],
                "window_size_per_stage": [8, 4, 14, 7],
                "global_attention_blocks": [7, 10, 13],
            },
            "backbone_channel_list": [768, 384, 192, 96],
        }
    )
    model = transformers.Sam2Model(config).eval()
    model.save_pretrained(dest)
    pre = {
        **SAM2_PREPROCESSOR,
        "size": {"height": 1024, "width": 1024},
        "mask_size": {"height": 256, "width": 256},
    }
    (dest / "preprocessor_config.json").write_text(json.dumps(pre))
    return dest


def median_ms(fn, n: int) -> float:
    return paired_ms(fn, None, n)[0]


def paired_ms(fn, other, n: int) -> tuple[float, float]:
    """Median ms of ``fn`` and ``other``, called alternately so that a busy machine's load drifts hit
    both alike (the CPU here is shared)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for f, out in ((fn, times[0]), (other, times[1])):
            if f is not None:
                t0 = time.perf_counter()
                f()
                out.append(time.perf_counter() - t0)
    return tuple(statistics.median(t) * 1000 if t else float("nan") for t in times)  # type: ignore[return-value]


def paired3_ms(a, b, c, n: int) -> tuple[float, float, float]:
    """Median ms of three functions called in turn, ``n`` rounds (load drifts hit all three alike)."""
    times: tuple[list[float], ...] = ([], [], [])
    for _ in range(n):
        for f, out in zip((a, b, c), times):
            t0 = time.perf_counter()
            f()
            out.append(time.perf_counter() - t0)
    return tuple(statistics.median(t) * 1000 for t in times)  # type: ignore[return-value]


def bench(name: str, folder: Path, image, args) -> dict:
    from vfmstudio_sam import TOOLS, _decode, _model
    from vfmstudio_sam._embedding import embedding_for, pixel_values

    from vfmstudio.core.cache import ByteLRUCache
    from vfmstudio.core.context import RunContext
    from vfmstudio.execution import Services, prepare_tool, run_tool

    tools = {t.id: t for t in TOOLS}
    models = ByteLRUCache(8 << 30, name="models")
    services = Services(models=models, features=ByteLRUCache(2 << 30, name="features"))
    run = {"model": str(folder), "device": "cpu", "precision": "fp32"}
    run_tool(
        tools["sam.segment"], [image], {"points": ((10.0, 10.0),)}, services=services, **run
    )  # load, encode
    ctx = RunContext(
        tool_id="bench",
        model_ref=str(folder),
        device="cpu",
        precision="fp32",
        models=models,
        features=services.features,
    )
    sam = _model.get(ctx)
    emb = embedding_for(ctx, sam, image)
    x, _ = pixel_values(sam, image)

    # embedding: ours (cold cache: preprocess + encode + cache) vs the bare encoder on a ready tensor
    def ours_embedding():
        prepare_tool(
            tools["sam.segment"],
            [image],
            {},
            services=Services(models=models, features=ByteLRUCache(1 << 30)),
            **run,
        )

    def bare_embedding():
        with torch.inference_mode():
            sam.model.get_image_embeddings(x)

    emb_ours = emb_bare = float("nan")
    if not args.refine_only:
        emb_ours, emb_bare = paired_ms(ours_embedding, bare_embedding, args.repeat)
        print(
            f"{name}: embedding {emb_ours:.0f} ms vs bare encoder {emb_bare:.0f} ms ({emb_ours / emb_bare:.3f}x)",
            flush=True,
        )

    # click: sam.segment with one point on the cached embedding vs the bare decoder call
    rng = np.random.default_rng(0)
    clicks = [(float(rng.uniform(0, WIDTH)), float(rng.uniform(0, HEIGHT))) for _ in range(args.clicks)]
    it = iter(clicks * 3)

    def ours_click():
        run_tool(tools["sam.segment"], [image], {"points": (next(it),)}, services=services, **run)

    scale = sam.checkpoint.input_size / max(WIDTH, HEIGHT) if name == "sam" else None
    tensors = emb.tensors[0] if sam.checkpoint.family == "sam" else list(emb.tensors)

    def bare_click():
        cx, cy = next(it)
        sx, sy = (scale, scale) if scale else (1024 / WIDTH, 1024 / HEIGHT)
        with torch.inference_mode():
            sam.model(
                image_embeddings=tensors,
                input_points=torch.tensor([[[[cx * sx, cy * sy]]]]),
                input_labels=torch.tensor([[[1]]]),
                multimask_output=True,
            )

    click_ours = click_bare = float("nan")
    if not args.refine_only:
        ours_click()
        bare_click()
        click_ours, click_bare = paired_ms(ours_click, bare_click, args.clicks)
        print(
            f"{name}: click -> mask {click_ours:.1f} ms median vs bare decoder {click_bare:.1f} ms "
            f"({click_ours / click_bare:.2f}x)",
            flush=True,
        )

    # refine: 50 boxes in one call vs 50 calls
    boxes = []
    for _ in range(50):
        x0, y0 = rng.uniform(0, WIDTH - 200), rng.uniform(0, HEIGHT - 200)
        boxes.append(f"{x0:.1f},{y0:.1f},{x0 + rng.uniform(40, 200):.1f},{y0 + rng.uniform(40, 200):.1f}")

    def one_call():
        run_tool(tools["sam.refine"], [image], {"boxes": "; ".join(boxes)}, services=services, **run)

    def one_call_unchunked():  # the previous sizing: all 50 boxes in one decoder call and one upsampling
        saved = _decode.CPU_TENSOR_BYTES
        _decode.CPU_TENSOR_BYTES = 1 << 40
        try:
            one_call()
        finally:
            _decode.CPU_TENSOR_BYTES = saved

    def fifty_calls():
        for b in boxes:
            run_tool(tools["sam.refine"], [image], {"boxes": b}, services=services, **run)

    faults = {}
    for key, fn in (("one", one_call), ("unchunked", one_call_unchunked), ("fifty", fifty_calls)):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        fn()  # warm-up, and the page faults of one run
        faults[key] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    one, unchunked, fifty = paired3_ms(one_call, one_call_unchunked, fifty_calls, args.repeat)
    print(
        f"{name}: refine 50 boxes: one call {one:.0f} ms ({faults['one']} page faults), the same call "
        f"unchunked {unchunked:.0f} ms ({faults['unchunked']}), 50 calls {fifty:.0f} ms ({faults['fifty']}), "
        f"{cpu_load()}",
        flush=True,
    )
    return {
        "model": name,
        "embedding_ms": emb_ours,
        "encoder_ms": emb_bare,
        "click_ms": click_ours,
        "decoder_ms": click_bare,
        "refine50_one_call_ms": one,
        "refine50_one_call_unchunked_ms": unchunked,
        "refine50_fifty_calls_ms": fifty,
    }


def cpu_load() -> str:
    try:
        return "loadavg " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "loadavg ?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=15)
    parser.add_argument("--only", choices=("sam", "sam2"))
    parser.add_argument("--refine-only", action="store_true", help="time only the refine comparison")
    args = parser.parse_args()
    from vfmstudio.core.image import load_image

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, {cpu_load()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(0)
        Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)).resize(
            (WIDTH, HEIGHT), Image.Resampling.BICUBIC
        ).save(root / "photo.png")
        image = load_image(root / "photo.png")
        builders = {"sam": ("SAM ViT-B", build_sam_vit_b), "sam2": ("SAM 2.1 Hiera-S", build_sam2_small)}
        for name, (title, build) in builders.items():
            if args.only and name != args.only:
                continue
            r = bench(name, build(root / name), image, args)
            print(f"== {title} ({cpu_load()})")
            print(
                f"{title}: click -> mask {r['click_ms']:.1f} ms median vs bare decoder {r['decoder_ms']:.1f} ms "
                f"({r['click_ms'] / r['decoder_ms']:.2f}x)"
            )
            print(
                f"{title}: embedding {r['embedding_ms']:.0f} ms vs bare encoder {r['encoder_ms']:.0f} ms "
                f"({r['embedding_ms'] / r['encoder_ms']:.3f}x)"
            )
            print(
                f"{title}: refine 50 boxes: one call {r['refine50_one_call_ms']:.0f} ms vs 50 calls "
                f"{r['refine50_fifty_calls_ms']:.0f} ms ({r['refine50_fifty_calls_ms'] / r['refine50_one_call_ms']:.2f}x); "
                f"unchunked one call {r['refine50_one_call_unchunked_ms']:.0f} ms "
                f"({r['refine50_one_call_unchunked_ms'] / r['refine50_one_call_ms']:.2f}x the chunked one)",
                flush=True,
            )


if __name__ == "__main__":
    main()
