"""Loading a PaliGemma checkpoint (model + processor) into the shared model cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import transformers

from vfmstudio.plugin_api import (
    BYTES_PER_ELEMENT,
    LoadedModelInfo,
    ModelError,
    ModelNotAvailableError,
    ModelRef,
    RunContext,
    check_fits,
    get_known,
    is_cached,
    load_pretrained,
    load_processor,
    parse_model_ref,
    resolve_device,
    resolve_precision,
)

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
    return (
        f"PaliGemma checkpoints are gated: accept the licence on https://huggingface.co/{repo_id} and "
        "configure a token (set HF_TOKEN or run `hf auth login`) before fetching"
    )


def _refuse_before_download(ref: ModelRef, device: str, precision: str) -> None:
    """A known hub model that is not cached yet: check its catalogue size first, so that a 3B model that
    cannot fit is refused before gigabytes are downloaded. Cached or local models get the exact
    estimate from their safetensors headers in ``load_pretrained``."""
    known = get_known(ref.repo_id) if ref.repo_id else None
    if known is None or is_cached(ref):
        return
    dev = resolve_device(device)
    nbytes = int(known.params_millions * 1e6 * BYTES_PER_ELEMENT[resolve_precision(precision, dev)])
    check_fits(nbytes, dev, model=ref.display)


def load(ref: str, device: str = "auto", precision: str = "auto") -> PaliGemma:
    """Load ``ref`` (hub id or folder). The memory estimate runs before any weight is read, so a model
    too large for the device is refused with a clear message instead of swapping or crashing."""
    parsed = parse_model_ref(ref)
    _refuse_before_download(parsed, device, precision)
    try:
        # attn_implementation=None: transformers picks SDPA where the text model supports it and eager
        # otherwise (Gemma 2's logit soft-capping has no SDPA path here).
        model, info = load_pretrained(
            transformers.PaliGemmaForConditionalGeneration,
            parsed,
            device=device,
            precision=precision,
            attn_implementation=None,
        )
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
