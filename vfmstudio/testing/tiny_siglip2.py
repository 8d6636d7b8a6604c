"""Tiny random SigLIP 2 checkpoints (fixed resolution and NaFlex) with a small Gemma-style tokenizer.

Laid out like the hub snapshots:

- fixed resolution (``google/siglip2-base-patch16-224``): a ``SiglipModel`` (model_type ``siglip``)
  with ``SiglipImageProcessor`` (fixed size, bilinear, mean/std 0.5) and a ``GemmaTokenizer``;
- NaFlex (``google/siglip2-base-patch16-naflex``): a ``Siglip2Model`` with ``Siglip2ImageProcessor``
  (aspect-preserving resize to at most ``max_num_patches`` patches of 16 px) and the Gemma tokenizer,
  which transformers loads as ``Siglip2Tokenizer`` (it lower-cases).

The tokenizer is a byte-fallback BPE with Gemma's special tokens at Gemma's ids (``<pad>`` 0,
``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3, ``<mask>`` 4), then the 256 byte tokens ``<0x00>``..``<0xFF>``,
then characters and merges learned here from a small corpus (deterministically, ties broken
alphabetically). Built offline with the ``tokenizers`` library; nothing is downloaded.
"""

from __future__ import annotations

import string
from collections import Counter
from pathlib import Path

import torch

from vfmstudio.testing.tiny_clip import _corpus, _spread_weights, learn_bpe_merges

GEMMA_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
SPACE = "\u2581"
SIGLIP2_IMAGE_SIZE = 64
SIGLIP2_PATCH = 16
NAFLEX_MAX_PATCHES = 24  # a 64x64 image becomes 4x4 patches; a 2:1 image 3x7 (NaFlex keeps the aspect)
TEXT_LENGTH = 64  # SigLIP 2 was trained on lower-cased texts padded to 64 tokens


def gemma_bpe(n_merges: int = 300) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a small Gemma-style BPE (``▁`` marks a preceding space)."""
    words = Counter(
        SPACE + w if i else w for line in _corpus() for i, w in enumerate(line.lower().split(" "))
    )
    split = {w: tuple(w) for w in words}
    merges = learn_bpe_merges(words, split, n_merges)
    vocab: dict[str, int] = {}
    chars = sorted(set(string.ascii_letters + string.digits + string.punctuation) | {SPACE})
    for token in (
        *GEMMA_SPECIALS,
        *(f"<0x{b:02X}>" for b in range(256)),
        *chars,
        *(a + b for a, b in merges),
    ):
        vocab.setdefault(token, len(vocab))
    return vocab, merges


def _tokenizer(cls: type) -> object:
    # As the hub's SigLIP 2 tokenizer is set up: no <bos>, <eos> appended, padded on the right.
    vocab, merges = gemma_bpe()
    return cls(
        vocab=vocab,
        merges=merges,
        model_max_length=TEXT_LENGTH,
        add_bos_token=False,
        add_eos_token=True,
        padding_side="right",
    )


def _text_config(vocab_size: int) -> dict:
    return {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": TEXT_LENGTH,
        "projection_size": 32,
        "pad_token_id": GEMMA_SPECIALS.index("<pad>"),
        "eos_token_id": GEMMA_SPECIALS.index("<eos>"),
        "bos_token_id": GEMMA_SPECIALS.index("<bos>"),
    }


_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "patch_size": SIGLIP2_PATCH,
}


def _finish(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    model.eval()
    _spread_weights(model, seed)
    with torch.no_grad():  # trained values (scale ~ exp(4.7), bias ~ -16) scaled to a tiny model
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-2.0)
    return model


def build_tiny_siglip2(dest: Path, seed: int = 0) -> Path:
    """Fixed-resolution SigLIP 2 (SigLIP layout, 64 px, patch 16) with a Gemma tokenizer, saved to ``dest``."""
    from transformers import (
        GemmaTokenizer,
        SiglipConfig,
        SiglipImageProcessorPil,
        SiglipModel,
        SiglipProcessor,
    )

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(GemmaTokenizer)
    config = SiglipConfig(
        text_config=_text_config(len(tokenizer)), vision_config={**_VISION, "image_size": SIGLIP2_IMAGE_SIZE}
    )
    torch.manual_seed(seed)
    model = _finish(SiglipModel(config), seed)
    model.save_pretrained(dest, safe_serialization=True)
    image_processor = SiglipImageProcessorPil(
        size={"height": SIGLIP2_IMAGE_SIZE, "width": SIGLIP2_IMAGE_SIZE}, resample=2
    )
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(dest)
    return dest


def build_tiny_siglip2_naflex(dest: Path, seed: int = 0) -> Path:
    """NaFlex SigLIP 2 (``Siglip2Model``, patch 16, at most 24 patches) with a Gemma tokenizer, saved to ``dest``."""
    from transformers import (
        GemmaTokenizer,
        Siglip2Config,
        Siglip2ImageProcessorPil,
        Siglip2Model,
        Siglip2Processor,
    )

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(GemmaTokenizer)
    config = Siglip2Config(
        text_config=_text_config(len(tokenizer)), vision_config={**_VISION, "num_patches": 16}
    )
    torch.manual_seed(seed)
    model = _finish(Siglip2Model(config), seed)
    model.save_pretrained(dest, safe_serialization=True)
    image_processor = Siglip2ImageProcessorPil(max_num_patches=NAFLEX_MAX_PATCHES, patch_size=SIGLIP2_PATCH)
    Siglip2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(dest)
    return dest
