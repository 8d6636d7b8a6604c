"""Accepting predictions as annotations: which items an image's predictions offer (boxes, masks,
tags from a classification, a caption from text), and the one undoable core command that adds the
chosen ones (provenance kept by :func:`vfmstudio.core.annotations.accept_prediction`).
"""

from __future__ import annotations

from dataclasses import dataclass

from vfmstudio.core import commands as cmd
from vfmstudio.core.annotations import Accepted, LabelSet, accept_prediction
from vfmstudio.core.results import Classification, Detections, Masks, Prediction, Text
from vfmstudio.session.model import result_image_id


@dataclass(frozen=True)
class Item:
    prediction: Prediction
    result: int
    index: int
    text: str
    default: bool  # checked when the dialog opens


def acceptable_items(predictions: list[Prediction], image_id: str) -> list[Item]:
    out = []
    for pred in predictions:
        for r, result in enumerate(pred.results):
            if result_image_id(result, pred) != image_id:
                continue
            if isinstance(result, Detections | Masks):
                kind = "box" if isinstance(result, Detections) else "mask"
                for i in range(len(result)):
                    score = "" if result.scores is None else f" {float(result.scores[i]):.2f}"
                    out.append(Item(pred, r, i, f"{pred.tool} · {kind} · {result.labels[i]}{score}", True))
            elif isinstance(result, Classification):
                for i, label in enumerate(result.labels):
                    top = bool(result.multi_label) or i == int(result.scores.argmax())
                    out.append(
                        Item(pred, r, i, f"{pred.tool} · tag · {label} {float(result.scores[i]):.2f}", top)
                    )
            elif isinstance(result, Text) and not _found_nothing(pred):
                short = result.text if len(result.text) <= 60 else result.text[:57] + "…"
                out.append(Item(pred, r, 0, f"{pred.tool} · caption · {short}", True))
    return out


def layer_items(items: list[Item], layer) -> list[Item]:
    """The items drawn by one layer (its prediction's result), all of them."""
    return [
        it
        for it in items
        if it.prediction is layer.prediction and it.prediction.results[it.result] is layer.result
    ]


def accept_command(
    items: list[Item],
    key: str,
    labels: LabelSet,
    *,
    masks_as_polygons: bool = False,
    tolerance: float = 1.0,
    masks_as_rotated_boxes: bool = False,
) -> cmd.Command | None:
    """One undoable step adding every chosen item to image ``key`` (None when nothing is added)."""
    merged = Accepted()
    by_prediction: dict[int, tuple[Prediction, list[tuple[int, int]]]] = {}
    for it in items:
        by_prediction.setdefault(id(it.prediction), (it.prediction, []))[1].append((it.result, it.index))
    for pred, select in by_prediction.values():
        acc = accept_prediction(
            pred,
            key,
            select=select,
            masks_as_polygons=masks_as_polygons,
            tolerance=tolerance,
            masks_as_rotated_boxes=masks_as_rotated_boxes,
        )
        merged.annotations += acc.annotations
        for k, tags in acc.tags.items():
            merged.tags.setdefault(k, []).extend(tags)
        merged.captions.update(acc.captions)
    if not (merged.annotations or merged.tags or merged.captions):
        return None
    n = len(merged.annotations)
    text = f"Accept {n} annotation{'s' if n != 1 else ''}" if n else "Accept tags/caption"
    return cmd.accept(merged, labels, text)


def _found_nothing(pred: Prediction) -> bool:
    """A detector that found nothing returns its raw answer as text: the reason, not a caption."""
    found = pred.of_type(Detections) + pred.of_type(Masks)
    return bool(found) and not any(len(r) for r in found)
