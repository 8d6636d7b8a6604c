"""Propagate labels: the reference is what the user sees on the image on view (its annotations, or
a masks layer), passed to ``dino.propagate`` as inline Masks JSON with the class names kept."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from vfmstudio.core.annotations import Annotation, Points
from vfmstudio.core.results import Masks
from vfmstudio.core.tools import ToolSpec
from vfmstudio.session.model import Session
from vfmstudio.session.requests import Outcome, Refusal

PROPAGATE_TOOL = "dino.propagate"


def masks_of_annotations(
    annotations: Iterable[Annotation], width: int, height: int, image_id: str | None = None
) -> Masks | None:
    """One mask per class (its boxes, polygons and masks merged), labelled with the class name;
    None when nothing has an area (points only, or no annotation)."""
    by_class: dict[str, np.ndarray] = {}
    for ann in annotations:
        if isinstance(ann.shape, Points):
            continue
        mask = np.asarray(ann.shape.to_mask(height, width), dtype=bool)
        by_class[ann.label] = by_class[ann.label] | mask if ann.label in by_class else mask
    by_class = {k: v for k, v in by_class.items() if v.any()}
    if not by_class:
        return None
    return Masks(np.stack(list(by_class.values())), tuple(by_class), image_id=image_id)


def propagate_request(
    session: Session,
    tool: ToolSpec | None,
    reference: Masks | None,
    params: Mapping[str, Any],
    model: str | None,
) -> Outcome:
    """Run ``tool`` with the image on view as the reference and the other selected images as
    targets."""
    if tool is None:
        return Refusal(f"propagating labels needs the {PROPAGATE_TOOL} tool (DINOv2 plugin)")
    if session.current_path is None:
        return Refusal("open the reference image first")
    if reference is None or len(reference) == 0:
        return Refusal(
            "annotate the image on view (boxes, polygons or masks) or select a masks layer: "
            "that is the reference to propagate"
        )
    targets = [p for p in session.selection if p != session.current_path]
    if not targets:
        return Refusal(
            "select the images to label (Ctrl+click in the image list) besides the reference on view"
        )
    inline = json.dumps(reference.to_json(), separators=(",", ":"))
    return session.request(tool, {**params, "masks": inline}, model, paths=(session.current_path, *targets))
