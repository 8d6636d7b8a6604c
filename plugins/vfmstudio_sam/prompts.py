"""SAM prompts from text and prior results: points, boxes and labelled boxes, checked against the image.

Pure numpy (no torch): every bad prompt is refused here, with one line naming the parameter, before
any model is loaded or run.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vfmstudio.plugin_api import (
    Detections,
    LoadedImage,
    Masks,
    ParamError,
    Prediction,
    ResultError,
    result_from_json,
)

MAX_PROMPTS = 4096  # boxes or points in one run: a decoder batch this big is a mistake, not a request
MAX_JSON_BYTES = 64 * 1024 * 1024  # a detections file larger than this is not a list of boxes
DEFAULT_LABEL = "object"


@dataclass(frozen=True)
class Prompt:
    """One object to segment: points (P, 2) in image pixels with labels (P,) 1 = positive, 0 = negative,
    and/or one box (4,) x0, y0, x1, y1."""

    points: np.ndarray
    point_labels: np.ndarray
    box: np.ndarray | None = None

    @property
    def single_point(self) -> bool:
        """One positive click and nothing else: ambiguous, so SAM proposes several masks."""
        return self.box is None and len(self.points) == 1 and bool(self.point_labels[0] == 1)


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ParamError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ParamError(f"{where}: {text!r} is not a finite number")
    return value


def parse_boxes(text: str, name: str = "boxes") -> np.ndarray:
    """``"x0,y0,x1,y1; x0,y0,x1,y1"`` -> (N, 4) float32; empty text -> (0, 4)."""
    rows = []
    for chunk in (c.strip() for c in text.replace("|", ";").split(";")):
        if not chunk:
            continue
        parts = [p for p in re.split(r"[,\s]+", chunk) if p]
        if len(parts) != 4:
            raise ParamError(f"parameter '{name}': a box is 'x0,y0,x1,y1', got {chunk!r}")
        rows.append([_number(p, f"parameter '{name}'") for p in parts])
    if len(rows) > MAX_PROMPTS:
        raise ParamError(f"parameter '{name}': {len(rows)} boxes; at most {MAX_PROMPTS} in one run")
    boxes = np.asarray(rows, dtype=np.float32).reshape(-1, 4)
    for x0, y0, x1, y1 in boxes:
        if x1 <= x0 or y1 <= y0:
            raise ParamError(
                f"parameter '{name}': the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty "
                "(it needs x1 > x0 and y1 > y0)"
            )
    return boxes


def check_points_inside(points: np.ndarray, image: LoadedImage, name: str) -> None:
    for x, y in points:
        if not (0 <= x < image.width and 0 <= y < image.height):
            raise ParamError(
                f"parameter '{name}': ({x:g}, {y:g}) lies outside {image.name} ({image.width}x{image.height})"
            )


def check_boxes_inside(boxes: np.ndarray, image: LoadedImage, name: str) -> None:
    for x0, y0, x1, y1 in boxes:
        if x0 < 0 or y0 < 0 or x1 > image.width or y1 > image.height:
            raise ParamError(
                f"parameter '{name}': the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) reaches outside "
                f"{image.name} ({image.width}x{image.height})"
            )


def _as_points(value: object) -> np.ndarray:
    if value is None or value == ():
        return np.zeros((0, 2), np.float32)
    return np.asarray(value, dtype=np.float32).reshape(-1, 2)


def segment_prompts(image: LoadedImage, params: dict) -> list[Prompt]:
    """The prompts of ``sam.segment``: all points (and at most one box) make one object; several boxes
    without points make one object each."""
    positive = _as_points(params.get("points"))
    negative = _as_points(params.get("negative"))
    boxes = parse_boxes(params.get("boxes") or "")
    check_points_inside(positive, image, "points")
    check_points_inside(negative, image, "negative")
    check_boxes_inside(boxes, image, "boxes")
    if len(positive) + len(negative) > MAX_PROMPTS:
        raise ParamError(f"parameters 'points'/'negative': at most {MAX_PROMPTS} points in one run")
    if not len(positive) and not len(boxes):
        what = "only negative points" if len(negative) else "no prompt"
        raise ParamError(f"got {what}: give at least one positive point ('points') or a box ('boxes')")
    points = np.concatenate([positive, negative])
    labels = np.concatenate([np.ones(len(positive), np.int64), np.zeros(len(negative), np.int64)])
    if len(points) and len(boxes) > 1:
        raise ParamError(
            "parameters 'points' and 'boxes': points refine one object, so give them with at most "
            f"one box (got {len(boxes)} boxes); several boxes alone give one mask each"
        )
    if len(points):
        return [Prompt(points=points, point_labels=labels, box=boxes[0] if len(boxes) else None)]
    return [Prompt(points=points, point_labels=labels, box=b) for b in boxes]


# ---------------------------------------------------------------------------------------------- refine


def clip_boxes(boxes: np.ndarray, image: LoadedImage) -> np.ndarray:
    """Detector boxes may overhang the image by a pixel or two: clip them, and drop those left empty."""
    out = boxes.copy()
    out[:, 0::2] = out[:, 0::2].clip(0, image.width)
    out[:, 1::2] = out[:, 1::2].clip(0, image.height)
    return out


def _labelled_boxes_of(results: list, where: str) -> tuple[np.ndarray, list[str]]:
    boxes, labels = [], []
    for result in results:
        if isinstance(result, Detections | Masks):
            boxes.append(result.boxes_xyxy)
            labels += list(result.labels)
    if not boxes:
        raise ParamError(f"{where}: holds no detections or masks to refine")
    return np.concatenate(boxes).astype(np.float32).reshape(-1, 4), labels


def _read_results(spec: str) -> tuple[list, str]:
    spec = spec.strip()
    if spec[:1] in ("{", "["):
        where, text, folder = "parameter 'detections' (inline JSON)", spec, None
    else:
        path = Path(spec).expanduser()
        where = f"parameter 'detections' ('{path}')"
        if not path.is_file():
            raise ParamError(f"{where}: no such file")
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ParamError(
                f"{where}: larger than {MAX_JSON_BYTES // (1024 * 1024)} MiB; not a detections file"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ParamError(f"{where}: cannot read it ({exc})") from None
        folder = path.parent
    try:
        data = json.loads(text)
        if isinstance(data, dict) and "results" in data:
            results = list(Prediction.from_json(data, folder).results)
        else:
            entries = data if isinstance(data, list) else [data]
            results = [result_from_json(entry) for entry in entries]
    except (ValueError, ResultError, KeyError, TypeError) as exc:
        raise ParamError(
            f"{where}: not a prediction, detections or masks JSON ({str(exc).splitlines()[0]})"
        ) from None
    return results, where


def refine_boxes(image: LoadedImage, params: dict) -> tuple[np.ndarray, tuple[str, ...]]:
    """The boxes ``sam.refine`` turns into masks, with the label each mask keeps: the ``boxes`` parameter
    (labelled ``label``) then the boxes of a prior result (``detections``: a prediction JSON file or
    inline JSON of Detections/Masks, e.g. the output of ``paligemma.detect``)."""
    boxes = parse_boxes(params.get("boxes") or "")
    check_boxes_inside(boxes, image, "boxes")
    labels = [params.get("label") or DEFAULT_LABEL] * len(boxes)
    spec = (params.get("detections") or "").strip()
    if spec:
        results, where = _read_results(spec)
        found, found_labels = _labelled_boxes_of(results, where)
        found = clip_boxes(found, image)
        keep = (found[:, 2] > found[:, 0]) & (found[:, 3] > found[:, 1])
        boxes = np.concatenate([boxes, found[keep]])
        labels += [label for label, k in zip(found_labels, keep) if k]
    if not len(boxes):
        raise ParamError("no box to refine: give 'boxes' or the 'detections' of a prior run")
    if len(boxes) > MAX_PROMPTS:
        raise ParamError(f"{len(boxes)} boxes to refine; at most {MAX_PROMPTS} in one run")
    return boxes, tuple(labels)
