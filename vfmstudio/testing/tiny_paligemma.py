"""A tiny random PaliGemma 2 checkpoint, and a random ``vae-oid.npz`` mask decoder, for tests.

The checkpoint is laid out like ``google/paligemma2-3b-mix-224``: ``PaliGemmaForConditionalGeneration``
(tiny SigLIP vision tower + tiny Gemma 2 text model) saved with ``save_pretrained``, and a
``PaliGemmaProcessor`` (SigLIP image processor + Gemma tokenizer) saved next to it, so both load with
``from_pretrained(dest)`` exactly like the hub model. The tokenizer is a byte-fallback BPE built here with
the ``tokenizers`` library; it holds the real special tokens (``<pad> <eos> <bos> <unk> <mask>``), the
1024 ``<locNNNN>`` and 128 ``<segNNN>`` tokens and ``<image>``, in the real order (image token last).

Weights are random (seeded): the generated text is meaningless but every file format, token layout and
code path is the real one. Unlike the real model the output head is not tied to the embeddings, so greedy
output varies with the image and the prompt instead of repeating one token.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import transformers

IMAGE_SIZE = 32
PATCH_SIZE = 8
IMAGE_SEQ_LENGTH = (IMAGE_SIZE // PATCH_SIZE) ** 2  # 16 image tokens per prompt
HIDDEN = 32

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")  # ids 0..4, as in Gemma
LOC_TOKENS = tuple(f"<loc{i:04d}>" for i in range(1024))
SEG_TOKENS = tuple(f"<seg{i:03d}>" for i in range(128))
IMAGE_TOKEN = "<image>"

# Words that get whole-word BPE merges, so common prompts tokenize into few tokens (like the real model).
_WORDS = (
    "caption", "describe", "answer", "detect", "segment", "ocr", "en", "de", "fr", "what", "is", "in", "the",
    "image", "cat", "dog", "car", "person", "a", "of", "and", "on",
)  # fmt: skip
_ALPHABET = "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()/\n"


def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for b in range(256):  # byte fallback: any character is encodable
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in _ALPHABET:
        vocab.setdefault(ch, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        for piece in (word, "▁" + word):
            left = piece[0]
            for ch in piece[1:]:
                merged = left + ch
                if merged not in vocab:
                    vocab[merged] = len(vocab)
                    merges.append((left, ch))
                left = merged
    return vocab, merges


def build_tokenizer() -> transformers.PreTrainedTokenizerBase:
    """A Gemma-style tokenizer with the PaliGemma special tokens at fixed ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    vocab, merges = _vocab_and_merges()
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    # Location and segmentation tokens are ordinary (not special) tokens: decoding with
    # skip_special_tokens=True keeps them, which is what the output parser needs.
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in LOC_TOKENS + SEG_TOKENS])
    backend.add_special_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)])
    return transformers.GemmaTokenizer(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        additional_special_tokens=[IMAGE_TOKEN],
        add_bos_token=True,
        add_eos_token=False,
    )


def build_processor() -> transformers.PaliGemmaProcessor:
    image_processor = transformers.SiglipImageProcessor(
        do_resize=True,
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        resample=3,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    image_processor.image_seq_length = IMAGE_SEQ_LENGTH
    return transformers.PaliGemmaProcessor(image_processor=image_processor, tokenizer=build_tokenizer())


TINY_VISION = {
    "hidden_size": HIDDEN,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": IMAGE_SIZE,
    "patch_size": PATCH_SIZE,
    "vision_use_head": False,
}
TINY_TEXT = {
    "hidden_size": HIDDEN,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "query_pre_attn_scalar": 16,
    "sliding_window": 64,
    "max_position_embeddings": 512,
}


def tiny_config(
    vocab_size: int, image_token_id: int, *, vision: dict | None = None, text: dict | None = None
) -> transformers.PaliGemmaConfig:
    """The tiny config; ``vision``/``text`` override sizes (benchmarks build a larger one the same way)."""
    vision_config = transformers.SiglipVisionConfig(**{**TINY_VISION, **(vision or {})})
    text_config = transformers.Gemma2Config(
        **{**TINY_TEXT, **(text or {})}, vocab_size=vocab_size, pad_token_id=0, eos_token_id=1, bos_token_id=2
    )
    return transformers.PaliGemmaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_id,
        vocab_size=vocab_size,
        projection_dim=text_config.hidden_size,
        hidden_size=text_config.hidden_size,
    )


