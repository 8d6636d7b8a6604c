"""clip.embed and clip.embed-text: the global embeddings the folder index stores and queries with.

They are the vectors ``clip.search`` compares (L2-normalised image and text embeddings of the model), so
a query on the index ranks images exactly as ``clip.search`` does.
"""

from __future__ import annotations

from vfmstudio.plugin_api import Embedding, LoadedImage, ParamError, Result, RunContext
from vfmstudio_clip._model import cached_image_embeddings, encode_texts, feature_key, get_bundle

IMAGE_SPACE = "clip image"
TEXT_SPACE = "clip text"


def prepare(ctx: RunContext, images: list[LoadedImage], params: dict) -> None:
    """Batch engines call this first: the images go through the model ``batch_size`` at a time."""
    bundle = get_bundle(ctx)
    cached_image_embeddings(
        ctx, bundle, [im.id for im in images], lambda i: images[i].pixels, params["batch_size"]
    )


def embed(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    bundle = get_bundle(ctx)
    vectors = cached_image_embeddings(
        ctx, bundle, [im.id for im in images], lambda i: images[i].pixels, params["batch_size"]
    )
    return [Embedding(vector=v, space=IMAGE_SPACE, image_id=im.id) for im, v in zip(images, vectors)]


def embed_text(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
    text = params["text"].strip()
    if not text:
        raise ParamError("parameter 'text': give the text to encode")
    bundle = get_bundle(ctx)
    vector = ctx.cached(feature_key(bundle, "query", text), lambda: encode_texts(bundle, [text])[0])
    return [Embedding(vector=vector, space=TEXT_SPACE)]
