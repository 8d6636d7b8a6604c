"""The project's store of pending predictions: a sidecar folder next to the project file.

Layout (``<project stem>.pending/``, documented in docs/auto-label.md)::

    runs/<run>/manifest.json             tool, model, params, source (a run resumes only with the same)
    runs/<run>/predictions/<key>.json    one prediction per image (the batch output format)
    runs/<run>/arrays/<key>/*.npy        its large arrays (masks), never inline in JSON
    runs/<run>/index.jsonl               one line per finished image: its path and the items it offers
    runs/<run>/failures.jsonl            images the run could not do, with the reason

A run is one tool with one model and one set of parameters; its id is derived from them, so the
same settings run again continue the same run. Each prediction file appears in one atomic step
after its arrays; its index line is appended after that. Opening a project reads only the index
lines (the image list's state and class filter need nothing more); a prediction whose line was
lost to a crash is found by listing the folder and indexed again. Review decisions are not kept
here but in the project file (:mod:`vfmstudio.core.review`), so reviewing never rewrites this store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfmstudio.core.atomic import atomic_write_bytes
from vfmstudio.core.jsonl import read_records
from vfmstudio.core.results import Prediction
from vfmstudio.core.review import PendingItem, items_of

RUNS = "runs"
INDEX = "index.jsonl"
MANIFEST = "manifest.json"
PREDICTIONS = "predictions"
ARRAYS = "arrays"
FAILURES = "failures.jsonl"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
_RUN_ID = re.compile(r"^[A-Za-z0-9._-]{1,120}$")
_FILE_KEY = re.compile(r"^(?!\.)[A-Za-z0-9._-]{1,200}$")  # what engines.sources.image_key makes


class PendingStoreError(ValueError):
    """The store cannot be read as asked; ``str(e)`` names the file and the reason."""


def store_root(project_path: str | os.PathLike[str]) -> Path:
    """``/data/cats.json`` -> ``/data/cats.pending``."""
    p = Path(project_path)
    return p.with_name(p.stem + ".pending")


def run_id_for(tool: str, model: str | None, params: dict[str, Any]) -> str:
    """A readable id that only the same tool, model and parameters share."""
    text = json.dumps({"tool": tool, "model": model, "params": params}, sort_keys=True, default=str)
    return f"{_SLUG.sub('_', tool)[:60]}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class PendingEntry:
    """One run's prediction for one image, as the index knows it (no arrays loaded)."""

    run: str
    tool: str
    model: str | None
    image: str  # the image's path relative to the project folder
    file_key: str  # the prediction file's name in the run (without .json)
    items: tuple[PendingItem, ...]
    created: str = ""

    def line(self) -> dict:
        return {
            "key": self.file_key,
            "image": self.image,
            "tool": self.tool,
            "model": self.model,
            "items": [it.to_json() for it in self.items],
            "created": self.created,
        }

    @classmethod
    def from_line(cls, run: str, obj: dict) -> PendingEntry:
        """Raises ValueError (or KeyError, TypeError) for a line we did not write."""
        if not _FILE_KEY.match(str(obj["key"])):  # it names a file: no path may hide in it
            raise ValueError(f"{obj['key']!r:.100} is not a prediction file key")
        return cls(
            run,
            str(obj["tool"]),
            None if obj.get("model") is None else str(obj["model"]),
            str(obj["image"]),
            str(obj["key"]),
            tuple(PendingItem.from_json(it) for it in obj.get("items") or ()),
            str(obj.get("created", "")),
        )


@dataclass(frozen=True)
class RunInfo:
    id: str
    tool: str
    model: str | None
    params: dict
    created: str


