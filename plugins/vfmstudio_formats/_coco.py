"""COCO instances JSON: polygons by default, RLE for masks on request (and for shapes with holes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vfmstudio.core import rle
from vfmstudio.core.annotations import Annotation, Box, Mask, Points, Polygon, PolygonPart
from vfmstudio.core.exchange import ExchangeContext, FormatError, safe_join
from vfmstudio.core.image import DEFAULT_MAX_PIXELS
from vfmstudio.core.project import Project, in_memory

from ._common import (
    copy_image,
    export_names,
    image_dims,
    image_record,
    imported,
    iter_images,
    read_json,
    shape_box,
    shape_parts,
    write_json,
)


def export(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    labels = project.labels
    names = export_names(project)
    categories = [{"id": i + 1, "name": c.name, "supercategory": "", "color": c.color}
                  for i, c in enumerate(labels.classes)]
    cat_id = {c.name: i + 1 for i, c in enumerate(labels.classes)}
    images, annotations = [], []
    use_rle = params["mask_format"] == "rle"
    for i, rec in iter_images(project, ctx, "COCO"):
        h, w = image_dims(project, rec)
        image_id = i + 1
        images.append({"id": image_id, "file_name": names[rec.key], "width": w, "height": h})
        if params["copy_images"]:
            copy_image(project, rec, out / "images" / names[rec.key], ctx)
        for ann in labels.annotations(rec.key):
            entry = _annotation(ann, h, w, use_rle, params["tolerance"], ctx)
            if entry is None:
                continue
            entry.update(id=len(annotations) + 1, image_id=image_id, category_id=cat_id[ann.label])
            annotations.append(entry)
    doc = {"info": {"description": "exported by vfmstudio", "version": "1.0"}, "licenses": [],
           "images": images, "annotations": annotations, "categories": categories}
    write_json(safe_join(out, params["filename"], what="parameter 'filename'"), doc, ctx)


def _annotation(ann: Annotation, h: int, w: int, use_rle: bool, tolerance: float, ctx: ExchangeContext) -> dict | None:
    shape = ann.shape
    if isinstance(shape, Points):
        ctx.warn("COCO: point annotations are not exported (COCO keypoints need a skeleton)")
        return None
    segmentation: list | dict
    if isinstance(shape, Box):
        segmentation, area = [], (shape.x1 - shape.x0) * (shape.y1 - shape.y0)
    elif use_rle and isinstance(shape, Mask) and (shape.height, shape.width) == (h, w):
        segmentation, area = shape.to_rle(), shape.area  # already COCO RLE: no pixels touched
    else:
        mask = shape.to_mask(h, w)
        area = int(mask.sum())
        parts = None if (use_rle and isinstance(shape, Mask)) else shape_parts(shape, tolerance)
        if parts is not None and not parts and area:
            parts = None  # simplified away (a sliver): keep the pixels as RLE rather than lose them
        if parts is None or any(holes for _, holes in parts):
            if parts is not None:
                ctx.warn("COCO: shapes with holes are written as RLE (COCO polygons cannot hold holes)")
            segmentation = rle.encode(mask)
        else:
            segmentation = [np.asarray(ext, dtype=float).ravel().tolist() for ext, _ in parts]
            if not segmentation:
                return None
    x0, y0, x1, y1 = shape_box(shape)
    entry = {"bbox": [x0, y0, x1 - x0, y1 - y0], "area": float(area), "iscrowd": 0, "segmentation": segmentation}
    if ann.score is not None:
        entry["score"] = ann.score
    return entry


def import_(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    if source.is_dir():
        found = sorted(source.glob("*.json"))
        if len(found) != 1:
            raise FormatError(f"{source}: expected one COCO .json file in the folder, found {len(found)}")
        source = found[0]
    doc = read_json(source)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise FormatError(f"{source}: not a COCO file (no 'images' list)")
    root = Path(params["image_root"]) if params.get("image_root") else _default_root(source)
    project = in_memory(root)
    labels = project.labels
    cats = {}
    for c in sorted(doc.get("categories", []), key=lambda c: c["id"]):
        cats[c["id"]] = c["name"]
        labels.ensure_class(str(c["name"]), str(c.get("color") or ""))
    keys = {}
    for im in doc["images"]:
        rec = image_record(root, str(im["file_name"]), width=int(im.get("width", 0)), height=int(im.get("height", 0)),
                           what=f"{source.name}: file_name")
        project.images.setdefault(rec.key, rec)
        keys[im["id"]] = rec
    anns = doc.get("annotations", [])
    for n, a in enumerate(anns):
        if n % 500 == 0:
            ctx.progress(n / max(len(anns), 1), "COCO annotations")
        rec = keys.get(a.get("image_id"))
        if rec is None:
            raise FormatError(f"{source.name}: annotation {a.get('id')} refers to unknown image {a.get('image_id')}")
        if a.get("category_id") not in cats:
            raise FormatError(f"{source.name}: annotation {a.get('id')} has unknown category {a.get('category_id')}")
        shape = _shape(a, rec.height, rec.width, source.name)
        attrs = {"iscrowd": 1} if a.get("iscrowd") else {}
        labels.add(Annotation(rec.key, cats[a["category_id"]], shape, provenance=imported(a.get("score"), "coco"),
                              attributes=attrs))
    return project


def _default_root(source: Path) -> Path:
    images = source.parent / "images"
    return images if images.is_dir() else source.parent


def _shape(a: dict, h: int, w: int, name: str):
    seg = a.get("segmentation")
    where = f"{name}: annotation {a.get('id')}"
    if isinstance(seg, dict):
        size = seg.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise FormatError(f"{where}: RLE size must be [height, width]")
        if (h and w and tuple(size) != (h, w)) or size[0] * size[1] > DEFAULT_MAX_PIXELS:
            raise FormatError(f"{where}: RLE size {tuple(size)} differs from the image size {(h, w)}")
        mask = rle.decode(seg)
        if h and w and mask.shape != (h, w):
            raise FormatError(f"{where}: RLE size {mask.shape} differs from the image size {(h, w)}")
        return Mask.from_array(mask)
    if isinstance(seg, list) and seg:
        parts = []
        for ring in seg:
            pts = np.asarray(ring, dtype=np.float64)
            if pts.size < 6 or pts.size % 2:
                raise FormatError(f"{where}: a polygon needs an even number (>= 6) of coordinates")
            parts.append(PolygonPart(pts.reshape(-1, 2)))
        return Polygon(tuple(parts))
    try:
        x, y, bw, bh = (float(v) for v in a["bbox"])
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{where}: no segmentation and no valid bbox") from None
    return Box(x, y, x + bw, y + bh)
