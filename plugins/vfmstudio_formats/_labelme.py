"""labelme JSON: one file per image, shapes with ``label``, ``points`` and ``shape_type``.

Multi-part polygons and multi-point annotations are written as several shapes sharing a
``group_id``; masks and polygons with holes as ``mask`` shapes (a base64 PNG of the box crop, box
corners given as inclusive pixel indices, as labelme does). Keys we do not know (top-level and per
shape) are kept on import and written back on export. Points outside the image are clipped.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path, PurePosixPath

import numpy as np

from vfmstudio.plugin_api import (
    Annotation,
    Box,
    ExchangeContext,
    FormatError,
    ImageRecord,
    Mask,
    Points,
    Polygon,
    PolygonPart,
    Project,
    in_memory,
    mask_bbox,
    safe_join,
)

from ._common import (
    check_size,
    clip_points,
    copy_image,
    export_names,
    image_dims,
    imported,
    iter_images,
    mask_crop_png,
    png_to_mask,
    read_json,
    write_json,
)

VERSION = "5.5.0"
_TOP_KEYS = {"version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"}
_SHAPE_KEYS = {"label", "points", "group_id", "shape_type", "flags", "description", "mask", "score"}


def export(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    names = export_names(project)
    labels = project.labels
    for _, rec in iter_images(project, ctx, "labelme"):
        h, w = image_dims(project, rec)
        name = PurePosixPath(names[rec.key])
        json_path = out / name.with_suffix(".json")
        if params["copy_images"] and copy_image(project, rec, out / name, ctx):
            image_path = name.name
        else:
            image_path = Path(os.path.relpath(project.root / rec.path, json_path.parent)).as_posix()
        shapes = []
        next_group = 1
        for ann in labels.annotations(rec.key):
            extra = dict(ann.attributes.get("labelme", {}))
            group = extra.pop("group_id", None)
            new = _shapes(ann, h, w)
            if len(new) > 1 and group is None:
                group, next_group = next_group, next_group + 1
            for s in new:
                s.update(extra)
                s["group_id"] = group
                if ann.score is not None:
                    s["score"] = ann.score
                shapes.append(s)
        extras = dict(labels.extras.get(rec.key, {}).get("labelme", {}))
        doc = {"version": VERSION, "flags": {t: True for t in labels.tags.get(rec.key, ())}, "shapes": shapes,
               "imagePath": image_path, "imageData": None, "imageHeight": h, "imageWidth": w, **extras}
        write_json(json_path, doc, ctx)


def _shape(label: str, points, shape_type: str, **more) -> dict:
    return {"label": label, "points": [[float(x), float(y)] for x, y in points], "group_id": None,
            "description": "", "shape_type": shape_type, "flags": {}, "mask": None, **more}


def _shapes(ann: Annotation, h: int, w: int) -> list[dict]:
    s = ann.shape
    if isinstance(s, Box):
        return [_shape(ann.label, [(s.x0, s.y0), (s.x1, s.y1)], "rectangle")]
    if isinstance(s, Points):
        kind = ann.attributes.get("labelme_shape_type", "point")
        if kind in ("line", "linestrip"):
            return [_shape(ann.label, s.points, kind)]
        return [_shape(ann.label, [p], "point") for p in s.points]
    if isinstance(s, Polygon) and not s.has_holes:
        return [_shape(ann.label, p.exterior, "polygon") for p in s.parts]
    mask = s.to_mask(h, w)
    box = mask_bbox(mask)
    if box is None:
        return []
    x0, y0, x1, y1 = box
    png = base64.b64encode(mask_crop_png(mask[y0:y1, x0:x1])).decode("ascii")
    return [_shape(ann.label, [(x0, y0), (x1 - 1, y1 - 1)], "mask", mask=png)]


def import_(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    files = [source] if source.is_file() else sorted(source.rglob("*.json"))
    base = source.parent if source.is_file() else source
    root = Path(params["image_root"]).resolve() if params.get("image_root") else base.resolve()
    project = in_memory(root)
    for i, path in enumerate(files):
        ctx.progress(i / max(len(files), 1), f"labelme {path.name}")
        doc = read_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
            if source.is_file():
                raise FormatError(f"{path}: not a labelme file (no 'shapes' list)")
            ctx.warn(f"{path.name}: skipped, not a labelme file")
            continue
        _read_one(project, path, doc, root)
    return project


def _read_one(project: Project, path: Path, doc: dict, root: Path) -> None:
    labels = project.labels
    image_path = str(doc.get("imagePath") or "")
    if not image_path:
        raise FormatError(f"{path}: missing imagePath")
    rel_dir = Path(os.path.relpath(path.parent.resolve(), root))
    rel = os.path.normpath(rel_dir / image_path.replace("\\", "/"))
    full = safe_join(root, Path(rel).as_posix(), what=f"{path.name}: imagePath")
    key = full.relative_to(root).as_posix()
    try:
        w, h = int(doc["imageWidth"]), int(doc["imageHeight"])
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{path}: missing imageWidth/imageHeight") from None
    check_size(w, h, str(path))
    project.images.setdefault(key, ImageRecord(key, key, "", w, h))
    tags = [k for k, v in (doc.get("flags") or {}).items() if v]
    if tags:
        labels.set_tags(key, tags)
    extras = {k: v for k, v in doc.items() if k not in _TOP_KEYS}
    if extras:
        labels.extras.setdefault(key, {})["labelme"] = extras
    groups: dict[tuple, list[dict]] = {}  # in order of first appearance
    for n, s in enumerate(doc["shapes"]):
        if not isinstance(s, dict) or "label" not in s or "points" not in s:
            raise FormatError(f"{path}: shape {n} needs 'label' and 'points'")
        kind = s.get("shape_type") or "polygon"
        if s.get("group_id") is not None and kind in ("polygon", "point"):
            groups.setdefault((s["group_id"], s["label"], kind), []).append(s)
        else:
            groups[("single", n)] = [s]
    for group in groups.values():
        ann = _annotation(group, key, w, h, path)
        if ann is not None:
            labels.add(ann)


def _annotation(group: list[dict], key: str, w: int, h: int, path: Path) -> Annotation | None:
    first = group[0]
    kind = first.get("shape_type") or "polygon"
    label = str(first["label"])
    where = f"{path.name}: shape {label!r}"
    try:
        pts = [clip_points(np.asarray(s["points"], dtype=np.float64).reshape(-1, 2), w, h) for s in group]
    except (TypeError, ValueError):
        raise FormatError(f"{where}: points must be [[x, y], ...]") from None
    attrs: dict = {}
    extra = {k: v for k, v in first.items() if k not in _SHAPE_KEYS}
    if first.get("group_id") is not None and len(group) == 1:
        extra["group_id"] = first["group_id"]
    if extra:
        attrs["labelme"] = extra
    if kind == "polygon":
        if any(len(p) < 3 for p in pts):
            raise FormatError(f"{where}: a polygon needs at least 3 points")
        shape = Polygon(tuple(PolygonPart(p) for p in pts))
    elif kind == "rectangle":
        (xa, ya), (xb, yb) = pts[0][0], pts[0][-1]
        shape = Box(min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))
    elif kind in ("point", "line", "linestrip"):
        shape = Points(np.concatenate(pts))
        if kind != "point":
            attrs["labelme_shape_type"] = kind
    elif kind == "circle":
        (cx, cy), (ex, ey) = pts[0][0], pts[0][-1]
        r = float(np.hypot(ex - cx, ey - cy))
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        ring = clip_points(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1), w, h)
        shape = Polygon.simple(ring)
    elif kind == "mask":
        if not first.get("mask"):
            raise FormatError(f"{where}: mask shape without 'mask' data")
        crop = png_to_mask(base64.b64decode(first["mask"]))
        x0, y0 = int(round(pts[0][0][0])), int(round(pts[0][0][1]))
        full = np.zeros((h, w), dtype=bool)
        ch, cw = min(crop.shape[0], h - y0), min(crop.shape[1], w - x0)
        full[y0:y0 + ch, x0:x0 + cw] = crop[:ch, :cw]
        shape = Mask.from_array(full)
    else:
        raise FormatError(f"{where}: unknown shape_type {kind!r}")
    score = first.get("score")
    return Annotation(key, label, shape, provenance=imported(float(score) if score is not None else None, "labelme"),
                      attributes=attrs)
