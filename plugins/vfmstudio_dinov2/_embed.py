"""dino.embed: one global vector per image for the folder index (CLS token or mean patch token).

The features come from the same cached forward pass as every other DINOv2 tool, so an image already
seen at this resolution costs nothing, and batch engines fill the cache in batches through ``prepare``.
"""

from __future__ import annotations

import numpy as np

from vfmstudio.plugin_api import Embedding, LoadedImage, Result, RunContext
from vfmstudio_dinov2._features import extractor_for, features_for


def _l2(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def pooled(cls: np.ndarray, tokens: np.ndarray, pool: str) -> np.ndarray:
    """``cls``: the normed CLS token; ``mean``: the mean of the normed patch tokens; L2-normalised."""
    return _l2(cls if pool == "cls" else tokens.mean(axis=0))


def embed(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    extractor = extractor_for(ctx)
    out: list[Result] = []
    for image in images:
        feats = features_for(ctx, extractor, image, params["resolution"])
        out.append(
            Embedding(
                vector=pooled(feats.cls, feats.tokens, params["pool"]),
                space=f"dino {params['pool']}",
                image_id=image.id,
            )
        )
    return out