class PendingStore:
    """Reads and appends to one project's sidecar store; safe to share between threads."""

    def __init__(self, project_path: str | os.PathLike[str]):
        self.root = store_root(project_path)
        self.runs_dir = self.root / RUNS
        self._lock = threading.Lock()

    def run_dir(self, run: str) -> Path:
        if not _RUN_ID.match(run):
            raise PendingStoreError(f"{self.runs_dir}: {run!r} is not a run id")
        return self.runs_dir / run

    def exists(self) -> bool:
        return self.runs_dir.is_dir()

    # ------------------------------------------------------------------ runs
    def runs(self) -> list[RunInfo]:
        out = []
        for d in sorted(self._run_dirs()):
            try:
                m = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
                out.append(
                    RunInfo(
                        d.name,
                        str(m["tool"]),
                        m.get("model"),
                        dict(m.get("params") or {}),
                        str(m.get("created", "")),
                    )
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a run killed before its manifest was written holds nothing
        return out

    def _run_dirs(self) -> Iterator[Path]:
        if not self.runs_dir.is_dir():
            return
        for d in self.runs_dir.iterdir():
            if d.is_dir() and not d.is_symlink() and _RUN_ID.match(d.name):
                yield d

    def remove_run(self, run: str) -> None:
        shutil.rmtree(self.run_dir(run), ignore_errors=True)

    # ------------------------------------------------------------------ the index
    def add(self, run: str, entry: PendingEntry) -> None:
        """Append ``entry``'s line to the run's index (after its prediction file exists)."""
        line = json.dumps(entry.line(), ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock, open(self.run_dir(run) / INDEX, "a", encoding="utf-8") as fp:
            fp.write(line)

    def load_index(self) -> dict[str, list[PendingEntry]]:
        """Every run's entries by image path (relative to the project folder), newest line winning.

        Prediction files without an index line (a crash between the two writes) are read and their
        lines appended, so the next open finds them in the index."""
        out: dict[str, list[PendingEntry]] = {}
        for d in sorted(self._run_dirs()):
            entries: dict[str, PendingEntry] = {}
            try:
                text = (d / INDEX).read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            except (OSError, UnicodeDecodeError) as exc:
                raise PendingStoreError(
                    f"{d / INDEX}: cannot read ({getattr(exc, 'strerror', None) or exc})"
                ) from None
            for obj in _index_lines(text):
                try:
                    e = PendingEntry.from_line(d.name, obj)
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # a hostile or damaged line
                entries[e.file_key] = e
            for key in (k for k in self.prediction_keys(d.name) if k not in entries):
                found = self._entry_from_file(d.name, key)
                if found is not None:
                    entries[key] = found
                    self.add(d.name, found)
            for e in entries.values():
                out.setdefault(e.image, []).append(e)
        return out

    def prediction_keys(self, run: str) -> list[str]:
        """The file keys of the run's finished images (its prediction files), without reading any."""
        try:
            names = os.listdir(self.run_dir(run) / PREDICTIONS)
        except (OSError, PendingStoreError):
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith("."))

    def _entry_from_file(self, run: str, key: str) -> PendingEntry | None:
        try:
            d = self.run_dir(run)
            payload = json.loads((d / PREDICTIONS / f"{key}.json").read_text(encoding="utf-8"))
            pred = Prediction.from_json(payload, sidecar_dir=d / ARRAYS / key)
            record = payload.get("batch") or {}
            return entry_for(run, key, str(record["rel"]), pred)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    # ------------------------------------------------------------------ one prediction
    def load_prediction(self, entry: PendingEntry) -> Prediction:
        """The whole prediction behind ``entry``, arrays loaded."""
        d = self.run_dir(entry.run)
        path = d / PREDICTIONS / f"{entry.file_key}.json"
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            return Prediction.from_json(payload, sidecar_dir=d / ARRAYS / entry.file_key)
        except (OSError, ValueError) as exc:
            raise PendingStoreError(f"{path}: unreadable prediction ({' '.join(str(exc).split())})") from None

    def failures(self, run: str) -> list[dict]:
        """The run's failures file: image, stage (read, run, write) and reason per line."""
        return read_records(self.run_dir(run) / FAILURES)


def copy_store(old_project: str | os.PathLike[str], new_project: str | os.PathLike[str]) -> bool:
    """Give a project saved under a new name its pending predictions (Save As): the store is copied
    (hard links where the file system allows, so it costs no space), and when the new project sits
    in another folder the index's image paths are rewritten relative to it. False: nothing to copy,
    or the new name already has a store (never overwritten)."""
    src, dst = store_root(old_project), store_root(new_project)
    if not (src / RUNS).is_dir() or dst.exists() or src.resolve() == dst.resolve():
        return False

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_or_copy, symlinks=True)
    old_root, new_root = Path(old_project).absolute().parent, Path(new_project).absolute().parent
    if old_root.resolve() != new_root.resolve():
        for run_dir in PendingStore(new_project)._run_dirs():
            index = run_dir / INDEX
            if not index.exists():
                continue
            lines = []
            for obj in _index_lines(index.read_text(encoding="utf-8")):
                if isinstance(obj, dict) and isinstance(obj.get("image"), str):
                    moved = os.path.relpath(os.path.normpath(old_root / obj["image"]), new_root)
                    obj["image"] = Path(moved).as_posix()
                    lines.append(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
            index.unlink()  # a hard link: replace it, never write through to the old store's file
            atomic_write_bytes(index, "".join(lines).encode("utf-8"))
    return True


def _index_lines(text: str) -> list:
    """The index's JSON lines: parsed as one array when whole (5x faster for 10 000s of lines), else
    line by line, skipping a line a kill cut short."""
    if not text.strip():
        return []
    try:
        return json.loads("[" + ",".join(line for line in text.splitlines() if line.strip()) + "]")
    except ValueError:
        pass
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def entry_for(run: str, file_key: str, image: str, prediction: Prediction) -> PendingEntry:
    return PendingEntry(
        run,
        prediction.tool,
        prediction.model,
        image,
        file_key,
        items_of(prediction),
        prediction.created,
    )
