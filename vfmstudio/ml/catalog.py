"""The models vfmstudio knows how to use, for pickers and `vfmstudio models` (no torch, no network)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from vfmstudio.ml import hub

Family = Literal["dinov2", "clip", "siglip", "paligemma", "sam"]


@dataclass(frozen=True)
class KnownModel:
    ref: str
    family: Family
    title: str
    params_millions: float  # approximate, for size hints before anything is downloaded
    gated: bool = False

    @property
    def size(self) -> str:
        m = self.params_millions
        return f"{m / 1000:.1f}B" if m >= 1000 else f"{m:.0f}M"


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("facebook/dinov2-small", "dinov2", "DINOv2 ViT-S/14", 22),
    KnownModel("facebook/dinov2-base", "dinov2", "DINOv2 ViT-B/14", 86),
    KnownModel("facebook/dinov2-large", "dinov2", "DINOv2 ViT-L/14", 304),
    KnownModel("facebook/dinov2-giant", "dinov2", "DINOv2 ViT-g/14", 1136),
    KnownModel("facebook/dinov2-with-registers-small", "dinov2", "DINOv2 ViT-S/14 + registers", 22),
    KnownModel("facebook/dinov2-with-registers-base", "dinov2", "DINOv2 ViT-B/14 + registers", 86),
    KnownModel("facebook/dinov2-with-registers-large", "dinov2", "DINOv2 ViT-L/14 + registers", 304),
    KnownModel("facebook/dinov2-with-registers-giant", "dinov2", "DINOv2 ViT-g/14 + registers", 1136),
    KnownModel("openai/clip-vit-base-patch32", "clip", "CLIP ViT-B/32", 151),
    KnownModel("openai/clip-vit-base-patch16", "clip", "CLIP ViT-B/16", 150),
    KnownModel("openai/clip-vit-large-patch14", "clip", "CLIP ViT-L/14", 428),
    KnownModel("google/siglip-base-patch16-224", "siglip", "SigLIP ViT-B/16 224", 203),
    KnownModel("google/siglip-so400m-patch14-384", "siglip", "SigLIP So400m/14 384", 878),
    KnownModel("google/paligemma2-3b-mix-224", "paligemma", "PaliGemma 2 3B mix 224", 3030, gated=True),
    KnownModel("google/paligemma2-3b-mix-448", "paligemma", "PaliGemma 2 3B mix 448", 3030, gated=True),
    KnownModel("facebook/sam-vit-base", "sam", "SAM ViT-B", 94),
    KnownModel("facebook/sam-vit-large", "sam", "SAM ViT-L", 312),
    KnownModel("facebook/sam-vit-huge", "sam", "SAM ViT-H", 641),
    KnownModel("facebook/sam2.1-hiera-tiny", "sam", "SAM 2.1 Hiera-T", 39),
    KnownModel("facebook/sam2.1-hiera-small", "sam", "SAM 2.1 Hiera-S", 46),
    KnownModel("facebook/sam2.1-hiera-base-plus", "sam", "SAM 2.1 Hiera-B+", 81),
    KnownModel("facebook/sam2.1-hiera-large", "sam", "SAM 2.1 Hiera-L", 224),
    KnownModel("facebook/sam3", "sam", "SAM 3", 848, gated=True),
)


def get_known(ref: str) -> KnownModel | None:
    """The catalogue entry for a hub id (a trailing ``@revision`` is ignored)."""
    repo_id = ref.split("@", 1)[0]
    return next((m for m in KNOWN_MODELS if m.ref == repo_id), None)


def models_for(family: Family) -> tuple[KnownModel, ...]:
    return tuple(m for m in KNOWN_MODELS if m.family == family)


def list_models(family: Family | None = None) -> list[dict[str, Any]]:
    """One dict per known model: ref, family, title, size, params_millions, gated, cached."""
    return [
        {
            "ref": m.ref,
            "family": m.family,
            "title": m.title,
            "size": m.size,
            "params_millions": m.params_millions,
            "gated": m.gated,
            "cached": hub.is_cached(m.ref),
        }
        for m in KNOWN_MODELS
        if family is None or m.family == family
    ]
