"""Greedy generation with streaming, cancellation and cached image features.

- The image goes through the vision tower once per (model, image): its projected features sit in the
  feature cache and are handed to ``generate`` as ``mm_encoder_outputs``, so a new prompt on the same
  image (another question, other classes) skips the vision tower.
- A finished generation is cached per (model, image, prompt, max_new_tokens): rerunning a tool with the
  same inputs (the window resubmits on every parameter edit) costs no forward pass at all.
- Each new token is streamed to ``ctx.partial`` as a :class:`~vfmstudio.core.results.Text` holding the
  text so far, and a stopping criterion wired to ``ctx.cancel`` ends generation after the current step.
- The log-probability of each chosen token is recorded (the last logits processor sees the distribution
  greedy decoding picks from), so detections and segments can be scored (:func:`object_score`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from vfmstudio.plugin_api import LoadedImage, RunContext, Text, pixel_values_on_device
from vfmstudio_paligemma._model import PaliGemma

# Extension point for tests and experiments: each factory gets the prompt length (in tokens) and returns a
# LogitsProcessor added to every generation. While any is installed, finished generations are not cached
# (their output depends on the hook, not only on the inputs).
logits_processor_hooks: list[Callable[[int], LogitsProcessor]] = []


@dataclass(frozen=True)
class Generation:
    prompt: str
    token_ids: tuple[int, ...]  # generated tokens only, without the final <eos>
    text: str  # decoded without special tokens; <locNNNN>/<segNNN> are kept
    finished: bool  # False when max_new_tokens cut the output short
    # Natural log of the probability of each token in token_ids, and where each token's text ends in
    # ``text`` (characters; a token with no text ends where the one before it does).
    token_logprobs: tuple[float, ...] = ()
    token_ends: tuple[int, ...] = ()

    def span_logprob(self, spans: Iterable[tuple[int, int]]) -> float | None:
        """Mean log-probability of the tokens whose text overlaps any of the ``[start, end)`` spans."""
        picked = []
        start = 0
        for lp, end in zip(self.token_logprobs, self.token_ends):
            if end > start and any(start < b and end > a for a, b in spans):
                picked.append(lp)
            start = max(start, end)
        return sum(picked) / len(picked) if picked else None


def object_score(gen: Generation, spans: Iterable[tuple[int, int]]) -> float:
    """An object's score: the geometric mean of the probabilities of its loc and label tokens (0 when
    none of its text can be traced to a token, which does not happen for text the model generated)."""
    mean = gen.span_logprob(spans)
    return 0.0 if mean is None else math.exp(mean)


class _ChosenLogProb(LogitsProcessor):
    """Records log p(chosen token) per step; last in the list, so it sees the final greedy distribution."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        s = scores[0].float()
        self.values.append(float(s.max() - torch.logsumexp(s, dim=-1)))
        return scores


def token_text_ends(decode: Callable[[list[int]], str], ids: list[int]) -> tuple[str, tuple[int, ...]]:
    """The stripped decoded text of ``ids`` and, per token, where its text ends in it (prefix decoding,
    so pieces that merge with their neighbours on decoding are placed where the full decode puts them)."""
    full = decode(ids)
    lead = len(full) - len(full.lstrip())
    text = full.strip()
    ends, last = [], 0
    for k in range(1, len(ids) + 1):
        last = min(max(last, len(decode(ids[:k])) - lead), len(text))
        ends.append(max(last, 0))
    return text, tuple(ends)


class _StopOnCancel(StoppingCriteria):
    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        return torch.full(
            (input_ids.shape[0],), self.ctx.cancel.cancelled, dtype=torch.bool, device=input_ids.device
        )


class _TextStream(BaseStreamer):
    """Streams the decoded text so far; the first ``put`` is the prompt and is skipped."""

    def __init__(
        self,
        ctx: RunContext,
        decode: Callable[[list[int]], str],
        prompt: str,
        image_id: str,
        max_new_tokens: int,
    ):
        self.ctx, self.decode, self.prompt, self.image_id = ctx, decode, prompt, image_id
        self.max_new_tokens = max_new_tokens
        self.ids: list[int] = []
        self._saw_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self._saw_prompt:
            self._saw_prompt = True
            return
        self.ids.extend(int(v) for v in value.reshape(-1).tolist())
        if self.ctx.cancel.cancelled:
            return  # the stopping criterion ends generation after this step
        self.ctx.partial(Text(text=self.decode(self.ids), prompt=self.prompt, image_id=self.image_id))
        self.ctx.progress(
            min(len(self.ids) / self.max_new_tokens, 1.0), f"generating ({len(self.ids)} tokens)"
        )

    def end(self) -> None:
        pass


def _model_key(pg: PaliGemma) -> tuple:
    return ("paligemma", *pg.info.ref.key, pg.info.device, pg.info.precision)


