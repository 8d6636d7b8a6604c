"""GPU throughput: images/s and model FLOPs utilisation (MFU) of our extraction paths vs the raw HF forward.

For DINOv2-S/B/L at 448 (1024 patch tokens) and CLIP-B/32, L/14 at 224, in fp32 and bf16 with SDPA
attention, at batch 1 and 32, two paths on the same model object, interleaved:

- ours: the functions the plugins' batched ``prepare`` runs (what batch runs and the window's prefetch
  use): ``vfmstudio_dinov2._features.extract`` (uint8 photos -> resize/crop/normalise on the device ->
  forward with every hidden state -> tokens, CLS and per-layer norms as numpy) and
  ``vfmstudio_clip._model.encode_images`` (the model's image processor -> image tower -> normalised
  embeddings as numpy);
- raw: ``model(pixel_values)`` / ``model.get_image_features(pixel_values)`` on an already prepared
  tensor on the device.

MFU = analytic forward FLOPs x images/s / the card's bf16 dense peak (H100 SXM and H200: 989 TFLOP/s;
``--peak-tflops`` for other cards). fp32 rows use the same bf16 peak, as the issue asks. Weights are random
(the shapes of the public checkpoints, built in memory: nothing is downloaded). ``--compile`` adds a
torch.compile row for each model with its warm-up time.

    python3 benchmarks/gpu_bench.py                      # on a GPU machine (benchmarks/gpu.sh runs this)
    .venv/bin/python benchmarks/gpu_bench.py --device cpu --quick   # a smoke test of the whole script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "plugins"):  # runnable without installing vfmstudio (the GPU box has no pip)
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))


@dataclass(frozen=True)
class Arch:
    family: str  # "dinov2" or "clip"
    hidden: int
    heads: int
    layers: int
    patch: int
    resolution: int


MODELS = {
    "dinov2-s": Arch("dinov2", 384, 6, 12, 14, 448),
    "dinov2-b": Arch("dinov2", 768, 12, 12, 14, 448),
    "dinov2-l": Arch("dinov2", 1024, 16, 24, 14, 448),
    "clip-b32": Arch("clip", 768, 12, 12, 32, 224),
    "clip-l14": Arch("clip", 1024, 16, 24, 14, 224),
}
# --quick: the same code paths on toy shapes, so the whole script runs in seconds on a CPU.
QUICK = {
    "dinov2-s": Arch("dinov2", 64, 2, 2, 14, 112),
    "clip-b32": Arch("clip", 64, 2, 2, 32, 64),
}
COMPILE_RESERVE_S = 90.0  # a compile row starts only with this much budget left (its warm-up is long)
# bf16 dense tensor peak, TFLOP/s, by a substring of torch.cuda.get_device_name (first match wins).
PEAKS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
)


def flops_per_image(arch: Arch) -> float:
    """Forward FLOPs of the ViT encoder for one image (2 per multiply-add; norms and softmax ignored)."""
    grid = arch.resolution // arch.patch
    n = grid * grid + 1  # patches + CLS
    d, m = arch.hidden, 4 * arch.hidden
    per_layer = 2 * n * d * (4 * d + 2 * m) + 4 * n * n * d  # qkv + out proj + MLP; QK^T and AV
    patch_embed = 2 * (n - 1) * 3 * arch.patch * arch.patch * d
    return float(arch.layers * per_layer + patch_embed)


def card_peak(device: str, override: float | None) -> tuple[str, float | None]:
    if override:
        return (
            torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor()
        ), override
    if not device.startswith("cuda"):
        return f"CPU {platform.machine()} ({os.cpu_count()} cores)", None
    name = torch.cuda.get_device_name(device)
    return name, next((peak for key, peak in PEAKS if key in name), None)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, min_s: float, min_iters: int, max_iters: int) -> tuple[float, int]:
    """Median seconds per call after two warm-up calls (allocator, kernel choice, CPU thread pool)."""
    fn()
    fn()
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_iters and (len(times) < min_iters or time.perf_counter() - start < min_s):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(times)


# ------------------------------------------------------------------------------------------- models


def build_dinov2(arch: Arch, device: str, dtype: torch.dtype):
    import transformers

    config = transformers.Dinov2Config(
        hidden_size=arch.hidden,
        num_attention_heads=arch.heads,
        num_hidden_layers=arch.layers,
        intermediate_size=4 * arch.hidden,
        patch_size=arch.patch,
        image_size=518,
        layer_norm_eps=1e-6,
        attn_implementation="sdpa",
    )
    with torch.device(device):
        model = transformers.Dinov2Model(config)
    return model.to(dtype).eval()


def build_clip(arch: Arch, device: str, dtype: torch.dtype):
    import transformers

    text = {
        "hidden_size": 512 if arch.hidden < 1024 else 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 8 if arch.hidden < 1024 else 12,
        "vocab_size": 49408,
    }
    text["intermediate_size"] = 4 * text["hidden_size"]
    if arch.hidden < 256:  # --quick
        text = {
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "vocab_size": 100,
        }
    config = transformers.CLIPConfig(
        text_config=text,
        vision_config={
            "hidden_size": arch.hidden,
            "intermediate_size": 4 * arch.hidden,
            "num_hidden_layers": arch.layers,
            "num_attention_heads": arch.heads,
            "image_size": arch.resolution,
            "patch_size": arch.patch,
        },
        projection_dim=512 if arch.hidden < 1024 else 768,
        attn_implementation="sdpa",
    )
    with torch.device(device):
        model = transformers.CLIPModel(config)
    return model.to(dtype).eval()


def clip_image_processor(resolution: int):
    """The CLIP image processor with the published preprocessing (resize short side, centre crop)."""
    import transformers

    kwargs = {"size": {"shortest_edge": resolution}, "crop_size": {"height": resolution, "width": resolution}}
    return transformers.CLIPImageProcessor(**kwargs)


def photos(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random 640x480 photos (uint8), each different, as a camera folder would give."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = torch.from_numpy(rng.random((1, 3, 12, 16), dtype=np.float32) * 255)
        big = torch.nn.functional.interpolate(small, size=(480, 640), mode="bilinear", align_corners=False)
        out.append(big[0].permute(1, 2, 0).clamp(0, 255).to(torch.uint8).numpy())
    return out


def paths_for(name: str, arch: Arch, device: str, precision: str, batch: int, compile_: bool):
    """(ours, raw, model) callables for one configuration; ours returns numpy like the plugins do."""
    from vfmstudio.ml.devices import torch_dtype

    dtype = torch_dtype(precision)
    images = photos(batch)
    if arch.family == "dinov2":
        from vfmstudio_dinov2 import _features

        model = build_dinov2(arch, device, dtype)
        extractor = _features.Extractor()
        extractor.device, extractor.precision, extractor.patch = device, precision, arch.patch
        extractor.model = model
        extractor.encode = types.MethodType(_features.Dinov2Extractor.encode, extractor)
        geometry = _features.plan_geometry(480, 640, arch.resolution, arch.patch)
        items = [(px, geometry, None) for px in images]
        with torch.inference_mode():
            prepared = torch.cat([_features.preprocess(px, geometry, device, dtype) for px in images])

        def ours():
            return _features.extract(extractor, items)

        def raw():
            with torch.inference_mode():
                return model(pixel_values=prepared).last_hidden_state
    else:
        from vfmstudio_clip import _model

        model = build_clip(arch, device, dtype)
        processor = types.SimpleNamespace(image_processor=clip_image_processor(arch.resolution))
        bundle = _model.ClipBundle(
            model=model, processor=processor, family="clip", ref=name, device=device, precision=precision
        )
        prepared = _model.pixel_values(bundle, images)

        def ours():
            return _model.encode_images(bundle, images)

        def raw():
            with torch.inference_mode():
                return model.get_image_features(pixel_values=prepared).pooler_output

    if compile_:
        from vfmstudio.ml.compiling import compile_encoders

        compile_encoders(model)
    return ours, raw, model


@dataclass
class Row:
    model: str
    precision: str
    batch: int
    path: str
    ms_per_batch: float
    images_per_s: float
    tflops: float
    mfu: float | None
    ratio_to_raw: float | None = None
    iters: int = 0
    note: str = ""


def measure(
    name: str,
    arch: Arch,
    device: str,
    precision: str,
    batch: int,
    peak: float | None,
    args: argparse.Namespace,
    compile_: bool = False,
) -> list[Row]:
    flops = flops_per_image(arch)
    t0 = time.perf_counter()
    ours, raw, model = paths_for(name, arch, device, precision, batch, compile_)
    note = ""
    if compile_:
        t = time.perf_counter()
        ours()
        sync(device)
        note = f"compile warm-up {time.perf_counter() - t:.1f} s"
    rows = []
    results = {}
    for label, fn in (("raw", raw), ("ours", ours)):
        seconds, iters = timed(fn, device, args.min_seconds, args.min_iters, args.max_iters)
        ips = batch / seconds
        tflops = flops * ips / 1e12
        results[label] = seconds
        rows.append(
            Row(
                name,
                precision,
                batch,
                label + ("+compile" if compile_ else ""),
                seconds * 1e3,
                ips,
                tflops,
                (tflops / peak) if peak else None,
                iters=iters,
                note=note if label == "ours" else "",
            )
        )
    rows[1].ratio_to_raw = results["ours"] / results["raw"]
    del ours, raw, model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    rows[0].note = rows[0].note or f"setup {time.perf_counter() - t0:.1f} s"
    return rows


def print_row(row: Row) -> None:
    mfu = f"{100 * row.mfu:6.1f}%" if row.mfu is not None else "     - "
    ratio = f"{row.ratio_to_raw:6.3f}" if row.ratio_to_raw is not None else "      "
    print(
        f"{row.model:9s} {row.precision:5s} {row.batch:5d} {row.path:13s} {row.ms_per_batch:10.1f} "
        f"{row.images_per_s:9.1f} {row.tflops:8.2f} {mfu} {ratio}  {row.note}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (cuda when present), cuda, cuda:N or cpu")
    ap.add_argument(
        "--quick", action="store_true", help="toy shapes and batch 1/4: a fast check of the script"
    )
    ap.add_argument("--models", default="", help=f"comma-separated subset of {', '.join(MODELS)}")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--batches", default="", help="comma-separated batch sizes (default 1,32; --quick 1,4)")
    ap.add_argument(
        "--compile",
        default="",
        help="models to also time under torch.compile ('all' or names; "
        "default dinov2-b,clip-b32 on a GPU, none on a CPU)",
    )
    ap.add_argument(
        "--tf32", action="store_true", help="allow TF32 matmuls in the fp32 rows (default: strict fp32)"
    )
    ap.add_argument(
        "--peak-tflops", type=float, default=None, help="the card's bf16 dense peak, if not detected"
    )
    ap.add_argument("--min-seconds", type=float, default=1.0, help="time each path at least this long")
    ap.add_argument("--min-iters", type=int, default=3)
    ap.add_argument("--max-iters", type=int, default=50)
    ap.add_argument("--budget-s", type=float, default=270.0, help="skip what is left after this many seconds")
    ap.add_argument("--out", default="", help="also write the rows as JSON here")
    args = ap.parse_args(argv)

    from vfmstudio.ml.devices import resolve_device

    started = time.perf_counter()
    device = resolve_device(args.device)
    on_gpu = device.startswith("cuda")
    table = QUICK if args.quick else MODELS
    names = [n.strip() for n in args.models.split(",") if n.strip()] or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(table)}")
    batches = [int(b) for b in (args.batches or ("1,4" if args.quick else "1,32")).split(",")]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    compile_names = args.compile or ("dinov2-b,clip-b32" if on_gpu and not args.quick else "")
    compile_set = set(names) if compile_names == "all" else {n.strip() for n in compile_names.split(",") if n}
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    card, peak = card_peak(device, args.peak_tflops)
    import transformers

    print(f"card: {card}; bf16 dense peak: {f'{peak:.0f} TFLOP/s' if peak else 'unknown (no MFU)'}")
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, python {platform.python_version()}, "
        f"device {device}, TF32 {'on' if args.tf32 else 'off'}, attention sdpa, "
        f"{'quick shapes' if args.quick else 'real shapes'}; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'model':9s} {'prec':5s} {'batch':>5s} {'path':13s} {'ms/batch':>10s} {'images/s':>9s} {'TFLOP/s':>8s} "
        f"{'MFU':>7s} {'ours/raw':>6s}"
    )
    rows: list[Row] = []
    skipped: list[str] = []
    plan = [(n, p, b, False) for n in names for p in precisions for b in batches]
    plan += [
        (n, "bf16" if "bf16" in precisions else precisions[0], max(batches), True)
        for n in names
        if n in compile_set
    ]

    def save() -> None:  # after every configuration, so a run cut short still leaves its rows
        if args.out:
            Path(args.out).write_text(
                json.dumps(
                    {
                        "card": card,
                        "peak_tflops": peak,
                        "device": device,
                        "torch": torch.__version__,
                        "transformers": transformers.__version__,
                        "rows": [asdict(r) for r in rows],
                        "skipped": skipped,
                        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    },
                    indent=1,
                ),
                encoding="utf-8",
            )

    for name, precision, batch, compile_ in plan:
        label = f"{name} {precision} batch {batch}{' compiled' if compile_ else ''}"
        left = args.budget_s - (time.perf_counter() - started)
        if left <= 0 or (compile_ and left < COMPILE_RESERVE_S):
            skipped.append(f"{label}: time budget")
            continue
        try:
            new = measure(name, table[name], device, precision, batch, peak, args, compile_)
        except Exception as exc:  # noqa: BLE001 - one configuration failing (OOM, missing backend) skips only it
            skipped.append(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            if on_gpu:
                torch.cuda.empty_cache()
            continue
        for row in new:
            print_row(row)
        rows.extend(new)
        save()
    for line in skipped:
        print(f"skipped {line}")
    ours = [r for r in rows if r.path == "ours" and r.ratio_to_raw is not None]
    if ours:
        print(
            f"ours/raw time ratio: median {statistics.median(r.ratio_to_raw for r in ours):.3f}, "
            f"worst {max(r.ratio_to_raw for r in ours):.3f} ({len(ours)} configurations)"
        )
    best = max((r for r in rows if r.mfu is not None), key=lambda r: r.mfu, default=None)
    if best is not None:
        print(
            f"best MFU: {100 * best.mfu:.1f}% ({best.model} {best.precision} batch {best.batch} {best.path})"
        )
    print(f"total {time.perf_counter() - started:.0f} s")
    save()
    return 0 if rows and not any("Error" in s for s in skipped) else 1


if __name__ == "__main__":
    sys.exit(main())
