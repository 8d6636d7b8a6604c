"""clip.search: rank images by similarity to a text query and/or an example image.

Image embeddings are cached by content hash; folder images are hashed without decoding and decoded
only when their embedding is missing, so a second query over a folder costs one text encoding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vfmstudio.plugin_api import (
    ImageLoadError,
    LoadedImage,
    ParamError,
    Ranking,
    RunContext,
    image_id_for_file,
    list_images,
    load_image,
)
from vfmstudio_clip._model import cached_image_embeddings, encode_texts, feature_key, get_bundle


def _folder_entries(folder: str, recursive: bool, known: set[str]) -> list[tuple[str, Path]]:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ParamError(f"parameter 'folder': {path} is not a folder")
    entries = []
    for file in list_images(path, recursive=recursive):
        try:
            image_id = image_id_for_file(file)
        except ImageLoadError:
            continue  # unreadable files are skipped, as the folder view skips them
        if image_id not in known:
            known.add(image_id)
            entries.append((image_id, file))
    return entries


def search(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Ranking]:
    query = params["query"].strip()
    example = params["example"].strip()
    if not query and not example:
        raise ParamError("parameter 'query': give a text query or an example image (parameter 'example')")
    ctx.progress(0.0, "loading model")
    bundle = get_bundle(ctx)

    # The images given, then folder images not among them (same content counted once).
    ids = [im.id for im in images]
    names = [im.name for im in images]
    sources: list[LoadedImage | Path] = list(images)
    if params["folder"].strip():
        for image_id, file in _folder_entries(params["folder"].strip(), params["recursive"], set(ids)):
            ids.append(image_id)
            names.append(file.name)
            sources.append(file)

    def pixels(i: int) -> np.ndarray:
        src = sources[i]
        return src.pixels if isinstance(src, LoadedImage) else load_image(src).pixels

    image_emb = cached_image_embeddings(ctx, bundle, ids, pixels, params["batch_size"], progress=(0.05, 0.95))
    scores = np.zeros(len(ids), np.float64)
    weight = params["example_weight"] if (query and example) else (1.0 if example else 0.0)
    if query:
        text = ctx.cached(feature_key(bundle, "query", query), lambda: encode_texts(bundle, [query])[0])
        scores += (1.0 - weight) * (image_emb @ text)
    if example:
        try:
            ex = load_image(Path(example).expanduser())
        except ImageLoadError as exc:
            raise ParamError(f"parameter 'example': {exc}") from None
        ex_emb = cached_image_embeddings(ctx, bundle, [ex.id], lambda _i: ex.pixels, 1)[0]
        scores += weight * (image_emb @ ex_emb)
    ranking = Ranking(
        image_ids=tuple(ids),
        scores=scores.astype(np.float32),
        names=tuple(names),
        query=query or f"like {Path(example).name}",
    )
    if params["top_k"] and params["top_k"] < len(ids):
        k = params["top_k"]
        ranking = Ranking(
            image_ids=ranking.image_ids[:k],
            scores=ranking.scores[:k],
            names=ranking.names[:k],
            query=ranking.query,
        )
    ctx.progress(1.0, "done")
    return [ranking]
