"""Label Studio tasks JSON (export): one task per image, results in percent of the image size.

``from_name``/``to_name`` match the labelling config written next to the tasks
(``label_config.xml``): ``label`` (rectangles; rotated boxes with ``rotation``, which Label Studio
applies about the top-left corner), ``ellipse``, ``polygon`` (polygons and masks as outlines),
``keypoint`` (points), ``tags`` (choices) and ``caption`` (text area) on ``image``.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from vfmstudio.plugin_api import (
    Box,
    Ellipse,
    ExchangeContext,
    Mask,
    Points,
    Polygon,
    Project,
    RotatedBox,
    safe_join,
)

from ._common import image_dims, iter_images, nearest_shape, shape_parts, write_json

_HOLDS = (Box, Polygon, Mask, Points, RotatedBox, Ellipse)


def _result(kind: str, from_name: str, value: dict, w: int, h: int, rid: str, score: float | None) -> dict:
    out = {
        "id": rid,
        "type": kind,
        "from_name": from_name,
        "to_name": "image",
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "value": value,
    }
    if score is not None:
        out["score"] = score
    return out


def export(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    labels = project.labels
    mode = params["mode"]
    prefix = params["image_prefix"]
    tasks = []
    for _, rec in iter_images(project, ctx, "Label Studio"):
        h, w = image_dims(project, rec)
        results = []
        scores = []
        for ann in labels.annotations(rec.key):
            s, score = nearest_shape(ann, _HOLDS, ctx, "Label Studio"), ann.score
            if s is None:
                continue
            if score is not None:
                scores.append(score)
            if isinstance(s, RotatedBox):  # Label Studio turns a rectangle about its top-left corner
                (x0, y0) = s.corners()[0]
                results.append(
                    _result(
                        "rectanglelabels",
                        "label",
                        {
                            "x": 100 * x0 / w,
                            "y": 100 * y0 / h,
                            "width": 100 * s.w / w,
                            "height": 100 * s.h / h,
                            "rotation": s.angle % 360,
                            "rectanglelabels": [ann.label],
                        },
                        w,
                        h,
                        ann.id,
                        score,
                    )
                )
            elif isinstance(s, Ellipse):
                results.append(
                    _result(
                        "ellipselabels",
                        "ellipse",
                        {
                            "x": 100 * s.cx / w,
                            "y": 100 * s.cy / h,
                            "radiusX": 100 * s.rx / w,
                            "radiusY": 100 * s.ry / h,
                            "rotation": s.angle % 360,
                            "ellipselabels": [ann.label],
                        },
                        w,
                        h,
                        ann.id,
                        score,
                    )
                )
            elif isinstance(s, Box):
                results.append(
                    _result(
                        "rectanglelabels",
                        "label",
                        {
                            "x": 100 * s.x0 / w,
                            "y": 100 * s.y0 / h,
                            "width": 100 * (s.x1 - s.x0) / w,
                            "height": 100 * (s.y1 - s.y0) / h,
                            "rotation": 0,
                            "rectanglelabels": [ann.label],
                        },
                        w,
                        h,
                        ann.id,
                        score,
                    )
                )
            elif isinstance(s, Points):
                for j, (x, y) in enumerate(s.points):
                    results.append(
                        _result(
                            "keypointlabels",
                            "keypoint",
                            {"x": 100 * x / w, "y": 100 * y / h, "width": 0.5, "keypointlabels": [ann.label]},
                            w,
                            h,
                            f"{ann.id}-{j}",
                            score,
                        )
                    )
            else:
                if isinstance(s, Mask):
                    ctx.converted("mask", "polygon", "Label Studio results here are outlines")
                parts = shape_parts(s, params["tolerance"])
                holes = sum(len(hs) for _, hs in parts)
                if holes:
                    ctx.dropped("hole", "Label Studio polygons are outlines", holes)
                for j, (ext, _) in enumerate(parts):
                    pts = (np.asarray(ext, dtype=np.float64) * (100.0 / w, 100.0 / h)).tolist()
                    results.append(
                        _result(
                            "polygonlabels",
                            "polygon",
                            {"points": pts, "closed": True, "polygonlabels": [ann.label]},
                            w,
                            h,
                            ann.id if j == 0 else f"{ann.id}-{j}",
                            score,
                        )
                    )
        if labels.tags.get(rec.key):
            results.append(
                _result(
                    "choices",
                    "tags",
                    {"choices": list(labels.tags[rec.key])},
                    w,
                    h,
                    f"tags-{len(tasks)}",
                    None,
                )
            )
        if labels.captions.get(rec.key):
            results.append(
                _result(
                    "textarea",
                    "caption",
                    {"text": [labels.captions[rec.key]]},
                    w,
                    h,
                    f"caption-{len(tasks)}",
                    None,
                )
            )
        image = (
            prefix + rec.path if prefix else Path(os.path.relpath(project.root / rec.path, out)).as_posix()
        )
        block = {"result": results}
        if mode == "predictions":
            block["model_version"] = "vfmstudio"
            if scores:
                block["score"] = float(np.mean(scores))
        tasks.append({"data": {"image": image}, mode: [block]})
    write_json(safe_join(out, params["filename"], what="parameter 'filename'"), tasks, ctx)
    config = out / "label_config.xml"
    config.write_text(
        _config(labels.class_names, sorted({t for ts in labels.tags.values() for t in ts})), encoding="utf-8"
    )
    ctx.wrote(config)


def _config(classes: list[str], tags: list[str]) -> str:
    def options(tag: str, names: list[str]) -> str:
        return "".join(f"    <{tag} value={quoteattr(n)}/>\n" for n in names)

    return (
        '<View>\n  <Image name="image" value="$image"/>\n'
        f'  <RectangleLabels name="label" toName="image">\n{options("Label", classes)}  </RectangleLabels>\n'
        f'  <PolygonLabels name="polygon" toName="image">\n{options("Label", classes)}  </PolygonLabels>\n'
        f'  <KeyPointLabels name="keypoint" toName="image">\n{options("Label", classes)}  </KeyPointLabels>\n'
        f'  <EllipseLabels name="ellipse" toName="image">\n{options("Label", classes)}  </EllipseLabels>\n'
        f'  <Choices name="tags" toName="image" choice="multiple">\n{options("Choice", tags)}  </Choices>\n'
        '  <TextArea name="caption" toName="image"/>\n</View>\n'
    )
