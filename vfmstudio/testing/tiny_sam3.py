"""A tiny random SAM 3 checkpoint (``Sam3Model``: the concept detector with its CLIP text encoder).

The builder writes ``config.json`` + ``model.safetensors``, a real CLIP BPE tokenizer (learned here,
offline, like the tiny CLIP's: ``tiny_clip._clip_bpe``) and the ``preprocessor_config.json`` keys
facebook/sam3 ships (resize to a square, bilinear, mean and std 0.5), scaled to a 112-pixel input
(patch 14: an 8x8 feature grid; FPN levels 32, 16 and 8; 32x32 mask logits). Every module of the
detector is there: ViT with windowed and global RoPE attention, FPN neck, text encoder and
projection, geometry encoder, DETR encoder and decoder with the presence token, mask decoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers

from vfmstudio.testing.tiny_clip import _clip_bpe
from vfmstudio.testing.tiny_sam import _randomize_small_inits

IMAGE_SIZE = 112
PATCH = 14
HIDDEN = 32
TEXT_LENGTH = 32  # Sam3Processor pads every text to 32 tokens (the text encoder's positions)
NUM_QUERIES = 12

# The keys of facebook/sam3's image processor config, with the tiny sizes.
SAM3_PREPROCESSOR = {
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Sam3ImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "mask_size": {"height": IMAGE_SIZE // 4, "width": IMAGE_SIZE // 4},
    "processor_class": "Sam3Processor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
}


def tiny_sam3_config(vocab: dict[str, int]) -> transformers.Sam3Config:
    grid = IMAGE_SIZE // PATCH
    layer = {"hidden_size": HIDDEN, "num_attention_heads": 2, "intermediate_size": 2 * HIDDEN}
    return transformers.Sam3Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model", "hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN,
                "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": IMAGE_SIZE, "patch_size": PATCH,
                "window_size": 4, "global_attn_indexes": [1], "pretrain_image_size": IMAGE_SIZE // 2,
            },
            "fpn_hidden_size": HIDDEN,
            "backbone_feature_sizes": [[grid * 4] * 2, [grid * 2] * 2, [grid] * 2],
        },
        text_config={
            "vocab_size": len(vocab), "hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN,
            "projection_dim": HIDDEN, "num_hidden_layers": 2, "num_attention_heads": 2,
            "max_position_embeddings": TEXT_LENGTH, "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"], "pad_token_id": vocab["<|endoftext|>"],
        },
        geometry_encoder_config={**layer, "num_layers": 1},
        detr_encoder_config={**layer, "num_layers": 1},
        detr_decoder_config={**layer, "num_layers": 2, "num_queries": NUM_QUERIES},
        mask_decoder_config={"hidden_size": HIDDEN, "num_attention_heads": 2},
    )  # fmt: skip


def build_tiny_sam3(dest: Path, *, seed: int = 0) -> Path:
    """A tiny random ``Sam3Model`` with a CLIP BPE tokenizer in ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    vocab, merges = _clip_bpe()
    torch.manual_seed(seed)
    model = transformers.Sam3Model(tiny_sam3_config(vocab)).eval()
    _randomize_small_inits(model, seed)
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=TEXT_LENGTH)
    tokenizer.save_pretrained(dest)
    (dest / "preprocessor_config.json").write_text(json.dumps(SAM3_PREPROCESSOR, indent=2) + "\n")
    return dest