def build_tiny_paligemma(dest: Path, *, seed: int = 0) -> Path:
    """Write a tiny random PaliGemma 2 checkpoint and its processor into ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    processor = build_processor()
    tokenizer = processor.tokenizer
    vocab_size = len(tokenizer)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    torch.manual_seed(seed)
    config = tiny_config(vocab_size, image_token_id)
    # A random model with tied embeddings and the default 0.02 init falls into repeating one token; an untied
    # head and a wide init make greedy output depend on the image and the prompt, so comparisons mean something.
    config.text_config.initializer_range = 0.5
    config.tie_word_embeddings = config.text_config.tie_word_embeddings = False
    model = transformers.PaliGemmaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.eval()
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    return dest


# ---------------------------------------------------------------- the mask decoder weights

VAE_CODEBOOK_SIZE = 128
VAE_EMBED_DIM = 512  # the published file's dimension; the decoder reads it from the file


def vae_state_shapes(embed_dim: int = VAE_EMBED_DIM) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of ``vae-oid.npz`` (PyTorch layout) as the published decoder uses them."""
    shapes: dict[str, tuple[int, ...]] = {"_vq_vae._embedding": (VAE_CODEBOOK_SIZE, embed_dim)}
    shapes["decoder.0.weight"], shapes["decoder.0.bias"] = (128, embed_dim, 1, 1), (128,)
    for block in (2, 3):
        for layer, k in ((0, 3), (2, 3), (4, 1)):
            shapes[f"decoder.{block}.net.{layer}.weight"] = (128, 128, k, k)
            shapes[f"decoder.{block}.net.{layer}.bias"] = (128,)
    # ConvTranspose2d weights are (in_channels, out_channels, kh, kw).
    for index, (cin, cout) in zip((4, 6, 8, 10), ((128, 128), (128, 64), (64, 32), (32, 16))):
        shapes[f"decoder.{index}.weight"] = (cin, cout, 4, 4)
        shapes[f"decoder.{index}.bias"] = (cout,)
    shapes["decoder.12.weight"], shapes["decoder.12.bias"] = (1, 16, 1, 1), (1,)
    return shapes


def vae_encoder_shapes(embed_dim: int = VAE_EMBED_DIM) -> dict[str, tuple[int, ...]]:
    """The encoder keys the published file holds beside the decoder (big_vision's
    ``pp/proj/paligemma/segmentation.py`` reads them to encode training masks): four stride-2 convolutions
    ``encoder.0/2/4/6``, residual blocks ``encoder.8.net`` and ``encoder.9.net``, and ``encoder.10``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for index, (cin, cout) in zip((0, 2, 4, 6), ((1, 16), (16, 32), (32, 64), (64, 128))):
        shapes[f"encoder.{index}.weight"], shapes[f"encoder.{index}.bias"] = (cout, cin, 3, 3), (cout,)
    for block in (8, 9):
        for layer, k in ((0, 3), (2, 3), (4, 1)):
            shapes[f"encoder.{block}.net.{layer}.weight"] = (128, 128, k, k)
            shapes[f"encoder.{block}.net.{layer}.bias"] = (128,)
    shapes["encoder.10.weight"], shapes["encoder.10.bias"] = (embed_dim, 128, 1, 1), (embed_dim,)
    return shapes


def write_random_vae(path: Path, *, seed: int = 0, embed_dim: int = 64, with_encoder: bool = False) -> Path:
    """A random ``vae-oid.npz`` with the documented keys and shapes (a small embedding dim keeps it fast);
    ``with_encoder``: laid out like the published file, which also holds the encoder.

    Weights are scaled by fan-in so activations stay in a sane range through the decoder.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    shapes = vae_state_shapes(embed_dim)
    if with_encoder:
        shapes.update(vae_encoder_shapes(embed_dim))
    for name, shape in shapes.items():
        if name.endswith(".bias"):
            arrays[name] = (rng.standard_normal(shape) * 0.01).astype(np.float32)
        elif name == "_vq_vae._embedding":
            arrays[name] = rng.standard_normal(shape).astype(np.float32)
        else:
            transposed = name.startswith("decoder.") and name.split(".")[1] in {"4", "6", "8", "10"}
            # A stride-2 transposed conv with a 4x4 kernel sums in_channels * 4 inputs per output pixel.
            fan_in = shape[0] * 4 if transposed else shape[1] * shape[2] * shape[3]
            arrays[name] = (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path
