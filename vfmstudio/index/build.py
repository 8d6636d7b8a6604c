"""Bring a folder's embedding index up to date, and answer queries on it.

The vectors are computed by the batch engine (decode threads, batched ``prepare``, the same worker
as ``vfmstudio batch``) running an embedding tool (``dino.embed``, ``clip.embed``); only images whose
content is not in the store yet go through the model; images removed from the folder drop out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfmstudio.core.cancel import CancelToken
from vfmstudio.core.image import ImageLoadError, image_id_for_file
from vfmstudio.core.results import Embedding
from vfmstudio.core.tools import ToolSpec
from vfmstudio.index.groups import exact_copies, near_duplicate_rows, outlier_scores
from vfmstudio.index.search import Searcher
from vfmstudio.index.store import EmbeddingStore, FileEntry, IndexStoreError, store_dir

FLUSH_EVERY = 64  # vectors buffered before they are appended to the store (a kill loses at most these)

# Which embedding tool a model family uses, by the model_type of its config.json.
_TOOL_FOR_MODEL_TYPE = {
    "dinov2": "dino.embed",
    "dinov2_with_registers": "dino.embed",
    "dinov3_vit": "dino.embed",
    "clip": "clip.embed",
    "siglip": "clip.embed",
    "siglip2": "clip.embed",
}
_TOOL_FOR_FAMILY = {
    "dinov2": "dino.embed",
    "dinov3": "dino.embed",
    "dino": "dino.embed",
    "clip": "clip.embed",
    "siglip": "clip.embed",
    "siglip2": "clip.embed",
}


def embedding_tool_for(model: str) -> str:
    """The embedding tool for ``model``: by its catalogue family, else by a local folder's config.json."""
    from vfmstudio.ml.catalog import get_known

    known = get_known(model)
    if known is not None and str(known.family) in _TOOL_FOR_FAMILY:
        return _TOOL_FOR_FAMILY[str(known.family)]
    config = Path(model).expanduser() / "config.json"
    if config.is_file():
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except (OSError, ValueError, AttributeError):
            model_type = None
        if model_type in _TOOL_FOR_MODEL_TYPE:
            return _TOOL_FOR_MODEL_TYPE[model_type]
        raise IndexStoreError(
            f"{model}: a {model_type!r} model has no embedding tool; use a DINOv2 or "
            f"CLIP/SigLIP model, or name one with --tool"
        )
    raise IndexStoreError(
        f"{model}: not a known model and not a local model folder; pass --tool "
        f"(dino.embed or clip.embed) to say how to embed with it"
    )


@dataclass
class IndexReport:
    images: int = 0  # image files in the folder that could be hashed
    embedded: int = 0  # distinct contents that went through the model in this update
    reused: int = 0  # distinct contents already in the store
    removed: int = 0  # stored contents no longer in the folder
    failed: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "embedded": self.embedded,
            "reused": self.reused,
            "removed": self.removed,
            "failed": self.failed,
        }


@dataclass
class FolderIndex:
    """An up-to-date store for one folder, with its searcher (built on first use)."""

    folder: Path
    store: EmbeddingStore
    tool: ToolSpec
    params: dict[str, Any]
    model: str
    report: IndexReport
    _searcher: Searcher | None = None

    def rel_to_id(self) -> dict[str, str]:
        return {rel: e.image_id for rel, e in self.store.files.items()}

    def searcher(self, exact: bool | None = None) -> Searcher:
        if self._searcher is None or (exact is not None and self._searcher.exact != exact):
            self._searcher = Searcher(
                self.store.vectors(), self.store.ids, self.store.root / "hnsw.usearch", exact=exact
            )
        return self._searcher

    def files_of(self) -> dict[str, list[str]]:
        """Content id -> the relative paths that hold it (sorted)."""
        out: dict[str, list[str]] = {}
        for rel, image_id in sorted(self.rel_to_id().items()):
            out.setdefault(image_id, []).append(rel)
        return out

    def similar(self, vector: np.ndarray, top: int, *, exact: bool | None = None) -> list[tuple[str, float]]:
        """The ``top`` files most similar to ``vector``: (relative path, cosine), best first; copies of one
        content are listed together at its score."""
        files = self.files_of()
        hits = self.searcher(exact).search(np.asarray(vector, np.float32)[None], top)
        out: list[tuple[str, float]] = []
        for row, score in zip(hits.rows[0], hits.scores[0]):
            for rel in files.get(self.store.ids[int(row)], ()):
                out.append((rel, float(score)))
        return out[:top]

    def duplicates(self, threshold: float) -> list[dict[str, Any]]:
        """Exact copies first (same content), then near-duplicate groups (cosine >= threshold)."""
        groups: list[dict[str, Any]] = [{"kind": "exact", "files": g} for g in exact_copies(self.rel_to_id())]
        files = self.files_of()
        for rows in near_duplicate_rows(self.searcher(), len(self.store), threshold):
            rels = [rel for r in rows for rel in files.get(self.store.ids[r], ())]
            groups.append({"kind": "near", "files": rels})
        return groups

    def outliers(self, k: int = 10) -> list[tuple[str, float]]:
        """Files ranked by their mean distance to their k nearest neighbours, oddest first."""
        scores = outlier_scores(self.searcher(), len(self.store), k)
        files = self.files_of()
        ranked = sorted(range(len(scores)), key=lambda r: -scores[r])
        return [(rel, float(scores[r])) for r in ranked for rel in files.get(self.store.ids[r], ())]


