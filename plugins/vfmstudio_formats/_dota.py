"""DOTA: ``images/<name>`` and ``labelTxt/<name>.txt``, one object per row
``x1 y1 x2 y2 x3 y3 x4 y4 class difficult`` (corners in pixels, clockwise).

The v1.0 header lines ``imagesource:...`` and ``gsd:...`` are skipped on import. Class names may not
hold spaces (rows are split on white space): spaces are written as '_'.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from vfmstudio.plugin_api import Annotation, ExchangeContext, FormatError, Project, RotatedBox, in_memory

from ._common import (
    copy_image,
    drop_image_texts,
    export_names,
    find_images,
    image_record,
    imported,
    iter_images,
    nearest_shape,
    read_text,
)


def export(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    names = export_names(project, flat=True)
    for _, rec in iter_images(project, ctx, "DOTA"):
        name = PurePosixPath(names[rec.key])
        if params["copy_images"]:
            copy_image(project, rec, out / "images" / name, ctx)
        rows = []
        for ann in project.labels.annotations(rec.key):
            shape = nearest_shape(ann, (RotatedBox,), ctx, "DOTA")
            if shape is None:
                continue
            if not isinstance(shape, RotatedBox):
                x0, y0, x1, y1 = shape.bbox()
                shape = RotatedBox((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)
            corners = " ".join(f"{v:.1f}" for xy in shape.corners() for v in xy)
            difficult = int(bool(ann.attributes.get("difficult", 0)))
            rows.append(f"{corners} {ann.label.replace(' ', '_')} {difficult}")
        txt = out / "labelTxt" / name.with_suffix(".txt")
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
        ctx.wrote(txt)
    drop_image_texts(project, ctx, "DOTA")


def import_(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    root = (Path(params["image_root"]) if params.get("image_root") else source).resolve()
    label_dir = source / "labelTxt"
    if not label_dir.is_dir():
        raise FormatError(f"{source}: no labelTxt/ folder (DOTA keeps one .txt per image there)")
    images = {p.stem: p for p in find_images(root / "images" if (root / "images").is_dir() else root)}
    project = in_memory(root)
    labels = project.labels
    txts = sorted(label_dir.glob("*.txt"))
    for i, txt in enumerate(txts):
        ctx.progress(i / max(len(txts), 1), f"DOTA {txt.name}")
        ctx.file = txt
        img = images.get(txt.stem)
        if img is None:
            ctx.dropped("file", "no image of that name", file=txt)
            continue
        rec = image_record(root, img.resolve().relative_to(root).as_posix())
        project.images[rec.key] = rec
        for lineno, line in enumerate(read_text(txt).splitlines(), 1):
            parts = line.split()
            if not parts or ":" in parts[0]:  # blank, or 'imagesource:GoogleEarth' / 'gsd:0.1'
                continue
            if len(parts) < 9:
                ctx.dropped(
                    "line",
                    "too few values",
                    file=txt,
                    line=lineno,
                    detail=f"{len(parts)} values, need 9 or 10",
                )
                continue
            try:
                corners = np.asarray([float(v) for v in parts[:8]], dtype=np.float64).reshape(4, 2)
                shape = RotatedBox.from_corners(corners)
            except ValueError:
                ctx.dropped(
                    "line", "not numbers", file=txt, line=lineno, detail="corner values are not numbers"
                )
                continue
            attrs = {"difficult": 1} if len(parts) > 9 and parts[9] == "1" else {}
            labels.add(
                Annotation(rec.key, parts[8], shape, provenance=imported(None, "dota"), attributes=attrs)
            )
    ctx.file = None
    return project
