"""The on-disk embedding store of one folder, model and embedding tool (Qt-free, torch-free).

One folder per (tool, model, parameters) under ``<folder>/.vfmstudio/index/``:

- ``vectors.f32``: float32 rows, one per distinct image content, appended as images are embedded;
  read through a memory map, so 100k x 768 vectors (300 MB) are never all in RAM at once;
- ``ids.txt``: the content id (``LoadedImage.id``) of each row, one line per row, appended with it;
- ``files.json``: each file of the folder, relative path -> content id, size and mtime, so an update
  hashes only files whose size or mtime changed;
- ``meta.json``: tool, model, parameters, dimension; a store made for other settings is not reused.

Rows and ids are appended together and flushed after every batch, so a killed run keeps what it
embedded: on open, the shorter of the two decides how many rows count (a torn last row is ignored).
Dropping rows (removed images) rewrites both files into temporary files that replace them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfmstudio.engines.outputs import write_json_atomic

STORE_VERSION = 1
INDEX_DIRNAME = ".vfmstudio/index"


class IndexStoreError(ValueError):
    """The store cannot be used; the message names the folder and the reason."""


@dataclass(frozen=True)
class FileEntry:
    image_id: str
    size: int
    mtime_ns: int


def store_dir(folder: Path, tool: str, model: str, params: dict[str, Any]) -> Path:
    """``<folder>/.vfmstudio/index/<tool>-<model>-<hash of tool, model and parameters>``."""
    key = json.dumps({"tool": tool, "model": model, "params": params}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{tool}-{Path(model).name}")[:60]
    return folder / INDEX_DIRNAME / f"{readable}-{digest}"


class EmbeddingStore:
    """Vectors by content id, plus the folder's files by relative path."""

    def __init__(self, root: Path, meta: dict[str, Any]):
        self.root = Path(root)
        self.meta = dict(meta)
        self.ids: list[str] = []
        self.files: dict[str, FileEntry] = {}
        self._dim: int | None = meta.get("dim")
        self._row: dict[str, int] = {}

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, root: Path, meta: dict[str, Any]) -> EmbeddingStore:
        """The store at ``root``, created empty if missing; refused if it was made for other settings."""
        root = Path(root)
        store = cls(root, meta)
        meta_path = root / "meta.json"
        if meta_path.exists():
            stored = _read_json(meta_path)
            same = {k: stored.get(k) for k in ("version", "tool", "model", "params")}
            want = {"version": STORE_VERSION, **{k: meta.get(k) for k in ("tool", "model", "params")}}
            if same != want:
                raise IndexStoreError(
                    f"{root}: made for other settings ({same}); delete the folder to rebuild it"
                )
            store._dim = stored.get("dim")
            store._load_rows()
            files = _read_json(root / "files.json") if (root / "files.json").exists() else {}
            store.files = {rel: FileEntry(str(e[0]), int(e[1]), int(e[2])) for rel, e in files.items()}
        return store

    def _load_rows(self) -> None:
        ids_path, vec_path = self.root / "ids.txt", self.root / "vectors.f32"
        lines = ids_path.read_text().split("\n") if ids_path.exists() else []
        complete = lines[:-1] if lines else []  # the text after the last newline is a torn line
        rows = (vec_path.stat().st_size // (4 * self._dim)) if (self._dim and vec_path.exists()) else 0
        self.ids = complete[:rows]
        self._row = {image_id: i for i, image_id in enumerate(self.ids)}

    # ------------------------------------------------------------------ reading

    @property
    def dim(self) -> int | None:
        return self._dim

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._row

    def row(self, image_id: str) -> int:
        return self._row[image_id]

    def vectors(self) -> np.ndarray:
        """(N, D) float32, memory-mapped read-only (an empty array when nothing is stored)."""
        if not self.ids or not self._dim:
            return np.zeros((0, self._dim or 0), np.float32)
        return np.memmap(
            self.root / "vectors.f32", dtype=np.float32, mode="r", shape=(len(self.ids), self._dim)
        )

    def vector(self, image_id: str) -> np.ndarray:
        return np.array(self.vectors()[self._row[image_id]])

    # ------------------------------------------------------------------ writing

    def append(self, image_ids: list[str], vectors: np.ndarray) -> None:
        """Store rows for new content ids (ids already stored are skipped), durable on return."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(image_ids):
            raise IndexStoreError(f"{self.root}: {len(image_ids)} ids for vectors of shape {vectors.shape}")
        fresh = [(i, image_id) for i, image_id in enumerate(image_ids) if image_id not in self._row]
        if not fresh:
            return
        if self._dim is None:
            self._dim = int(vectors.shape[1])
            self._write_meta()
        elif vectors.shape[1] != self._dim:
            raise IndexStoreError(
                f"{self.root}: vectors of {vectors.shape[1]} dimensions, the store holds {self._dim}"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self._truncate_to_rows()
        rows = vectors[[i for i, _ in fresh]]
        with open(self.root / "vectors.f32", "ab") as fp:
            fp.write(rows.tobytes())
            fp.flush()
            os.fsync(fp.fileno())
        with open(self.root / "ids.txt", "a") as fp:
            fp.write("".join(f"{image_id}\n" for _, image_id in fresh))
            fp.flush()
            os.fsync(fp.fileno())
        for _, image_id in fresh:
            self._row[image_id] = len(self.ids)
            self.ids.append(image_id)

    def _truncate_to_rows(self) -> None:
        """Cut a torn tail (a row or id written by a killed run beyond the rows that count)."""
        vec_path, ids_path = self.root / "vectors.f32", self.root / "ids.txt"
        if vec_path.exists() and self._dim and vec_path.stat().st_size != len(self.ids) * 4 * self._dim:
            os.truncate(vec_path, len(self.ids) * 4 * self._dim)
        if ids_path.exists():
            want = "".join(f"{i}\n" for i in self.ids)
            if ids_path.stat().st_size != len(want.encode()):
                _replace_text(ids_path, want)

    def drop(self, image_ids: set[str]) -> int:
        """Remove the rows of ``image_ids``; returns how many went. Rewrites the files (atomic replace)."""
        gone = [i for i in self.ids if i in image_ids]
        if not gone:
            return 0
        keep = [r for r, image_id in enumerate(self.ids) if image_id not in image_ids]
        kept = np.array(self.vectors()[keep]) if keep else np.zeros((0, self._dim or 0), np.float32)
        tmp = self.root / "vectors.f32.tmp"
        with open(tmp, "wb") as fp:
            fp.write(np.ascontiguousarray(kept, dtype=np.float32).tobytes())
            fp.flush()
            os.fsync(fp.fileno())
        self.ids = [self.ids[r] for r in keep]
        self._row = {image_id: i for i, image_id in enumerate(self.ids)}
        # ids first: a crash between the two leaves ids.txt shorter than the vectors, and the shorter wins.
        _replace_text(self.root / "ids.txt", "".join(f"{i}\n" for i in self.ids))
        os.replace(tmp, self.root / "vectors.f32")
        return len(gone)

    def save_files(self, files: dict[str, FileEntry]) -> None:
        self.files = dict(files)
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            self.root / "files.json",
            {rel: [e.image_id, e.size, e.mtime_ns] for rel, e in sorted(files.items())},
        )
        self._write_meta()

    def _write_meta(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.root / "meta.json", {"version": STORE_VERSION, **self.meta, "dim": self._dim})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IndexStoreError(
            f"{path}: cannot read the index file ({exc}); delete the folder to rebuild it"
        ) from None


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fp:
        fp.write(text)
        fp.flush()
        os.fsync(fp.fileno())
    os.replace(tmp, path)
