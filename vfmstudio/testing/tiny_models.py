"""Tiny random checkpoints laid out exactly like the hub models, for tests and offline demos.

Each builder writes ``config.json`` + ``model.safetensors`` (via ``save_pretrained``) and the
processor files the real repo ships, so ``AutoModel``/``AutoImageProcessor.from_pretrained(dest)`` and
``vfmstudio.ml`` load them like the hub models. Weights are random (seeded): outputs are meaningless but
shapes, dtypes, token layouts and file formats are real.

Add a model family by writing ``build_tiny_<name>(dest, *, seed=0) -> Path`` and registering it in
``TINY_BUILDERS``.

    python -m vfmstudio.testing.tiny_models DIR [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import transformers

from vfmstudio.testing.tiny_clip import build_tiny_clip, build_tiny_siglip
from vfmstudio.testing.tiny_paligemma import build_tiny_paligemma
from vfmstudio.testing.tiny_sam import build_tiny_sam, build_tiny_sam2
from vfmstudio.testing.tiny_sam3 import build_tiny_sam3
from vfmstudio.testing.tiny_siglip2 import build_tiny_siglip2, build_tiny_siglip2_naflex

# DINOv2's hub preprocessor (facebook/dinov2-*): resize short side 256 bicubic, centre-crop 224, ImageNet stats.
DINOV2_PREPROCESSOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "BitImageProcessor",
    "image_std": [0.229, 0.224, 0.225],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 256},
}

# Shape of the tiny DINOv2: real patch size (14) and token layout; everything else shrunk.
TINY_DINOV2 = {
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "patch_size": 14,
    "image_size": 70,  # 5x5 learned position grid: non-native input sizes exercise interpolation
    "layer_norm_eps": 1e-6,
}
TINY_NUM_REGISTERS = 4

# The hub's DINOv3 preprocessor (facebook/dinov3-*-pretrain-lvd1689m): resize to 224x224 bilinear,
# ImageNet stats. The tools do their own preprocessing (the processor needs torchvision).
DINOV3_PREPROCESSOR = {
    "do_convert_rgb": None,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "DINOv3ViTImageProcessorFast",
    "image_std": [0.229, 0.224, 0.225],
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 224, "width": 224},
}

# Shape of the tiny DINOv3: real patch size (16), RoPE and 4 registers; everything else shrunk.
TINY_DINOV3 = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "patch_size": 16,
    "num_register_tokens": TINY_NUM_REGISTERS,
    "layerscale_value": 0.1,
}


def _save(model: torch.nn.Module, dest: Path, preprocessor: dict | None) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    if preprocessor is not None:
        (dest / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    return dest


def build_tiny_dinov2(dest: Path, *, registers: bool = False, seed: int = 0) -> Path:
    """A tiny random ``Dinov2Model`` (or ``Dinov2WithRegistersModel`` with 4 registers) saved in ``dest``."""
    torch.manual_seed(seed)
    if registers:
        config = transformers.Dinov2WithRegistersConfig(**TINY_DINOV2, num_register_tokens=TINY_NUM_REGISTERS)
        model = transformers.Dinov2WithRegistersModel(config)
    else:
        config = transformers.Dinov2Config(**TINY_DINOV2)
        model = transformers.Dinov2Model(config)
    model.eval()
    return _save(model, dest, DINOV2_PREPROCESSOR)


def build_tiny_dinov2_registers(dest: Path, *, seed: int = 0) -> Path:
    return build_tiny_dinov2(dest, registers=True, seed=seed)


def build_tiny_dinov3(dest: Path, *, seed: int = 0) -> Path:
    """A tiny random ``DINOv3ViTModel`` (patch 16, RoPE, 4 registers) saved in ``dest``."""
    torch.manual_seed(seed)
    model = transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(**TINY_DINOV3))
    model.eval()
    return _save(model, dest, DINOV3_PREPROCESSOR)


# name -> builder(dest, *, seed) ; other families (clip, siglip, paligemma) register here.
TINY_BUILDERS: dict[str, Callable[..., Path]] = {
    "dinov2": build_tiny_dinov2,
    "dinov2-registers": build_tiny_dinov2_registers,
    "dinov3": build_tiny_dinov3,
    "paligemma": build_tiny_paligemma,
    "clip": build_tiny_clip,
    "siglip": build_tiny_siglip,
    "siglip2": build_tiny_siglip2,
    "siglip2-naflex": build_tiny_siglip2_naflex,
    "sam": build_tiny_sam,
    "sam2": build_tiny_sam2,
    "sam3": build_tiny_sam3,
}


def build_tiny(name: str, dest: Path, *, seed: int = 0) -> Path:
    try:
        builder = TINY_BUILDERS[name]
    except KeyError:
        raise KeyError(f"unknown tiny model {name!r}; known: {', '.join(sorted(TINY_BUILDERS))}") from None
    return builder(Path(dest), seed=seed)


def build_all(dest_root: Path, names: list[str] | None = None, *, seed: int = 0) -> dict[str, Path]:
    """Build every (or the named) tiny model into ``dest_root/<name>``."""
    dest_root = Path(dest_root)
    return {name: build_tiny(name, dest_root / name, seed=seed) for name in (names or list(TINY_BUILDERS))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vfmstudio.testing.tiny_models", description=__doc__.split("\n")[0]
    )
    parser.add_argument("dest", type=Path, help="folder that receives one subfolder per model")
    parser.add_argument(
        "--only",
        action="extend",
        nargs="+",
        choices=sorted(TINY_BUILDERS),
        metavar="NAME",
        help=f"build only these models: {', '.join(sorted(TINY_BUILDERS))}",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, path in build_all(args.dest, args.only, seed=args.seed).items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
