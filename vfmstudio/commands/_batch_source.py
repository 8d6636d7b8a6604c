"""A batch output folder (one prediction JSON per image) read as an in-memory project.

Folders written by ``vfmstudio batch`` (``manifest.json`` + ``predictions/<key>.json`` +
``arrays/<key>/``) are read through :func:`vfmstudio.engines.outputs.iter_predictions`; any other
folder of prediction JSON files is scanned, skipping files that are not predictions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from vfmstudio.commands.errors import UsageError

if TYPE_CHECKING:
    from vfmstudio.core.results import Prediction


def _scan(folder: Path) -> Iterator[tuple[Prediction, Path]]:
    from vfmstudio.core.results import Prediction, ResultError

    for path in sorted(folder.rglob("*.json")):
        if not path.is_file():  # a FIFO named .json would block read_text forever
            continue
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(obj, dict) or "results" not in obj or "tool" not in obj:
            continue  # manifests, summaries and other files of a run
        try:
            pred = Prediction.from_json(obj, sidecar_dir=path.parent)
        except ResultError as exc:
            raise UsageError(f"{path}: {exc}") from None
        if not pred.image_paths:
            raise UsageError(f"{path}: the prediction does not name its image file")
        image = Path(pred.image_paths[0])
        if not image.is_absolute():  # relative to the JSON file, else to the working folder
            near = path.parent / image
            image = near.resolve() if near.exists() else image.resolve()
        yield pred, image


def _batch_run(folder: Path) -> Iterator[tuple[Prediction, Path]]:
    from vfmstudio.core.results import ResultError
    from vfmstudio.engines.outputs import OutputError, iter_predictions

    try:
        for record, pred in iter_predictions(folder):
            path = record.get("path") or (pred.image_paths[0] if pred.image_paths else None)
            if not path:
                raise UsageError(f"{folder}: a prediction does not name its image file")
            yield pred, Path(path).absolute()
    except (OutputError, ResultError) as exc:
        raise UsageError(str(exc)) from None


def project_from_predictions(
    folder: Path, *, min_score: float | None = None, masks_as_polygons: bool = False
):
    """The predictions under ``folder`` as an in-memory project (see :mod:`vfmstudio.core.from_predictions`)."""
    from vfmstudio.core.from_predictions import project_from_predictions as build

    reader = _batch_run if (folder / "manifest.json").exists() else _scan
    predictions = list(reader(folder))
    if not predictions:
        raise UsageError(f"{folder}: no project file and no prediction JSON files")
    return build(predictions, min_score=min_score, masks_as_polygons=masks_as_polygons)
