"""PaliGemma tools against the plain transformers path, on a small random PaliGemma 2 (no hub access here).

Reference: ``processor(...)`` + ``model.generate(greedy)`` + ``decode``, what a user would write.
Ours: the full ``run_tool`` call (parameters, cached image features, streaming every token to a callback,
cancel check per step, parsing, result validation) in three situations:

- cold: empty feature cache (vision tower + generation), the first run on an image;
- new prompt: same image, another question (vision tower skipped: its output is cached);
- rerun: same tool and parameters again (the window resubmits on edits): no forward pass at all.

Also the mask decoder at its published size (512-d codebook): 16 objects decoded in one batch versus one
at a time, and the paste into a 1024x768 image. EOS is banned in both paths so every run generates
exactly ``--tokens`` tokens.

    .venv/bin/python benchmarks/bench_paligemma.py [--tokens 16] [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from vfmstudio_paligemma import TOOLS, _generation, _mask_decoder

from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.image import load_image
from vfmstudio.execution import Services, run_tool
from vfmstudio.testing import tiny_paligemma as tp

TOOL = {t.id: t for t in TOOLS}


def small_paligemma(dest: Path) -> Path:
    """SigLIP-S-like tower at 224/14 (256 image tokens) and a 4-layer 512-d Gemma 2: small but not toy."""
    processor = tp.build_processor()
    processor.image_processor.size = {"height": 224, "width": 224}
    processor.image_processor.image_seq_length = processor.image_seq_length = 256
    tok = processor.tokenizer
    config = tp.tiny_config(
        len(tok),
        tok.convert_tokens_to_ids(tp.IMAGE_TOKEN),
        vision={
            "hidden_size": 384,
            "intermediate_size": 1536,
            "num_hidden_layers": 6,
            "num_attention_heads": 6,
            "image_size": 224,
            "patch_size": 14,
        },
        text={
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "head_dim": 64,
            "query_pre_attn_scalar": 64,
            "sliding_window": 512,
            "initializer_range": 0.5,
        },
    )
    config.tie_word_embeddings = config.text_config.tie_word_embeddings = False
    torch.manual_seed(0)
    model = transformers.PaliGemmaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = 1, 0
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    return dest


class BanEos(transformers.LogitsProcessor):
    def __call__(self, input_ids, scores):
        scores[:, 1] = float("-inf")
        return scores


def timed(fn) -> tuple[float, float]:
    """(wall, cpu) seconds of one call. CPU time is what we compare: this box is shared, so wall time
    swings with other people's load, while the CPU time a computation needs barely moves."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def paired(ours, reference, repeat: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Median (wall, cpu) of ours and of the reference, run alternately."""
    a, b = [], []
    for _ in range(repeat):
        a.append(timed(ours))
        b.append(timed(reference))
    med = lambda xs: (statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs))  # noqa: E731
    return med(a), med(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared box)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-paligemma-"))
    model_dir = small_paligemma(work / "pg")
    rgb = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(work / "img.png")
    image = load_image(work / "img.png")

    processor = transformers.PaliGemmaProcessor.from_pretrained(model_dir)
    model = transformers.PaliGemmaForConditionalGeneration.from_pretrained(model_dir).eval()

    def reference(prompt: str) -> str:
        inputs = processor(images=image.pixels, text="<image>" + prompt, return_tensors="pt")
        inputs.pop("labels")
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=args.tokens,
                do_sample=False,
                logits_processor=transformers.LogitsProcessorList([BanEos()]),
            )
        return processor.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    _generation.logits_processor_hooks[:] = [lambda n: BanEos()]
    models = ByteLRUCache(1 << 32, name="models")
    streamed = []

    def ours(tool: str, fresh: bool, **params) -> None:
        features = ByteLRUCache(1 << 30, name="features") if fresh else ours.features
        ours.features = features
        run_tool(
            TOOL[tool],
            [image],
            {"max_new_tokens": args.tokens, **params},
            model=str(model_dir),
            device="cpu",
            services=Services(models=models, features=features),
            on_partial=streamed.append,
        )

    ours.features = ByteLRUCache(1 << 30, name="features")
    ours("paligemma.caption", True)  # load the model once (not timed), as the window keeps it loaded
    reference("caption en")

    rows = []
    cold, ref = paired(lambda: ours("paligemma.caption", True), lambda: reference("caption en"), args.repeat)
    rows.append(("caption, cold (vision + generation)", cold, ref))
    ours("paligemma.ask", False, question="what is this")
    questions = iter(f"what is in the image {i}" for i in range(10_000))
    ask, ask_ref = paired(
        lambda: ours("paligemma.ask", False, question=next(questions)),
        lambda: reference("answer en what is in the image"),
        args.repeat,
    )
    rows.append(("ask, new question on a seen image", ask, ask_ref))
    # Reruns with the same inputs only hit the generation cache when no logits hook is installed.
    _generation.logits_processor_hooks[:] = []
    ours("paligemma.detect", False, classes="cat ; dog")
    rerun, _ = paired(lambda: ours("paligemma.detect", False, classes="cat ; dog"), lambda: None, args.repeat)
    rows.append(("detect, rerun with the same inputs", rerun, ref))

    decoder = _mask_decoder.load_decoder(tp.write_random_vae(work / "vae-oid.npz", embed_dim=512))
    codes = np.random.default_rng(0).integers(0, 128, (16, 16))
    batched, one_by_one = paired(
        lambda: _mask_decoder.decode_logits(decoder, codes),
        lambda: [_mask_decoder.decode_logits(decoder, codes[i : i + 1]) for i in range(16)],
        args.repeat,
    )
    logits = _mask_decoder.decode_logits(decoder, codes)
    boxes = np.array([[40 * i, 30 * i, 40 * i + 300, 30 * i + 250] for i in range(16)], dtype=np.float32)
    paste, _ = paired(lambda: _mask_decoder.paste_masks(logits, boxes, 1024, 768), lambda: None, args.repeat)

    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), cpu; {args.tokens} new tokens, median of {args.repeat}"
    )
    print(f"{'case':42s} {'ours ms (cpu)':>16s} {'reference ms (cpu)':>19s} {'ratio (cpu)':>12s}")
    rows.append(("mask decoder, 16 objects in one batch", batched, one_by_one))
    for name, (ow, oc), (rw, rc) in rows:
        print(
            f"{name:42s} {ow * 1e3:8.1f} ({oc * 1e3:6.1f}) {rw * 1e3:10.1f} ({rc * 1e3:7.1f}) "
            f"{ow / rw:5.3f} ({oc / rc:5.3f})"
        )
    print("  (mask decoder reference: the same decoder, one object at a time)")
    print(f"{'paste 16 masks into 1024x768':42s} {paste[0] * 1e3:8.1f} ({paste[1] * 1e3:6.1f})")


if __name__ == "__main__":
    main()
