"""Tiny random CLIP and SigLIP checkpoints with real tokenizers, built locally.

Each builder writes a folder that loads like a hub snapshot: ``config.json`` + ``model.safetensors``
for ``CLIPModel``/``SiglipModel``, the image processor config, and a tokenizer trained here with the
``tokenizers`` library:

- CLIP: byte-level BPE with ``</w>`` word ends and ``<|startoftext|>``/``<|endoftext|>``, saved by
  ``CLIPTokenizer`` itself so the files are what the real checkpoints ship.
- SigLIP: a Unigram (sentencepiece-style) model with the real special tokens ``<pad>``, ``</s>``,
  ``<unk>``, ``▁`` word boundaries, lower-casing and punctuation removal like ``SiglipTokenizer``,
  and ``</s>`` appended to every text. It is saved as ``tokenizer.json`` (``TokenizersBackend``)
  because the real ``SiglipTokenizer`` needs the ``sentencepiece`` package.

``CLIPProcessor``/``SiglipProcessor``/``AutoProcessor``, the models and
``transformers.pipeline("zero-shot-image-classification", model=DIR)`` all load these folders.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

# Words the tokenizers learn from: class names and prompt templates seen in tests and examples.
_CORPUS = [
    "a photo of a {}.", "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a rendering of a {}.", "graffiti of a {}.", "a cropped photo of the {}.", "a tattoo of a {}.",
    "the embroidered {}.", "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.",
    "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.", "the plastic {}.",
    "a photo of the cool {}.", "a close-up photo of a {}.", "a black and white photo of the {}.",
    "a painting of the {}.", "a pixelated photo of the {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a good photo of the {}.", "itap of a {}.", "art of the {}.",
    "a toy {}.", "a low resolution photo of the {}.", "a origami {}.", "this is a photo of {}.",
    "cat dog car bird tree sky road person house flower grass water building background",
    "red green blue white black yellow a an the of in on with and",
]  # fmt: skip

CLIP_IMAGE_SIZE = 48
CLIP_PATCH = 8
SIGLIP_IMAGE_SIZE = 48
SIGLIP_PATCH = 8


def _corpus() -> list[str]:
    words = "cat dog car bird tree sky road person house flower grass water".split()
    return [t.replace("{}", w) for t in _CORPUS for w in words] + _CORPUS


# ---------------------------------------------------------------- CLIP


def _clip_bpe(n_merges: int = 300) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary laid out like openai/clip: bytes, bytes + ``</w>``, merges, specials.

    Merges are learned here with a plain, deterministic BPE (ties broken alphabetically), so the same
    seed always gives the same token ids; the ``tokenizers`` trainer breaks ties differently per run.
    The corpus is ASCII, whose byte-level symbols are the characters themselves.
    """
    words = Counter(
        w
        for line in _corpus()
        for w in re.findall(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+", line.lower())
    )
    split = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in words}
    merges = learn_bpe_merges(words, split, n_merges)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in alphabet + [c + "</w>" for c in alphabet] + [a + b for a, b in merges]:
        vocab.setdefault(token, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def build_tiny_clip(dest: Path, seed: int = 0) -> Path:
    """A 2-layer CLIP (ViT, patch 8 at 48 px, 6x6 grid) with a real BPE tokenizer, saved to ``dest``."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    vocab, merges = _clip_bpe()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": CLIP_IMAGE_SIZE,
            "patch_size": CLIP_PATCH,
        },
        projection_dim=16,
        logit_scale_init_value=2.6592,  # exp() = 14.3 (CLIP's initial value): moderate scores, good for comparisons
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    _spread_weights(model, seed)
    model.save_pretrained(dest, safe_serialization=True)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": CLIP_IMAGE_SIZE},
        crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE},
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(dest)
    return dest


# ---------------------------------------------------------------- SigLIP

SIGLIP_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in the real spiece.model


def _siglip_unigram() -> Tokenizer:
    """A Unigram model over whole words of the corpus plus single characters (so nothing is unknown).

    Built from counted pieces rather than trained: the Unigram trainer needs far more text than a test
    corpus to keep whole words, and sentencepiece vocabularies of real checkpoints are mostly words.
    """
    import math
    from collections import Counter

    strip = str.maketrans("", "", string.punctuation)
    counts = Counter(w for line in _corpus() for w in line.translate(strip).lower().split())
    total = sum(counts.values())
    pieces: list[tuple[str, float]] = [(t, 0.0) for t in SIGLIP_SPECIALS]
    pieces += [("\u2581" + w, math.log(c / total)) for w, c in sorted(counts.items())]
    pieces += [("\u2581", -8.0)] + [(c, -10.0) for c in string.ascii_lowercase + string.digits]
    tok = Tokenizer(models.Unigram(pieces, unk_id=SIGLIP_SPECIALS.index("<unk>"), byte_fallback=False))
    # SiglipTokenizer lower-cases, strips punctuation and collapses white space before sentencepiece.
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(_char_class(string.punctuation)), ""),
            normalizers.Lowercase(),
            normalizers.Replace(Regex(r"\s+"), " "),
            normalizers.Strip(),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    eos_id = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
    )
    return tok


def _char_class(chars: str) -> str:
    """A regex character class matching any of ``chars``."""
    return "[" + "".join("\\" + c if c in "\\]^-[" else c for c in chars) + "]"


def build_tiny_siglip(dest: Path, seed: int = 0) -> Path:
    """A 2-layer SigLIP (patch 8 at 48 px, attention-pooling head) with a Unigram tokenizer, saved to ``dest``."""
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    backend = _siglip_unigram()
    tokenizer = TokenizersBackend(
        tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="</s>", model_max_length=64
    )
    vocab_size = backend.get_vocab_size()
    config = SiglipConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 64,
            "projection_size": 32,
            "pad_token_id": backend.token_to_id("</s>"),
            "eos_token_id": backend.token_to_id("</s>"),
            "bos_token_id": None,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": SIGLIP_IMAGE_SIZE,
            "patch_size": SIGLIP_PATCH,
        },
    )
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    _spread_weights(model, seed)
    with torch.no_grad():  # trained SigLIP values (scale ~ exp(4.7), bias ~ -12.9) scaled to a tiny model
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-2.0)
    model.save_pretrained(dest, safe_serialization=True)
    image_processor = SiglipImageProcessorPil(size={"height": SIGLIP_IMAGE_SIZE, "width": SIGLIP_IMAGE_SIZE})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(dest)
    return dest


def _spread_weights(model: torch.nn.Module, seed: int) -> None:
    """Re-draw weights with a larger spread: default init keeps random embeddings nearly parallel,
    which would make every score almost equal and comparisons between code paths meaningless."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("logit_scale", "logit_bias")):
                continue
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / p.shape[-1] ** 0.5))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))


def learn_bpe_merges(
    words: Mapping[str, int], split: dict[str, tuple[str, ...]], n_merges: int
) -> list[tuple[str, str]]:
    """Plain, deterministic BPE: up to ``n_merges`` merges of the most frequent adjacent pair (ties broken
    alphabetically, pairs seen once never merged); ``split`` (word -> symbols) is updated in place."""
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for w, n in words.items():
            symbols = split[w]
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        for w, symbols in split.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            split[w] = tuple(out)
    return merges
