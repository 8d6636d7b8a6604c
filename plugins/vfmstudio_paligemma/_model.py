"""Loading a PaliGemma checkpoint (model + processor) into the shared model cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import transformers

from vfmstudio.core.context import RunContext
from vfmstudio.ml._loading import LoadedModelInfo, load_pretrained, load_processor
from vfmstudio.ml.errors import ModelError, ModelNotAvailableError
from vfmstudio.ml.refs import parse_model_ref

DEFAULT_MODEL = "google/paligemma2-3b-mix-224"


@dataclass
class PaliGemma:
    """A loaded checkpoint: everything a generation needs."""

    model: Any  # PaliGemmaForConditionalGeneration
    processor: Any  # PaliGemmaProcessor
    info: LoadedModelInfo

    @property
    def device(self) -> str:
        return self.info.device


def _gated_hint(repo_id: str) -> str:
    return (f"PaliGemma checkpoints are gated: accept the licence on https://huggingface.co/{repo_id} and "
            "configure a token (set HF_TOKEN or run `hf auth login`) before fetching")


def load(ref: str, device: str = "auto", precision: str = "auto") -> PaliGemma:
    """Load ``ref`` (hub id or folder). The memory estimate runs before any weight is read (in
    ``load_pretrained``), so a model too large for the device is refused with a clear message."""
    parsed = parse_model_ref(ref)
    try:
        # attn_implementation=None: transformers picks SDPA where the text model supports it and eager
        # otherwise (Gemma 2's logit soft-capping has no SDPA path here).
        model, info = load_pretrained(transformers.PaliGemmaForConditionalGeneration, parsed, device=device,
                                      precision=precision, attn_implementation=None)
        processor = load_processor(transformers.PaliGemmaProcessor, parsed)
    except ModelNotAvailableError as exc:
        if parsed.repo_id and "paligemma" in parsed.repo_id.lower():
            # Fetching it will need the licence step too: say so in the same line.
            raise ModelError(f"{exc.message}; {_gated_hint(parsed.repo_id)}") from exc
        raise
    if not hasattr(processor, "image_seq_length") or not hasattr(processor, "tokenizer"):
        raise ModelError(f"'{parsed.display}' has no PaliGemma processor (processor_config.json)")
    return PaliGemma(model=model, processor=processor, info=info)


def get(ctx: RunContext) -> PaliGemma:
    """The model for this run, from the model cache (loaded once per ref, device and precision)."""
    ref = ctx.model_ref or DEFAULT_MODEL
    ctx.progress(None, f"loading {ref}")
    bundle = ctx.model(("paligemma", parse_model_ref(ref).key), lambda: load(ref, ctx.device, ctx.precision))
    ctx.used_device = bundle.info.device
    ctx.used_precision = bundle.info.precision
    return bundle
