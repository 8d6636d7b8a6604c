"""The PaliGemma tool functions: ``fn(ctx, images, params) -> list[Result]``."""

from __future__ import annotations

import numpy as np

from vfmstudio.plugin_api import Detections, LoadedImage, Masks, Result, RunContext, Text
from vfmstudio_paligemma import _generation, _mask_decoder, _model, prompts
from vfmstudio_paligemma.parsing import ParsedObject, parse_objects, split_classes

UNLABELLED = "object"


def prepare(ctx: RunContext, images: list[LoadedImage], params: dict) -> None:
    """Batch engines call this before per-image runs: the vision tower runs over the images in batches;
    the per-image runs then only generate."""
    _generation.encode_images(ctx, _model.get(ctx), images)


def _text(ctx: RunContext, image: LoadedImage, prompt: str, max_new_tokens: int) -> list[Result]:
    pg = _model.get(ctx)
    gen = _generation.generate(ctx, pg, image, prompt, max_new_tokens)
    return [Text(text=gen.text, prompt=prompt, image_id=image.id)]


def caption(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    prompt = prompts.caption_prompt(params["length"], params["lang"])
    return _text(ctx, images[0], prompt, params["max_new_tokens"])


def ask(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    prompt = prompts.answer_prompt(params["question"], params["lang"])
    return _text(ctx, images[0], prompt, params["max_new_tokens"])


def ocr(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    return _text(ctx, images[0], prompts.ocr_prompt(), params["max_new_tokens"])


def prompt(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    return _text(ctx, images[0], prompts.raw_prompt(params["prompt"]), params["max_new_tokens"])


def _label(obj: ParsedObject, classes: tuple[str, ...]) -> str:
    if obj.label:
        return obj.label
    # A missing label is unambiguous only when a single class was asked for.
    return classes[0] if len(classes) == 1 else UNLABELLED


def detect(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    image = images[0]
    classes = split_classes(params["classes"])
    prompt = prompts.detect_prompt(classes)
    pg = _model.get(ctx)
    gen = _generation.generate(ctx, pg, image, prompt, params["max_new_tokens"])
    objects = parse_objects(gen.text)
    boxes = np.array([o.box_xyxy(image.width, image.height) for o in objects], dtype=np.float32).reshape(
        -1, 4
    )
    return [
        Detections(
            boxes_xyxy=boxes,
            labels=tuple(_label(o, classes) for o in objects),
            scores=_scores(gen, objects),
            image_id=image.id,
        ),
        *_why_nothing(gen.text, objects, prompt, image.id, "<loc> boxes"),
    ]


def _scores(gen: _generation.Generation, objects: list[ParsedObject]) -> np.ndarray:
    return np.array([_generation.object_score(gen, o.spans) for o in objects], dtype=np.float32)


def segment(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    image = images[0]
    classes = split_classes(params["classes"])
    prompt = prompts.segment_prompt(classes)
    pg = _model.get(ctx)
    gen = _generation.generate(ctx, pg, image, prompt, params["max_new_tokens"])
    objects = [o for o in parse_objects(gen.text) if o.seg is not None]
    w, h = image.width, image.height
    paste = params.get("paste", "evaluator")
    if paste == "evaluator":
        # The evaluator gives no mask for a box that is empty once truncated to pixels: such objects go.
        pixel_boxes = [_mask_decoder.evaluator_box(o.locs, w, h) for o in objects]
        objects = [o for o, b in zip(objects, pixel_boxes) if b is not None]
        pixel_boxes = [b for b in pixel_boxes if b is not None]
    else:
        pixel_boxes = [_mask_decoder.pixel_box(o.box_xyxy(w, h), w, h) for o in objects]
    boxes = np.array([o.box_xyxy(w, h) for o in objects], dtype=np.float32).reshape(-1, 4)
    masks = np.zeros((len(objects), h, w), dtype=bool)
    if objects:
        path = _mask_decoder.resolve_vae_path(params.get("vae_path"))
        decoder = ctx.model(
            ("paligemma-mask-decoder", str(path.resolve())),
            lambda: _mask_decoder.load_decoder(path, pg.device),
        )
        ctx.progress(None, f"decoding {len(objects)} masks")
        logits = _mask_decoder.decode_logits(decoder, [o.seg for o in objects])
        for i, box in enumerate(pixel_boxes):
            _mask_decoder.paste_mask(logits[i], box, w, h, out=masks[i])
    return [
        Masks(
            masks=masks,
            labels=tuple(_label(o, classes) for o in objects),
            boxes_xyxy=boxes,
            scores=_scores(gen, objects),
            image_id=image.id,
        ),
        *_why_nothing(gen.text, objects, prompt, image.id, "<loc> boxes with <seg> masks"),
    ]


def _why_nothing(answer: str, objects: list, prompt: str, image_id: str, wanted: str) -> list[Result]:
    """When nothing was found, the model's raw answer says why (e.g. it named no object)."""
    if objects:
        return []
    said = " ".join(answer.split())
    said = said if len(said) <= 120 else said[:119] + "…"
    return [
        Text(
            f"no {wanted} in the model's answer: {said!r}" if said else f"the model gave no {wanted}",
            prompt=prompt,
            image_id=image_id,
        )
    ]
