"""Mask PNGs: semantic (pixel = class index + 1, 0 = background) or instance (pixel = instance id).

Masks and polygons are rasterised in annotation order (later on top); boxes and points are not
written. ``classes.txt`` lists the classes (line n = value n); instance folders get an
``instances.json`` per image mapping ids to classes.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from vfmstudio.plugin_api import Box, ExchangeContext, Points, Project

from ._common import export_names, image_dims, iter_images, write_json


def _save_png(arr: np.ndarray, path: Path, ctx: ExchangeContext) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.max(initial=0) <= 255:
        Image.fromarray(arr.astype(np.uint8), mode="L").save(path)
    else:
        Image.fromarray(arr.astype(np.uint16)).save(path)  # 16-bit greyscale PNG
    ctx.wrote(path)


def export(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    labels = project.labels
    instance = params["kind"] == "instance"
    names = export_names(project)
    cls_value = {c.name: i + 1 for i, c in enumerate(labels.classes)}
    for _, rec in iter_images(project, ctx, "masks"):
        h, w = image_dims(project, rec)
        canvas = np.zeros((h, w), dtype=np.int32)
        meta = []
        for ann in labels.annotations(rec.key):
            if isinstance(ann.shape, Box | Points):
                ctx.warn("mask PNGs: boxes and points are not written")
                continue
            m = ann.shape.to_mask(h, w)
            value = len(meta) + 1 if instance else cls_value[ann.label]
            canvas[m] = value
            meta.append({"id": len(meta) + 1, "label": ann.label, "annotation": ann.id, "score": ann.score})
        stem = PurePosixPath(names[rec.key]).with_suffix(".png")
        _save_png(canvas, out / ("instances" if instance else "semantic") / stem, ctx)
        if instance:
            write_json(out / "instances" / stem.with_suffix(".json"), meta, ctx)
    classes = out / "classes.txt"
    classes.write_text("background\n" + "".join(c.name + "\n" for c in labels.classes), encoding="utf-8")
    ctx.wrote(classes)
