"""The batch output folder: one prediction file per image, a failures file and a manifest.

Layout (documented in ``docs/batch.md``; the export command reads it)::

    OUT/manifest.json               what ran: tool, model, resolved params, source (``--resume`` checks it)
    OUT/predictions/<key>.json      one Prediction JSON per image, plus a "batch" object (key, path, ...)
    OUT/arrays/<key>/*.npy          large arrays of that prediction (referenced by name from its JSON)
    OUT/failures.jsonl              one JSON object per line: key, path, stage (read|run), reason
    OUT/summary.json                counts and timings of the last run

A prediction file appears in one ``os.replace`` after its arrays are written, so it either exists
complete or not at all: an interrupted run leaves nothing half-written behind, and a resumed run
skips exactly the images whose prediction file exists and still matches the source file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any

from vfmstudio.core.atomic import atomic_write_bytes, atomic_write_json
from vfmstudio.core.jsonl import read_records
from vfmstudio.core.results import Prediction, ResultError
from vfmstudio.engines.sources import Item

FORMAT = "vfmstudio-batch"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PREDICTIONS = "predictions"
ARRAYS = "arrays"
FAILURES = "failures.jsonl"
SUMMARY = "summary.json"
_TMP = ".tmp-"


class OutputError(ValueError):
    """The output folder cannot be used as asked (exists without --resume, other settings, ...)."""


@dataclass(frozen=True)
class SourceStat:
    """Size and modification time of a source file when it was read: a resumed run redoes an image
    whose file changed since its prediction was written."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> SourceStat | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(st.st_size, st.st_mtime_ns)


def _plain(value: Any) -> Any:
    """JSON's view of a value (tuples become lists), so stored and current settings compare equal."""
    return json.loads(json.dumps(value, default=str))


def write_json_atomic(path: Path, obj: Any, *, indent: int | None = None, fsync: bool = True) -> None:
    """Write ``obj`` as JSON in one step (the code base's one atomic writer, :mod:`vfmstudio.core.atomic`)."""
    atomic_write_json(path, obj, indent=indent, fsync=fsync)


