"""Predictions turned into a project: every result accepted as labels (what ``export`` does with a
folder of batch outputs instead of a project file)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from vfmstudio.core.annotations import accept_prediction
from vfmstudio.core.project import ImageRecord, Project, image_size, in_memory
from vfmstudio.core.results import Masks, Prediction


def project_from_predictions(
    predictions: Iterable[tuple[Prediction, Path]],
    *,
    min_score: float | None = None,
    masks_as_polygons: bool = False,
) -> Project:
    """An in-memory project rooted at the images' common folder, with each ``(prediction, image file)``
    accepted as that image's labels. Image sizes come from the files, or from mask results when a file
    is gone. Raises ValueError when there is nothing to build from."""
    predictions = list(predictions)
    if not predictions:
        raise ValueError("no predictions")
    root = Path(os.path.commonpath([str(p.parent) for _, p in predictions]))
    project = in_memory(root)
    for pred, image in predictions:
        key = Path(os.path.relpath(image, root)).as_posix()
        if key not in project.images:
            width = height = 0
            if image.exists():
                width, height = image_size(image)
            else:
                for r in pred.results:
                    if isinstance(r, Masks):
                        height, width = r.size
            project.images[key] = ImageRecord(
                key, key, pred.image_ids[0] if pred.image_ids else "", width, height
            )
        accepted = accept_prediction(pred, key, min_score=min_score, masks_as_polygons=masks_as_polygons)
        for ann in accepted.annotations:
            project.labels.add(ann)
        for k, tags in accepted.tags.items():
            project.labels.set_tags(k, (*project.labels.tags.get(k, ()), *tags))
        for k, text in accepted.captions.items():
            project.labels.set_caption(k, text)
    return project