def update_index(
    folder: str | os.PathLike[str],
    *,
    model: str,
    tool: ToolSpec,
    params: dict[str, Any],
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 16,
    cancel: CancelToken | None = None,
    on_progress: Callable[[Any], None] | None = None,
    services=None,
    store_root: Path | None = None,
    on_stored: Callable[[EmbeddingStore, dict[str, FileEntry]], None] | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int = 1,
) -> FolderIndex:
    """Embed what is new in ``folder``, drop what left it, and return the index (resumable: a killed or
    cancelled update keeps every vector it flushed).

    ``on_stored(store, files)`` is called (on the updating thread) once the reused vectors are known
    and again after each batch of new vectors is stored, so a view can draw them as they arrive;
    ``files`` maps every file of the folder to its content id (embedded or not yet).

    ``engine="ray"`` embeds on ``workers`` Ray actors (``ray_address``: a cluster, default a local
    instance); their vectors come back to this process, which alone writes the store."""
    from vfmstudio.engines.job import Plan, manifest_for
    from vfmstudio.engines.local import run_local
    from vfmstudio.engines.outputs import BatchOutput, OutputError, SourceStat, read_failures
    from vfmstudio.engines.sources import Source, SourceError, resolve_source
    from vfmstudio.engines.worker import RunSpec

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise IndexStoreError(f"{folder}: not a folder")
    root = root.resolve()
    params = tool.resolve_params(params)
    meta = {"tool": tool.id, "model": model, "params": params}
    store = EmbeddingStore.open(store_root or store_dir(root, tool.id, model, params), meta)
    try:
        source = resolve_source(root)
    except SourceError as exc:
        raise IndexStoreError(str(exc)) from None

    report = IndexReport()
    files: dict[str, FileEntry] = {}
    first_item_of: dict[str, Any] = {}
    for item in source.items:
        stat = SourceStat.of(item.path)
        known = store.files.get(item.rel)
        if (
            stat is not None
            and known is not None
            and (known.size, known.mtime_ns) == (stat.size, stat.mtime_ns)
        ):
            image_id = known.image_id
        else:
            try:
                image_id = image_id_for_file(item.path)
            except ImageLoadError as exc:
                report.failed.append({"path": item.rel, "reason": exc.reason})
                continue
            stat = SourceStat.of(item.path)
        files[item.rel] = FileEntry(image_id, stat.size if stat else -1, stat.mtime_ns if stat else -1)
        first_item_of.setdefault(image_id, item)
    report.images = len(files)
    report.removed = store.drop(set(store.ids) - set(first_item_of))
    todo = [item for image_id, item in first_item_of.items() if image_id not in store]
    report.reused = len(first_item_of) - len(todo)
    if on_stored is not None:
        on_stored(store, files)

    if todo:
        spec = RunSpec(
            tool=tool,
            params=params,
            model=model,
            out=str(store.root / "run"),
            device=device,
            precision=precision,
        )
        part = Source(spec=str(root), kind="folder", root=str(root), items=tuple(todo))
        output = BatchOutput(spec.out)
        try:
            output.open(
                manifest_for(spec, Source(spec=str(root), kind="folder", root=str(root), items=())),
                resume=True,
            )
        except OutputError as exc:
            raise IndexStoreError(str(exc)) from None
        output.reset_failures({it.key for it in todo})
        sink = _VectorSink(store, None if on_stored is None else lambda: on_stored(store, files))
        plan = Plan(spec, part, output, todo, skipped=0, batch_size=batch_size)
        try:
            if engine == "ray":
                from vfmstudio.engines._ray import RayUnavailable, run_ray

                try:
                    run_ray(
                        plan,
                        address=ray_address,
                        workers=workers,
                        on_update=on_progress,
                        on_embedding=sink.add,
                    )
                except RayUnavailable as exc:
                    raise IndexStoreError(str(exc)) from None
            else:
                run_local(plan, cancel=cancel, on_update=on_progress, services=services, sink=sink)
        finally:
            sink.flush()
            # Files whose vectors exist are recorded even when the run stopped early, so a rerun resumes.
            store.save_files({rel: e for rel, e in files.items() if e.image_id in store})
        report.embedded = sink.count
        reasons = {f.get("key"): f.get("reason", "") for f in read_failures(output.root)}
        report.failed += [
            {"path": it.rel, "reason": reasons.get(it.key) or "not embedded"}
            for it in todo
            if files[it.rel].image_id not in store
        ]
    store.save_files({rel: e for rel, e in files.items() if e.image_id in store})
    return FolderIndex(root, store, tool, params, model, report)


def embedding_of(prediction) -> tuple[str, np.ndarray]:
    """The content id and vector of an embedding tool's prediction for one image."""
    emb = next((r for r in prediction.results if isinstance(r, Embedding)), None)
    if emb is None:
        raise ValueError(f"{prediction.tool} returned no embedding")
    return (prediction.image_ids[0] if prediction.image_ids else str(emb.image_id)), emb.vector


class _VectorSink:
    """Receives each image's prediction from the batch worker (or its vector from a Ray actor) and
    appends the vector to the store."""

    def __init__(self, store: EmbeddingStore, on_flush: Callable[[], None] | None = None):
        self.store = store
        self.on_flush = on_flush
        self.ids: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.count = 0

    def __call__(self, item, prediction, stat) -> None:
        self.add(*embedding_of(prediction))

    def add(self, image_id: str, vector: np.ndarray) -> None:
        self.ids.append(image_id)
        self.vectors.append(vector)
        if len(self.ids) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.ids:
            self.store.append(self.ids, np.stack(self.vectors))
            self.count += len(self.ids)
            self.ids, self.vectors = [], []
            if self.on_flush is not None:
                self.on_flush()
