"""labelme JSON: one file per image, shapes with ``label``, ``points`` and ``shape_type``.

Read as labelme 5-7 and X-AnyLabeling write them: rectangles of 2 or 4 corner points (4 points
that are not axis-aligned are a rotated box), ``rotation`` (X-AnyLabeling) and
``oriented_rectangle`` (labelme 6) as rotated boxes, ``circle`` (centre, point on the circle) as a
circle, ``line``/``linestrip`` as polylines, ``point``/``points`` as points; per-shape
``description`` and ``flags`` are kept. A file whose image exists only as ``imageData`` gets the
image written next to it. Keypoints are written as ``point`` shapes sharing a ``group_id``, each
with ``kpt_name`` and ``visibility`` keys.

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
    AnnotationError,
    Box,
    Ellipse,
    ExchangeContext,
    FormatError,
    ImageLoadError,
    ImageRecord,
    Keypoints,
    Mask,
    Points,
    Polygon,
    PolygonPart,
    Polyline,
    Project,
    RotatedBox,
    image_size,
    in_memory,
    load_image,
    mask_bbox,
    safe_join,
)

from ._common import (
    check_size,
    clip_points,
    copy_image,
    drop_image_texts,
    export_names,
    image_dims,
    imported,
    iter_images,
    mask_crop_png,
    named_attributes,
    nearest_shape,
    png_to_mask,
    read_json,
    write_json,
)

VERSION = "5.5.0"
_TOP_KEYS = {"version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"}
_SHAPE_KEYS = {
    "label",
    "points",
    "group_id",
    "shape_type",
    "flags",
    "description",
    "mask",
    "score",
    "direction",
}
_HOLDS = (Box, Polygon, Mask, Points, RotatedBox, Ellipse, Polyline, Keypoints)
_EMBEDDED = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg"}  # imageData labelme writes


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
            new = _shapes(ann, h, w, ctx)
            if len(new) > 1 and group is None:
                group, next_group = next_group, next_group + 1
            for s in new:
                s.update(extra)
                s["group_id"] = group
                s["description"] = str(ann.attributes.get("description", ""))
                s["flags"] = dict(ann.attributes.get("flags") or {})
                if named_attributes(ann):
                    s["attributes"] = named_attributes(ann)
                if ann.score is not None:
                    s["score"] = ann.score
                shapes.append(s)
        extras = dict(labels.extras.get(rec.key, {}).get("labelme", {}))
        doc = {
            "version": VERSION,
            "flags": {t: True for t in labels.tags.get(rec.key, ())},
            "shapes": shapes,
            "imagePath": image_path,
            "imageData": None,
            "imageHeight": h,
            "imageWidth": w,
            **extras,
        }
        write_json(json_path, doc, ctx)
    drop_image_texts(project, ctx, "labelme", tags=False)


def _shape(label: str, points, shape_type: str, **more) -> dict:
    return {
        "label": label,
        "points": [[float(x), float(y)] for x, y in points],
        "group_id": None,
        "description": "",
        "shape_type": shape_type,
        "flags": {},
        "mask": None,
        **more,
    }


def _shapes(ann: Annotation, h: int, w: int, ctx: ExchangeContext) -> list[dict]:
    s = nearest_shape(ann, _HOLDS, ctx, "labelme")
    if isinstance(s, Ellipse) and not s.is_circle:
        s = Polygon.simple(s.ring())
        ctx.converted("ellipse", "polygon", "labelme has circles but no ellipses")
    kind = ann.attributes.get("labelme_shape_type")
    if s is None:
        return []
    if isinstance(s, Box):
        return [_shape(ann.label, [(s.x0, s.y0), (s.x1, s.y1)], "rectangle")]
    if isinstance(s, RotatedBox):
        if kind == "oriented_rectangle":
            return [_shape(ann.label, s.corners(), "oriented_rectangle")]
        return [_shape(ann.label, s.corners(), "rotation", direction=float(np.radians(s.angle % 360)))]
    if isinstance(s, Ellipse):
        return [_shape(ann.label, [(s.cx, s.cy), (s.cx + s.rx, s.cy)], "circle")]
    if isinstance(s, Polyline):
        return [_shape(ann.label, s.points, "line" if kind == "line" and len(s.points) == 2 else "linestrip")]
    if isinstance(s, Keypoints):
        names = s.names or tuple(str(i) for i in range(len(s.points)))
        return [
            _shape(ann.label, [p], "point", kpt_name=n, visibility=v)
            for p, v, n in zip(s.points, s.visibility, names)
        ]
    if isinstance(s, Points):
        if kind in ("line", "linestrip") and len(s.points) >= 2:  # projects from before polylines
            return [_shape(ann.label, s.points, kind)]
        if kind == "points":
            return [_shape(ann.label, s.points, "points")]
        return [_shape(ann.label, [p], "point") for p in s.points]
    if isinstance(s, Polygon) and not s.has_holes:
        return [_shape(ann.label, p.exterior, "polygon") for p in s.parts]
    if isinstance(s, Polygon):
        ctx.converted("polygon", "mask", "labelme polygons cannot hold holes")
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
        ctx.file = path
        try:
            doc = read_json(path)
            if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
                raise FormatError(f"{path}: not a labelme file (no 'shapes' list)")
            _read_one(project, path, doc, root, ctx)
        except FormatError as exc:
            if source.is_file():
                raise
            ctx.dropped("file", "unreadable", detail=str(exc))  # one bad file of many: the rest imports
    ctx.file = None
    return project


def _read_one(project: Project, path: Path, doc: dict, root: Path, ctx: ExchangeContext) -> None:
    labels = project.labels
    image_path = str(doc.get("imagePath") or "")
    if not image_path:
        raise FormatError(f"{path}: missing imagePath")
    rel_dir = Path(os.path.relpath(path.parent.resolve(), root))
    rel = os.path.normpath(rel_dir / image_path.replace("\\", "/"))
    try:
        full: Path | None = safe_join(root, Path(rel).as_posix(), what=f"{path.name}: imagePath")
    except FormatError:
        if not doc.get("imageData"):
            raise
        full = None  # a path elsewhere ('../data/x.jpg'): the embedded image is used
    if (full is None or not full.exists()) and doc.get("imageData"):
        full = _write_embedded(
            path, str(doc["imageData"]), PurePosixPath(image_path.replace("\\", "/")).name, root, ctx
        )
    assert full is not None  # None only with imageData, which _write_embedded turned into a file
    key = full.relative_to(root).as_posix()
    try:
        w, h = int(doc["imageWidth"]), int(doc["imageHeight"])
    except (KeyError, TypeError, ValueError):
        if not full.exists():
            raise FormatError(
                f"{path}: missing imageWidth/imageHeight and no image to read them from"
            ) from None
        try:
            w, h = image_size(full)
        except ImageLoadError as exc:
            raise FormatError(
                f"{path}: missing imageWidth/imageHeight and the image cannot be read ({exc})"
            ) from None
        ctx.warn("imageWidth/imageHeight missing, read from the image", file=path)
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
            ctx.dropped(
                "shape", "no label or points", file=path, detail=f"shape {n} needs 'label' and 'points'"
            )
            continue
        kind = s.get("shape_type") or "polygon"
        if s.get("group_id") is not None and kind in ("polygon", "point"):
            groups.setdefault((s["group_id"], s["label"], kind), []).append(s)
        else:
            groups[("single", n)] = [s]
    for group in groups.values():
        try:
            ann = _annotation(group, key, w, h, path)
        except (FormatError, ValueError, OSError) as exc:  # AnnotationError is a ValueError
            kind = str(group[0].get("shape_type") or "polygon")
            reason = (
                str(exc).removeprefix(f"{path.name}: ")
                if isinstance(exc, FormatError | AnnotationError)
                else "invalid data"
            )
            ctx.dropped(kind, "invalid", file=path, detail=reason)
            continue
        if ann is not None:
            labels.add(ann)


def _write_embedded(path: Path, data: str, name: str, root: Path, ctx: ExchangeContext) -> Path:
    """The image held only in ``imageData``, written next to the JSON (PNG or JPEG, checked by
    decoding it) so that the project has a file to show."""
    try:
        raw = base64.b64decode(data, validate=False)
    except ValueError:
        raise FormatError(f"{path}: imageData is not base64 and the image file is missing") from None
    ext = next((e for magic, e in _EMBEDDED.items() if raw.startswith(magic)), None)
    if ext is None:
        raise FormatError(f"{path}: imageData is not a PNG or JPEG image and the image file is missing")
    if not path.parent.resolve().is_relative_to(root):
        raise FormatError(
            f"{path}: the image is only in imageData and the file lies outside the image folder"
        )
    for target in (
        path.parent / f"{PurePosixPath(name).stem or path.stem}{ext}",
        path.parent / f"{path.stem}.imagedata{ext}",
    ):
        if target.is_symlink() or (target.exists() and not target.is_file()):
            continue
        if target.exists():
            if target.stat().st_size == len(raw) and target.read_bytes() == raw:
                return target.resolve()  # written by an earlier import of this file
            continue
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(raw)
        try:
            load_image(tmp)  # the bytes must decode as an image within the pixel limit
        except ImageLoadError as exc:
            tmp.unlink()
            raise FormatError(f"{path}: imageData is not a readable image ({exc})") from None
        tmp.replace(target)
        break
    else:
        raise FormatError(f"{path}: the image is only in imageData and no free file name is left beside it")
    ctx.warn(f"image only in imageData, written to {target.name}", file=path)
    return target.resolve()


def _corners_axis_aligned(pts: np.ndarray) -> bool:
    xs, ys = np.unique(np.round(pts[:, 0], 6)), np.unique(np.round(pts[:, 1], 6))
    return len(xs) <= 2 and len(ys) <= 2


def _annotation(group: list[dict], key: str, w: int, h: int, path: Path) -> Annotation | None:
    first = group[0]
    kind = first.get("shape_type") or "polygon"
    label = str(first["label"])
    where = f"{path.name}: shape {label!r}"
    try:
        raw = [np.asarray(s["points"], dtype=np.float64).reshape(-1, 2) for s in group]
    except (TypeError, ValueError):
        raise FormatError(f"{where}: points must be [[x, y], ...]") from None
    if any(len(p) == 0 or not np.isfinite(p).all() for p in raw):
        raise FormatError(f"{where}: points must be finite numbers")
    pts = [clip_points(p, w, h) for p in raw]
    attrs: dict = {}
    extra = {k: v for k, v in first.items() if k not in _SHAPE_KEYS}
    if first.get("group_id") is not None and len(group) == 1:
        extra["group_id"] = first["group_id"]
    if first.get("description"):
        attrs["description"] = str(first["description"])
    if isinstance(first.get("flags"), dict) and first["flags"]:
        attrs["flags"] = dict(first["flags"])
    if isinstance(first.get("attributes"), dict):  # X-AnyLabeling's per-object attributes
        extra.pop("attributes", None)
        attrs.update(
            {str(k): v for k, v in first["attributes"].items() if isinstance(v, str | int | float | bool)}
        )
    if kind == "polygon":
        if any(len(p) < 3 for p in pts):
            raise FormatError(f"{where}: a polygon needs at least 3 points")
        shape = Polygon(tuple(PolygonPart(p) for p in pts))
    elif kind == "rectangle" and len(pts[0]) == 4 and not _corners_axis_aligned(raw[0]):
        shape = RotatedBox.from_corners(raw[0])  # 4 corners of a turned box (X-AnyLabeling)
    elif kind == "rectangle":
        p = pts[0]  # 2 opposite corners (labelme) or 4 corners (X-AnyLabeling >= 2.2)
        if len(p) < 2:
            raise FormatError(f"{where}: a rectangle needs 2 or 4 points")
        shape = Box(float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max()))
    elif kind in ("rotation", "oriented_rectangle"):
        if len(raw[0]) != 4:
            raise FormatError(f"{where}: a {kind} shape needs 4 points, got {len(raw[0])}")
        shape = RotatedBox.from_corners(raw[0])
        if kind == "oriented_rectangle":
            attrs["labelme_shape_type"] = kind
    elif kind == "point" and all("visibility" in s for s in group):
        names = [str(s.get("kpt_name", i)) for i, s in enumerate(group)]
        vis = [int(s["visibility"]) if s["visibility"] in (0, 1, 2) else 2 for s in group]
        shape = Keypoints(np.concatenate(pts), tuple(vis), tuple(names))
        for k in ("kpt_name", "visibility"):
            extra.pop(k, None)
    elif kind in ("point", "points"):
        shape = Points(np.concatenate(pts))
        if kind == "points":
            attrs["labelme_shape_type"] = kind
    elif kind in ("line", "linestrip"):
        if len(pts[0]) < 2:
            raise FormatError(f"{where}: a {kind} needs at least 2 points")
        shape = Polyline(pts[0])
        attrs["labelme_shape_type"] = kind
    elif kind == "circle":
        if len(raw[0]) < 2:
            raise FormatError(f"{where}: a circle needs its centre and a point on it")
        (cx, cy), (ex, ey) = raw[0][0], raw[0][-1]
        shape = Ellipse.circle(float(cx), float(cy), float(np.hypot(ex - cx, ey - cy)))
    elif kind == "mask":
        if not first.get("mask"):
            raise FormatError(f"{where}: mask shape without 'mask' data")
        crop = png_to_mask(base64.b64decode(first["mask"]))
        x0, y0 = int(round(pts[0][0][0])), int(round(pts[0][0][1]))
        full = np.zeros((h, w), dtype=bool)
        ch, cw = min(crop.shape[0], h - y0), min(crop.shape[1], w - x0)
        full[y0 : y0 + ch, x0 : x0 + cw] = crop[:ch, :cw]
        shape = Mask.from_array(full)
    else:
        raise FormatError(f"{where}: unknown shape_type {kind!r}")
    if extra:
        attrs["labelme"] = extra
    score = first.get("score")
    try:
        score = float(score) if score is not None else None
    except (TypeError, ValueError):
        score = None
    return Annotation(key, label, shape, provenance=imported(score, "labelme"), attributes=attrs)