class BatchOutput:
    """Reads and writes one output folder. Safe to share between threads and processes: every
    image writes only its own files."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.predictions = self.root / PREDICTIONS
        self.arrays = self.root / ARRAYS
        self.failures_path = self.root / FAILURES
        self._failures_lock = threading.Lock()

    # ------------------------------------------------------------------ paths
    def prediction_path(self, key: str) -> Path:
        return self.predictions / f"{key}.json"

    def arrays_dir(self, key: str) -> Path:
        return self.arrays / key

    # ------------------------------------------------------------------ run set-up
    def open(self, manifest: dict, *, resume: bool) -> None:
        """Create the folder for a new run, or check that a resumed run matches the stored manifest."""
        manifest = _plain({"format": FORMAT, "version": FORMAT_VERSION, **manifest})
        existing = self.root / MANIFEST
        if existing.exists():
            if not resume:
                raise OutputError(
                    f"{self.root}: already holds a batch run; pass --resume to continue it "
                    "or choose another --out folder"
                )
            self._check_same_run(read_manifest(self.root), manifest)
        else:
            if self.root.exists():  # a run that died before its manifest was written left only these
                self._remove_leftovers(self.root)
            if self.root.exists() and any(self.root.iterdir()):
                raise OutputError(
                    f"{self.root}: the output folder is not empty and holds no batch run; "
                    "choose an empty or new folder"
                )
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(
                    f"{self.root}: cannot create the output folder ({exc.strerror or exc})"
                ) from None
            write_json_atomic(existing, manifest, indent=1)
        self.predictions.mkdir(exist_ok=True)
        self._remove_leftovers()

    def _check_same_run(self, stored: dict, now: dict) -> None:
        for field in ("tool", "model", "params", "source"):
            a, b = stored.get(field), now.get(field)
            if a == b:
                continue
            if isinstance(a, dict) and isinstance(b, dict):
                names = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                detail = "; ".join(f"{field}.{k}: {a.get(k)!r} then, {b.get(k)!r} now" for k in names[:3])
            else:
                detail = f"{field}: {a!r} then, {b!r} now"
            raise OutputError(
                f"{self.root}: cannot resume a run made with other settings ({detail}); "
                "use the same settings or another --out folder"
            )

    def _remove_leftovers(self, *folders: Path) -> None:
        """Temporary files of a killed run; nothing refers to them."""
        for folder in folders or (self.root, self.predictions):
            for pattern in (f"{_TMP}*", ".*.tmp"):  # older versions' naming, then core.atomic's
                for tmp in folder.glob(pattern):
                    tmp.unlink(missing_ok=True)

    # ------------------------------------------------------------------ per image
    def is_done(self, item: Item) -> bool:
        """True when ``item`` has a complete prediction that was made from the current file."""
        try:
            with open(self.prediction_path(item.key), encoding="utf-8") as fp:
                record = json.load(fp).get("batch", {})
        except (OSError, ValueError, AttributeError):
            return False
        stat = SourceStat.of(item.path)
        return (
            stat is not None and record.get("size") == stat.size and record.get("mtime_ns") == stat.mtime_ns
        )

    def write_prediction(self, item: Item, prediction: Prediction, stat: SourceStat | None) -> Path:
        """Arrays first, then the JSON in one step: its presence means the image is finished."""
        arrays = self.arrays_dir(item.key)
        if arrays.exists():  # from an earlier attempt at this image
            shutil.rmtree(arrays, ignore_errors=True)
        payload = prediction.to_json(sidecar_dir=arrays)
        payload["batch"] = {
            "key": item.key,
            "path": item.path,
            "rel": item.rel,
            "size": stat.size if stat else None,
            "mtime_ns": stat.mtime_ns if stat else None,
        }
        path = self.prediction_path(item.key)
        write_json_atomic(path, payload)
        return path

    # ------------------------------------------------------------------ failures
    def reset_failures(self, retried: set[str]) -> None:
        """Drop earlier failures of the images this run retries; keep the others."""
        kept = [f for f in read_failures(self.root) if f.get("key") not in retried]
        text = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in kept)
        atomic_write_bytes(self.failures_path, text.encode("utf-8"))

    def add_failure(self, item: Item, stage: str, reason: str) -> None:
        line = json.dumps(
            {
                "key": item.key,
                "path": item.path,
                "rel": item.rel,
                "stage": stage,
                "reason": " ".join(str(reason).split()),
            },
            ensure_ascii=False,
        )
        with self._failures_lock, open(self.failures_path, "a", encoding="utf-8") as fp:
            fp.write(line + "\n")

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.root / SUMMARY, summary, indent=1)


# ---------------------------------------------------------------------- readers (export, tests)


def _read_text(path: Path) -> str:
    """The file's text; a FIFO or device (an archive can hold one) is refused, not opened: opening
    it would block the reader forever."""
    if not S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return path.read_text(encoding="utf-8")


def read_manifest(root: str | os.PathLike[str]) -> dict:
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(_read_text(path))
    except FileNotFoundError:
        raise OutputError(f"{root}: not a batch output folder (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise OutputError(f"{path}: not a vfmstudio batch manifest")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > FORMAT_VERSION:
        raise OutputError(
            f"{path}: batch format version {manifest.get('version')!r} is newer than this vfmstudio"
        )
    return manifest


def read_failures(root: str | os.PathLike[str]) -> list[dict]:
    """The failures file's records; a line cut short by a killed run is skipped."""
    return read_records(Path(root) / FAILURES)


def iter_predictions(root: str | os.PathLike[str]) -> Iterator[tuple[dict, Prediction]]:
    """``(batch record, Prediction)`` for every finished image, in key order; arrays are loaded."""
    output = BatchOutput(root)
    read_manifest(root)
    for path in sorted(output.predictions.glob("*.json")):
        if path.name.startswith(_TMP):
            continue
        try:
            payload = json.loads(_read_text(path))
            record = payload.get("batch") or {}
            key = record.get("key") or path.stem
            yield record, Prediction.from_json(payload, sidecar_dir=output.arrays_dir(key))
        except (OSError, ValueError) as exc:
            if isinstance(exc, ResultError):
                raise ResultError(f"{path}: {exc}") from None
            raise OutputError(f"{path}: unreadable prediction ({exc})") from None
