"""Tiny random SAM and SAM 2.1 checkpoints: the real architectures at a 128-pixel input.

Each builder writes ``config.json`` + ``model.safetensors`` and the ``preprocessor_config.json`` the
hub repos ship (facebook/sam-vit-base, facebook/sam2.1-hiera-tiny), scaled to the tiny input size, so
``SamModel``/``Sam2Model.from_pretrained(dest)`` and ``SamProcessor.from_pretrained(dest)`` load them
like the real models. The input side is 128 instead of 1024 (8x8 image embedding, 32x32 low-resolution
masks); the prompt encoder, mask decoder, multimask outputs and SAM 2's high-resolution features are
all there.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers

IMAGE_SIZE = 128
PATCH = 16
HIDDEN = 32
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# The keys facebook/sam-vit-base's preprocessor_config.json has, with the tiny sizes.
SAM_PREPROCESSOR = {
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": IMAGENET_MEAN,
    "image_processor_type": "SamImageProcessor",
    "image_std": IMAGENET_STD,
    "pad_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    "processor_class": "SamProcessor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"longest_edge": IMAGE_SIZE},
}

# The keys facebook/sam2.1-hiera-tiny's preprocessor_config.json has, with the tiny sizes.
SAM2_PREPROCESSOR = {
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": IMAGENET_MEAN,
    "image_processor_type": "Sam2ImageProcessorFast",
    "image_std": IMAGENET_STD,
    "mask_size": {"height": IMAGE_SIZE // 4, "width": IMAGE_SIZE // 4},
    "processor_class": "Sam2Processor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
}


def _save(model: torch.nn.Module, dest: Path, preprocessor: dict) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    (dest / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    return dest


def _randomize_small_inits(model: torch.nn.Module, seed: int) -> None:
    """SAM initialises some weights to zero or near zero (its ViT uses initializer_range 1e-10, SAM 2
    zeroes the no-memory embedding): give every parameter random values so that every path moves the
    outputs, and a wrong preprocessing or coordinate mapping changes the masks."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name or "layer_norm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            else:
                fan_in = p.shape[1] if p.ndim > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=generator) / max(1.0, fan_in) ** 0.5)


def build_tiny_sam(dest: Path, *, seed: int = 0) -> Path:
    """A tiny random ``SamModel`` (ViT with windowed and global attention, 2 layers) in ``dest``."""
    torch.manual_seed(seed)
    config = transformers.SamConfig(
        vision_config={
            "hidden_size": HIDDEN, "output_channels": HIDDEN, "num_hidden_layers": 2, "num_attention_heads": 2,
            "image_size": IMAGE_SIZE, "patch_size": PATCH, "window_size": 4, "global_attn_indexes": [1],
            "num_pos_feats": HIDDEN // 2, "mlp_dim": 2 * HIDDEN,
        },
        prompt_encoder_config={"hidden_size": HIDDEN, "image_size": IMAGE_SIZE, "patch_size": PATCH,
                               "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": HIDDEN, "mlp_dim": 2 * HIDDEN, "num_hidden_layers": 2,
                             "num_attention_heads": 2, "iou_head_hidden_dim": HIDDEN},
    )  # fmt: skip
    model = transformers.SamModel(config).eval()
    _randomize_small_inits(model, seed)
    return _save(model, dest, SAM_PREPROCESSOR)


def build_tiny_sam2(dest: Path, *, seed: int = 0) -> Path:
    """A tiny random ``Sam2Model`` (Hiera backbone with 4 stages, FPN neck, high-res features) in ``dest``."""
    torch.manual_seed(seed)
    stride = 4  # Hiera's patch embedding stride: feature maps of 32, 16 and 8 at a 128 input
    sizes = [[IMAGE_SIZE // stride // 2**i] * 2 for i in range(3)]
    config = transformers.Sam2Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam2_hiera_det_model", "hidden_size": 8, "num_attention_heads": 1,
                "image_size": [IMAGE_SIZE, IMAGE_SIZE], "blocks_per_stage": [1, 1, 2, 1],
                "embed_dim_per_stage": [8, 16, 32, 64], "num_attention_heads_per_stage": [1, 1, 2, 2],
                "window_size_per_stage": [4, 4, 4, 4], "global_attention_blocks": [3],
                "window_positional_embedding_background_size": [4, 4],
            },
            "backbone_channel_list": [64, 32, 16, 8], "backbone_feature_sizes": sizes, "fpn_hidden_size": HIDDEN,
        },
        prompt_encoder_config={"hidden_size": HIDDEN, "image_size": IMAGE_SIZE, "patch_size": PATCH,
                               "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": HIDDEN, "mlp_dim": 2 * HIDDEN, "num_hidden_layers": 2,
                             "num_attention_heads": 2, "iou_head_hidden_dim": HIDDEN},
    )  # fmt: skip
    model = transformers.Sam2Model(config).eval()
    _randomize_small_inits(model, seed)
    return _save(model, dest, SAM2_PREPROCESSOR)