def prepare_inputs(pg: PaliGemma, image: LoadedImage, prompt: str) -> dict[str, torch.Tensor]:
    """Processor inputs for one image and prompt (``<image>`` tokens, ``<bos>``, prompt, newline)."""
    processor = pg.processor
    text = processor.image_token + prompt  # the processor adds <bos> after the image tokens and the "\n"
    with warnings.catch_warnings():
        # The processor builds training labels with np.array(tensor), which numpy 2 flags; we drop them.
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        inputs = processor(images=image.pixels, text=text, return_tensors="pt")
    inputs.pop("labels", None)
    dtype = next(pg.model.parameters()).dtype
    return {
        k: (v.to(pg.device, dtype) if v.is_floating_point() else v.to(pg.device)) for k, v in inputs.items()
    }


def _features_key(pg: PaliGemma, image: LoadedImage) -> tuple:
    return (*_model_key(pg), "image-features", image.id)


def image_features(
    ctx: RunContext, pg: PaliGemma, image: LoadedImage, pixel_values: torch.Tensor
) -> torch.Tensor:
    """The projected vision-tower output for ``image`` (1, image_seq_length, hidden), cached per image."""

    def compute() -> torch.Tensor:
        ctx.progress(None, "encoding the image")
        with torch.inference_mode():
            return pg.model.get_image_features(pixel_values).pooler_output.detach()

    return ctx.cached(_features_key(pg, image), compute)


def encode_images(ctx: RunContext, pg: PaliGemma, images: list[LoadedImage], batch_size: int = 8) -> int:
    """Fill the feature cache for ``images`` with batched vision-tower passes (batch engines call this
    before per-image runs); images already cached are skipped. Returns how many were encoded."""
    lookup = getattr(ctx.features, "get", None)
    missing = list(
        {im.id: im for im in images if lookup is None or lookup(_features_key(pg, im)) is None}.values()
    )
    dtype = next(pg.model.parameters()).dtype
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        ctx.progress(
            start / len(missing), f"encoding images {start + 1}-{start + len(chunk)} of {len(missing)}"
        )
        arrays = [im.pixels for im in chunk]
        # On a GPU the processor's steps run on the device (ADR 0092); on a CPU the processor itself.
        pixel_values = pixel_values_on_device(pg.processor.image_processor, arrays, pg.device, dtype)
        if pixel_values is None:
            pixel_values = pg.processor.image_processor(images=arrays, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            feats = pg.model.get_image_features(pixel_values.to(pg.device, dtype)).pooler_output
        for im, f in zip(chunk, feats):
            ctx.cached(_features_key(pg, im), lambda f=f: f[None].clone())
    return len(missing)


def generate(
    ctx: RunContext, pg: PaliGemma, image: LoadedImage, prompt: str, max_new_tokens: int
) -> Generation:
    """Greedy generation for ``prompt`` on ``image``; raises Cancelled when ``ctx.cancel`` fires."""
    key = (*_model_key(pg), "generation", image.id, prompt, int(max_new_tokens))
    if logits_processor_hooks:
        return _generate(ctx, pg, image, prompt, max_new_tokens)
    result = ctx.cached(key, lambda: _generate(ctx, pg, image, prompt, max_new_tokens))
    ctx.partial(Text(text=result.text, prompt=prompt, image_id=image.id))
    return result


def _generate(
    ctx: RunContext, pg: PaliGemma, image: LoadedImage, prompt: str, max_new_tokens: int
) -> Generation:
    inputs = prepare_inputs(pg, image, prompt)
    features = image_features(ctx, pg, image, inputs.pop("pixel_values"))
    tokenizer = pg.processor.tokenizer
    prompt_len = int(inputs["input_ids"].shape[1])

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True)

    streamer = _TextStream(ctx, decode, prompt, image.id, max_new_tokens)
    chosen = _ChosenLogProb()
    processors = LogitsProcessorList([*(factory(prompt_len) for factory in logits_processor_hooks), chosen])
    ctx.check_cancelled()
    with torch.inference_mode():
        out = pg.model.generate(
            **inputs,
            mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=features)},
            max_new_tokens=int(max_new_tokens),
            do_sample=False,
            num_beams=1,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([_StopOnCancel(ctx)]),
            logits_processor=processors,
        )
    ctx.check_cancelled()
    ids = [int(v) for v in out[0, prompt_len:].tolist()]
    eos = _eos_ids(pg)
    finished = False
    if ids and ids[-1] in eos:
        finished = True
        ids = ids[:-1]
    if tokenizer.pad_token_id is not None:
        while ids and ids[-1] == tokenizer.pad_token_id:
            ids.pop()
    text, ends = token_text_ends(decode, ids)
    return Generation(
        prompt=prompt,
        token_ids=tuple(ids),
        text=text,
        finished=finished,
        token_logprobs=tuple(chosen.values[: len(ids)]),
        token_ends=ends,
    )


def _eos_ids(pg: PaliGemma) -> set[int]:
    eos = pg.model.generation_config.eos_token_id
    if eos is None:
        eos = pg.processor.tokenizer.eos_token_id
    return set(eos) if isinstance(eos, list | tuple) else {int(eos)}
