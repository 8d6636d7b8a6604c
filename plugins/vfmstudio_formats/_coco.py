"""COCO instances and keypoints JSON: polygons by default, RLE for masks on request (and for shapes
with holes and crowd regions, ``iscrowd=1`` kept both ways).

Keypoints: ``keypoints`` [x, y, v]*K and ``num_keypoints`` on the annotation, the names and the
``skeleton`` (1-based pairs) on the category. An annotation with both an outline and keypoints is
imported as two annotations sharing the ``object`` attribute and written back as one. Per-object
``attributes`` (as CVAT writes them) are kept. The standard layout
``annotations/instances_val.json`` + ``images/val/`` (or ``val/``) is found without ``image_root``.
Repeated image or category ids are refused (they would move annotations silently).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vfmstudio.plugin_api import (
    DEFAULT_MAX_PIXELS,
    Annotation,
    Box,
    ExchangeContext,
    FormatError,
    Keypoints,
    Mask,
    Polygon,
    PolygonPart,
    Project,
    Skeleton,
    in_memory,
    rle_decode,
    rle_encode,
    safe_join,
)

from ._common import (
    clipped,
    copy_image,
    drop_image_texts,
    export_names,
    image_dims,
    image_record,
    imported,
    iter_images,
    named_attributes,
    nearest_shape,
    read_json,
    shape_box,
    shape_parts,
    write_json,
)


def export(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    labels = project.labels
    names = export_names(project)
    categories = []
    named: dict[str, tuple[str, ...]] = {}  # per class, the names its keypoints carry (when no skeleton)
    for a in labels.annotations():
        if isinstance(a.shape, Keypoints) and a.shape.names:
            named.setdefault(a.label, a.shape.names)
    for i, c in enumerate(labels.classes):
        cat = {"id": i + 1, "name": c.name, "supercategory": "", "color": c.color}
        skeleton = labels.skeletons.get(c.name)
        if skeleton is None and c.name in named:
            skeleton = Skeleton(named[c.name])
        if skeleton is not None:
            cat["keypoints"] = list(skeleton.names)
            cat["skeleton"] = [[a + 1, b + 1] for a, b in skeleton.edges]
        categories.append(cat)
    cat_id = {c.name: i + 1 for i, c in enumerate(labels.classes)}
    images, annotations = [], []
    use_rle = params["mask_format"] == "rle"
    for i, rec in iter_images(project, ctx, "COCO"):
        h, w = image_dims(project, rec)
        image_id = i + 1
        images.append({"id": image_id, "file_name": names[rec.key], "width": w, "height": h})
        if params["copy_images"]:
            copy_image(project, rec, out / "images" / names[rec.key], ctx)
        for anns in _objects(labels.annotations(rec.key)):
            entry = _entry(anns, h, w, use_rle, params["tolerance"], ctx)
            if entry is None:
                continue
            entry.update(id=len(annotations) + 1, image_id=image_id, category_id=cat_id[anns[0].label])
            annotations.append(entry)
    drop_image_texts(project, ctx, "COCO")
    doc = {
        "info": {"description": "exported by vfmstudio", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    write_json(safe_join(out, params["filename"], what="parameter 'filename'"), doc, ctx)


def _objects(anns) -> list[list[Annotation]]:
    """Annotations grouped into COCO objects: an outline and its keypoints sharing ``object``."""
    out: list[list[Annotation]] = []
    slots: dict[tuple, list[Annotation]] = {}
    for a in anns:
        obj = a.attributes.get("object")
        group = slots.get((obj, a.label)) if obj is not None else None
        if (
            group is not None
            and len(group) == 1
            and isinstance(group[0].shape, Keypoints) != isinstance(a.shape, Keypoints)
        ):
            group.append(a)
            continue
        out.append([a])
        if obj is not None:
            slots[(obj, a.label)] = out[-1]
    return out


def _entry(
    anns: list[Annotation], h: int, w: int, use_rle: bool, tolerance: float, ctx: ExchangeContext
) -> dict | None:
    kpts = next((a for a in anns if isinstance(a.shape, Keypoints)), None)
    outline = next((a for a in anns if not isinstance(a.shape, Keypoints)), None)
    entry = _annotation(outline, h, w, use_rle, tolerance, ctx) if outline is not None else None
    if outline is not None and entry is None and kpts is None:
        return None
    if kpts is not None:
        s = kpts.shape
        flat = []
        for (x, y), v in zip(s.points, s.visibility):
            flat += [0, 0, 0] if v == 0 else [float(x), float(y), v]
        if entry is None:
            box = kpts.attributes.get("bbox")
            x0, y0, x1, y1 = (
                (float(v) for v in box) if isinstance(box, list | tuple) and len(box) == 4 else s.bbox()
            )
            entry = {
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": float((x1 - x0) * (y1 - y0)),
                "iscrowd": 0,
                "segmentation": [],
            }
            if kpts.score is not None:
                entry["score"] = kpts.score
        entry.update(keypoints=flat, num_keypoints=s.labelled)
    attrs = {}
    for a in anns:
        attrs.update(named_attributes(a))
        if "occluded" in a.attributes:
            attrs["occluded"] = bool(a.attributes["occluded"])
    if attrs:
        entry["attributes"] = attrs
    return entry


def _annotation(
    ann: Annotation, h: int, w: int, use_rle: bool, tolerance: float, ctx: ExchangeContext
) -> dict | None:
    shape = nearest_shape(ann, (Box, Polygon, Mask), ctx, "COCO")
    if shape is None:
        return None
    crowd = bool(ann.attributes.get("iscrowd"))
    segmentation: list | dict
    if isinstance(shape, Box):
        segmentation, area = [], (shape.x1 - shape.x0) * (shape.y1 - shape.y0)
    elif (use_rle or crowd) and isinstance(shape, Mask) and (shape.height, shape.width) == (h, w):
        segmentation, area = shape.to_rle(), shape.area  # already COCO RLE: no pixels touched
    else:
        mask = shape.to_mask(h, w)
        area = int(mask.sum())
        parts = None if ((use_rle or crowd) and isinstance(shape, Mask)) else shape_parts(shape, tolerance)
        if parts is not None and not parts and area:
            parts = None  # simplified away (a sliver): keep the pixels as RLE rather than lose them
        if parts is None or any(holes for _, holes in parts):
            if parts is not None and not isinstance(ann.shape, Mask):
                ctx.converted(ann.shape.kind, "mask", "COCO polygons cannot hold holes: written as RLE")
            segmentation = rle_encode(mask)
        else:
            segmentation = [np.asarray(ext, dtype=float).ravel().tolist() for ext, _ in parts]
            if not segmentation:
                ctx.dropped(ann.shape.kind, "empty outline")
                return None
    x0, y0, x1, y1 = shape_box(shape)
    x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))  # inside the image
    entry = {
        "bbox": [x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0)],
        "area": float(area),
        "iscrowd": int(crowd),
        "segmentation": segmentation,
    }
    if ann.score is not None:
        entry["score"] = ann.score
    return entry


def import_(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    if source.is_dir():
        found = sorted(source.glob("*.json")) or sorted(source.glob("annotations/*.json"))
        if len(found) != 1:
            raise FormatError(
                f"{source}: expected one COCO .json file in the folder (or in annotations/), "
                f"found {len(found)}"
            )
        source = found[0]
    ctx.file = source
    doc = read_json(source)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise FormatError(f"{source}: not a COCO file (no 'images' list)")
    root = Path(params["image_root"]) if params.get("image_root") else _default_root(source, doc["images"])
    project = in_memory(root)
    labels = project.labels
    cats: dict = {}
    for n, c in enumerate(doc.get("categories", [])):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise FormatError(f"{source}: category {n} needs 'id' and 'name'")
        if c["id"] in cats:
            raise FormatError(
                f"{source}: category id {c['id']} is used twice ({cats[c['id']]!r} and {c['name']!r}); "
                "its annotations would be relabelled"
            )
        cats[c["id"]] = str(c["name"])
    try:
        ordered = sorted(doc.get("categories", []), key=lambda c: c["id"])
    except TypeError:  # ids of mixed types: keep the file's order
        ordered = list(doc.get("categories", []))
    for c in ordered:
        labels.ensure_class(str(c["name"]), str(c.get("color") or ""))
        if isinstance(c.get("keypoints"), list) and c["keypoints"]:
            edges = [(int(a) - 1, int(b) - 1) for a, b in c.get("skeleton") or ()]
            labels.skeletons[str(c["name"])] = Skeleton(tuple(str(k) for k in c["keypoints"]), tuple(edges))
    keys = {}
    for n, im in enumerate(doc["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise FormatError(f"{source}: image {n} needs 'id' and 'file_name'")
        if im["id"] in keys:
            raise FormatError(
                f"{source}: image id {im['id']} is used twice ({keys[im['id']].path!r} and "
                f"{im['file_name']!r}); its annotations would move to the other image"
            )
        rec = image_record(
            root,
            str(im["file_name"]),
            width=int(im.get("width", 0)),
            height=int(im.get("height", 0)),
            what=f"{source.name}: file_name",
        )
        project.images.setdefault(rec.key, rec)
        keys[im["id"]] = rec
    anns = doc.get("annotations", [])
    for n, a in enumerate(anns):
        if n % 500 == 0:
            ctx.progress(n / max(len(anns), 1), "COCO annotations")
        if not isinstance(a, dict):
            ctx.dropped("annotation", "not an object", file=source, detail=f"annotation {n} is not an object")
            continue
        rec = keys.get(a.get("image_id"))
        if rec is None:
            ctx.dropped(
                "annotation",
                "unknown image",
                file=source,
                detail=f"annotation {a.get('id')} refers to unknown image {a.get('image_id')}",
            )
            continue
        if a.get("category_id") not in cats:
            ctx.dropped(
                "annotation",
                "unknown category",
                file=source,
                detail=f"annotation {a.get('id')} has unknown category {a.get('category_id')}",
            )
            continue
        try:
            made = _annotations(a, rec, cats[a["category_id"]], source.name)
            made = [m if isinstance(m.shape, Keypoints | Mask) else _clip(m, rec, ctx, source) for m in made]
        except FormatError as exc:
            ctx.dropped(
                "annotation", "invalid", file=source, detail=str(exc).removeprefix(f"{source.name}: ")
            )
            continue
        for ann in made:
            labels.add(ann)
    ctx.file = None
    return project


def _clip(ann: Annotation, rec, ctx, source) -> Annotation:
    shape = clipped(ann.shape, rec.width, rec.height, ctx, source)
    return ann if shape is ann.shape else ann.with_shape(shape)  # most shapes are inside: no copy


def _annotations(a: dict, rec, label: str, name: str) -> list[Annotation]:
    """The outline of a COCO annotation and, when it has labelled keypoints, its keypoints."""
    attrs: dict = {"iscrowd": 1} if a.get("iscrowd") else {}
    if isinstance(a.get("attributes"), dict):
        for k, v in a["attributes"].items():
            if isinstance(v, str | int | float | bool) and not (k == "occluded" and v is False):
                attrs[str(k)] = v
    prov = imported(a.get("score") if isinstance(a.get("score"), int | float) else None, "coco")
    kp = a.get("keypoints")
    labelled = isinstance(kp, list) and len(kp) >= 3 and any(kp[i] for i in range(2, len(kp), 3))
    if not labelled:
        return [
            Annotation(
                rec.key, label, _shape(a, rec.height, rec.width, name), provenance=prov, attributes=attrs
            )
        ]
    where = f"{name}: annotation {a.get('id')}"
    if len(kp) % 3:
        raise FormatError(f"{where}: keypoints must be [x, y, v] triples")
    k = np.asarray(kp, dtype=np.float64).reshape(-1, 3)
    vis = tuple(int(v) if v in (0, 1, 2) else 2 for v in k[:, 2])
    shape_attrs = {**attrs, "object": a.get("id")}
    out = []
    seg = a.get("segmentation")
    if seg:  # an outline as well: two annotations, written back as one object
        out.append(
            Annotation(
                rec.key,
                label,
                _shape(a, rec.height, rec.width, name),
                provenance=prov,
                attributes=shape_attrs,
            )
        )
    kp_attrs = dict(shape_attrs)
    try:
        x, y, bw, bh = (float(v) for v in a["bbox"])
        kp_attrs["bbox"] = [x, y, x + bw, y + bh]
    except (KeyError, TypeError, ValueError):
        pass
    out.append(Annotation(rec.key, label, Keypoints(k[:, :2], vis), provenance=prov, attributes=kp_attrs))
    return out


def _default_root(source: Path, images: list) -> Path:
    """Where the file names start: ``images/`` beside the file, or for the standard layout
    ``annotations/instances_val.json`` the ``images/val/``, ``val/`` or ``images/`` folder."""
    first = next((str(im["file_name"]) for im in images if isinstance(im, dict) and "file_name" in im), None)
    candidates = [source.parent / "images"]
    if source.parent.name == "annotations":
        base, split = source.parent.parent, source.stem.rpartition("_")[2]
        candidates = [base / "images" / split, base / split, base / "images", base]
    for c in candidates:
        if c.is_dir() and (first is None or (c / first).exists()):
            return c
    images_dir = source.parent / "images"
    return images_dir if images_dir.is_dir() else source.parent


def _shape(a: dict, h: int, w: int, name: str):
    seg = a.get("segmentation")
    where = f"{name}: annotation {a.get('id')}"
    if isinstance(seg, dict):
        size = seg.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise FormatError(f"{where}: RLE size must be [height, width]")
        if (h and w and tuple(size) != (h, w)) or size[0] * size[1] > DEFAULT_MAX_PIXELS:
            raise FormatError(f"{where}: RLE size {tuple(size)} differs from the image size {(h, w)}")
        mask = rle_decode(seg)
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
