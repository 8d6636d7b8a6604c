"""Loading a SAM or SAM 2.1 checkpoint into the shared model cache, and telling the families apart.

The family comes from ``config.json`` (``model_type``), read without loading weights, so that a
prompt the checkpoint cannot take (a text prompt on SAM 1) is refused before anything heavy runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vfmstudio.plugin_api import (
    ModelError,
    ModelRef,
    ParamError,
    RunContext,
    parse_model_ref,
    resolve_local_path,
)

DEFAULT_MODEL = "facebook/sam-vit-base"
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # config.json / preprocessor_config.json are a few kB
# model_type in config.json -> family. SAM 3's concept (text) model is "sam3"; its point-prompt half
# is "sam3_tracker".
FAMILIES = {"sam": "sam", "sam2": "sam2", "sam3": "sam3", "sam3_tracker": "sam3", "sam3_video": "sam3"}
POINT_FAMILIES = ("sam", "sam2")
TITLES = {"sam": "SAM", "sam2": "SAM 2", "sam3": "SAM 3"}


@dataclass(frozen=True)
class Checkpoint:
    """What config.json and preprocessor_config.json say, before any weight is read."""

    ref: ModelRef
    family: str
    input_size: int  # SAM: longest side after resizing (then padded square); SAM 2: the square side
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def title(self) -> str:
        return f"'{self.ref.display}' ({TITLES[self.family]})"


@dataclass
class SamModel:
    """A loaded checkpoint: the transformers model and, for SAM 1, its image processor."""

    checkpoint: Checkpoint
    model: Any  # SamModel | Sam2Model
    image_processor: Any  # SAM 1: the processor's image processor (the reference resize and pad)
    device: str
    precision: str


def _read_json(path, what: str) -> dict:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelError(f"'{path}' is larger than {MAX_CONFIG_BYTES // 1024} kB; not a {what}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read '{path}': {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"'{path}' is not a {what} (expected a JSON object)")
    return data


def _sam3_image_size(config: dict) -> object:
    """The ViT input side in a SAM 3 config (``sam3``, or ``sam3_video`` with a ``detector_config``)."""
    detector = config.get("detector_config") if isinstance(config.get("detector_config"), dict) else config
    vision = detector.get("vision_config") or {}
    backbone = vision.get("backbone_config") if isinstance(vision, dict) else None
    return backbone.get("image_size") if isinstance(backbone, dict) else None


def _read_checkpoint(ref: ModelRef) -> Checkpoint:
    folder = resolve_local_path(ref)
    config = _read_json(folder / "config.json", "model config")
    model_type = config.get("model_type")
    family = FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if family is None:
        raise ModelError(f"model '{ref.display}' is a '{model_type}' model, not SAM, SAM 2 or SAM 3")
    pre_path = folder / "preprocessor_config.json"
    pre = _read_json(pre_path, "preprocessor config") if pre_path.is_file() else {}
    if not pre and (folder / "processor_config.json").is_file():  # newer repos nest it in the processor's
        nested = _read_json(folder / "processor_config.json", "processor config").get("image_processor")
        pre = nested if isinstance(nested, dict) else {}
    size = pre.get("size") if isinstance(pre.get("size"), dict) else {}
    if family == "sam3":  # SAM 3: a 1008 square, mean and std 0.5 (Sam3ImageProcessor's defaults)
        side = size.get("height") or _sam3_image_size(config) or 1008
        default_mean = default_std = [0.5, 0.5, 0.5]
    else:
        prompt = config.get("prompt_encoder_config") or {}
        side = size.get("longest_edge") or size.get("height") or prompt.get("image_size") or 1024
        default_mean, default_std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    mean = pre.get("image_mean") or default_mean
    std = pre.get("image_std") or default_std
    try:
        return Checkpoint(
            ref=ref,
            family=family,
            input_size=int(side),
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
        )
    except (TypeError, ValueError) as exc:
        raise ModelError(f"'{pre_path}' has a malformed size, image_mean or image_std ({exc})") from exc


def checkpoint(ctx: RunContext) -> Checkpoint:
    """The run's checkpoint description (cached; reads two small JSON files once)."""
    ref = parse_model_ref(ctx.model_ref or DEFAULT_MODEL)
    return ctx.model(("sam.checkpoint", *ref.key), lambda: _read_checkpoint(ref))


def require_point_prompts(ckpt: Checkpoint) -> None:
    if ckpt.family not in POINT_FAMILIES:
        raise ParamError(
            f"{ckpt.title} takes concept prompts through sam.text; point and box prompts "
            "need a SAM or SAM 2.1 checkpoint (e.g. facebook/sam-vit-base)"
        )


def _load(ckpt: Checkpoint, device: str, precision: str) -> SamModel:
    import transformers

    from vfmstudio.plugin_api import load_pretrained, load_processor

    cls = transformers.SamModel if ckpt.family == "sam" else transformers.Sam2Model
    model, info = load_pretrained(cls, ckpt.ref, device=device, precision=precision)
    image_processor = None
    if ckpt.family == "sam":
        # SAM 1's processor has a PIL backend (no torchvision): use the reference resize and pad itself.
        image_processor = load_processor(transformers.SamProcessor, ckpt.ref).image_processor
    return SamModel(
        checkpoint=ckpt,
        model=model,
        image_processor=image_processor,
        device=info.device,
        precision=info.precision,
    )


def get(ctx: RunContext) -> SamModel:
    """The run's point-prompt model from the model cache (loaded once per ref, device and precision)."""
    ckpt = checkpoint(ctx)
    require_point_prompts(ckpt)
    ctx.progress(None, f"loading {ckpt.ref.display}")
    bundle = ctx.model(("sam", *ckpt.ref.key), lambda: _load(ckpt, ctx.device, ctx.precision))
    ctx.used_device, ctx.used_precision = bundle.device, bundle.precision
    return bundle
