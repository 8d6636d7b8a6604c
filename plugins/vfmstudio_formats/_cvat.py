"""CVAT for images 1.1 XML: ``<image>`` elements holding boxes, polygons, points, tags and masks.

Boxes may carry ``rotation`` (degrees, clockwise about the centre: rotated boxes); ``<ellipse>``
and ``<polyline>`` are kept as such; ``occluded``, ``z_order`` and ``<attribute name=...>``
children become annotation attributes. Project exports put ``subset="Train|Validation|Test"`` on
each image and the files in ``images/<Subset>/``. Video tasks hold ``<track>`` elements with one
shape per frame: they are imported per frame when the frames are ``<image>`` elements of the file,
otherwise counted and reported as dropped. ``<skeleton>`` elements (one ``<points>`` per named
keypoint, ``outside``/``occluded`` giving the visibility) are read as keypoints; keypoints are
written as ``<points>``.

Masks are CVAT's tight-box RLE: ``rle`` lists alternating run lengths (background first) over the
``width`` x ``height`` crop at ``left``/``top``, row by row. Model output is marked
``source="auto"``. Multi-part polygons share a ``group_id``; polygons with holes are written as
masks. Untrusted XML is read with defusedxml.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only to build trees we write ourselves
from pathlib import Path

import numpy as np

from vfmstudio.plugin_api import (
    Annotation,
    Box,
    Ellipse,
    ExchangeContext,
    FormatError,
    ImageRecord,
    Keypoints,
    Mask,
    Points,
    Polygon,
    PolygonPart,
    Polyline,
    Project,
    Provenance,
    RotatedBox,
    in_memory,
    mask_bbox,
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
)
from ._voc import parse_xml

_HOLDS = (Box, Polygon, Mask, Points, RotatedBox, Ellipse, Polyline)


def _pts(points) -> str:
    return ";".join(f"{x:.2f},{y:.2f}" for x, y in points)


def mask_to_cvat_rle(crop: np.ndarray) -> list[int]:
    flat = np.asarray(crop, dtype=bool).ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
    return ([0] if flat.size and flat[0] else []) + [int(r) for r in runs]


def cvat_rle_to_mask(counts: list[int], width: int, height: int) -> np.ndarray:
    if sum(counts) != width * height:
        raise ValueError(f"run lengths cover {sum(counts)} pixels, the box has {width * height}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(height, width)


def export(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    names = export_names(project)
    labels = project.labels
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    ET.SubElement(task, "name").text = project.root.name or "vfmstudio"
    ET.SubElement(task, "size").text = str(len(project.images))
    ET.SubElement(task, "mode").text = "annotation"
    labels_el = ET.SubElement(task, "labels")
    declared_attrs: dict[str, dict[str, None]] = {c.name: {} for c in labels.classes}
    for a in labels.annotations():
        declared_attrs.setdefault(a.label, {}).update(dict.fromkeys(named_attributes(a)))
    for c in labels.classes:
        lab = ET.SubElement(labels_el, "label")
        ET.SubElement(lab, "name").text = c.name
        ET.SubElement(lab, "color").text = c.color
        ET.SubElement(lab, "type").text = "any"
        attrs_el = ET.SubElement(lab, "attributes")
        for name in declared_attrs.get(c.name, ()):  # CVAT reads only declared attributes
            at = ET.SubElement(attrs_el, "attribute")
            ET.SubElement(at, "name").text = name
            ET.SubElement(at, "mutable").text = "False"
            ET.SubElement(at, "input_type").text = "text"
            ET.SubElement(at, "default_value").text = ""
            ET.SubElement(at, "values").text = ""
    declared = set(labels.class_names)
    for tag in dict.fromkeys(t for tags in labels.tags.values() for t in tags):
        if tag not in declared:  # CVAT needs every tag's label declared
            lab = ET.SubElement(labels_el, "label")
            ET.SubElement(lab, "name").text = tag
            ET.SubElement(lab, "type").text = "tag"
    group = 0
    for i, rec in iter_images(project, ctx, "CVAT"):
        h, w = image_dims(project, rec)
        subset = str(labels.extras.get(rec.key, {}).get("cvat", {}).get("subset") or "")
        name = names[rec.key]
        if subset and name.startswith(f"{subset}/"):  # CVAT keeps the subset folder out of the name
            name = name[len(subset) + 1 :]
        folder = f"images/{subset}" if subset else "images"
        if params["copy_images"]:
            copy_image(project, rec, out / folder / name, ctx)
        im = ET.SubElement(root, "image", id=str(i), name=name, width=str(w), height=str(h))
        if subset:
            im.set("subset", subset)
        for ann in labels.annotations(rec.key):
            common = {
                "label": ann.label,
                "source": "manual" if ann.provenance.source == "manual" else "auto",
                "occluded": str(int(bool(ann.attributes.get("occluded", False)))),
                "z_order": str(int(ann.attributes.get("z_order", 0) or 0)),
            }
            if ann.score is not None:
                common["score"] = f"{ann.score:.6g}"
            s = nearest_shape(ann, _HOLDS, ctx, "CVAT")
            made: list[ET.Element] = []
            if s is None:
                continue
            if isinstance(s, Box):
                made.append(
                    ET.SubElement(
                        im,
                        "box",
                        **common,
                        xtl=f"{s.x0:.2f}",
                        ytl=f"{s.y0:.2f}",
                        xbr=f"{s.x1:.2f}",
                        ybr=f"{s.y1:.2f}",
                    )
                )
            elif isinstance(s, RotatedBox):
                made.append(
                    ET.SubElement(
                        im,
                        "box",
                        **common,
                        xtl=f"{s.cx - s.w / 2:.2f}",
                        ytl=f"{s.cy - s.h / 2:.2f}",
                        xbr=f"{s.cx + s.w / 2:.2f}",
                        ybr=f"{s.cy + s.h / 2:.2f}",
                        rotation=f"{s.angle % 360:.2f}",
                    )
                )
            elif isinstance(s, Ellipse):
                made.append(
                    ET.SubElement(
                        im,
                        "ellipse",
                        **common,
                        cx=f"{s.cx:.2f}",
                        cy=f"{s.cy:.2f}",
                        rx=f"{s.rx:.2f}",
                        ry=f"{s.ry:.2f}",
                        rotation=f"{s.angle % 360:.2f}",
                    )
                )
            elif isinstance(s, Polyline):
                made.append(ET.SubElement(im, "polyline", **common, points=_pts(s.points)))
            elif isinstance(s, Points):
                made.append(ET.SubElement(im, "points", **common, points=_pts(s.points)))
            elif isinstance(s, Polygon) and not s.has_holes:
                extra = {}
                if len(s.parts) > 1:
                    group += 1
                    extra["group_id"] = str(group)
                for part in s.parts:
                    made.append(ET.SubElement(im, "polygon", **common, **extra, points=_pts(part.exterior)))
            else:
                if isinstance(s, Polygon):
                    ctx.converted("polygon", "mask", "CVAT polygons cannot hold holes")
                mask = s.to_mask(h, w)
                box = mask_bbox(mask)
                if box is None:
                    continue
                x0, y0, x1, y1 = box
                counts = mask_to_cvat_rle(mask[y0:y1, x0:x1])
                made.append(
                    ET.SubElement(
                        im,
                        "mask",
                        **common,
                        rle=", ".join(map(str, counts)),
                        left=str(x0),
                        top=str(y0),
                        width=str(x1 - x0),
                        height=str(y1 - y0),
                    )
                )
            for el in made:
                for name, value in named_attributes(ann).items():
                    ET.SubElement(el, "attribute", name=name).text = str(value)
        for tag in labels.tags.get(rec.key, ()):
            ET.SubElement(im, "tag", label=tag, source="manual")
    drop_image_texts(project, ctx, "CVAT", tags=False)
    ET.indent(root)
    path = safe_join(out, params["filename"], what="parameter 'filename'")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    ctx.wrote(path)


def _floats(el: ET.Element, *names: str, where: str) -> list[float]:
    try:
        return [float(el.attrib[n]) for n in names]
    except (KeyError, ValueError):
        raise FormatError(f"{where}: <{el.tag}> needs numeric {', '.join(names)}") from None


def _points(text: str, where: str) -> np.ndarray:
    try:
        return np.asarray(
            [[float(v) for v in p.split(",")] for p in text.split(";") if p.strip()], dtype=np.float64
        ).reshape(-1, 2)
    except ValueError:
        raise FormatError(f"{where}: invalid points {text[:40]!r}") from None


def import_(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    xml_path = source if source.is_file() else source / "annotations.xml"
    if not xml_path.exists():
        raise FormatError(f"{source}: no annotations.xml")
    base = xml_path.parent
    root = (
        Path(params["image_root"])
        if params.get("image_root")
        else (base / "images" if (base / "images").is_dir() else base)
    )
    ctx.file = xml_path
    doc = parse_xml(xml_path)
    if doc.tag != "annotations":
        raise FormatError(f"{xml_path}: not a CVAT for images file (root element <{doc.tag}>)")
    project = in_memory(root)
    labels = project.labels
    tag_labels = set()
    for lab in doc.findall("meta/task/labels/label") or doc.findall("meta/project/labels/label"):
        name = (lab.findtext("name") or "").strip()
        if not name:
            continue
        if (lab.findtext("type") or "") == "tag":
            tag_labels.add(name)
        else:
            labels.ensure_class(
                name, (lab.findtext("color") or "").strip() if _is_color(lab.findtext("color")) else ""
            )
    images = doc.findall("image")
    tracks = _tracks_by_frame(doc, {im.get("id") for im in images}, xml_path, ctx)
    for n, im in enumerate(images):
        ctx.progress(n / max(len(images), 1), f"CVAT {im.get('name')}")
        where = f"{xml_path.name}: image {im.get('name')!r}"
        w, h = (int(v) for v in _floats(im, "width", "height", where=where))
        name, subset = str(im.get("name") or ""), str(im.get("subset") or "")
        rel = name
        if subset and not (root / name).exists():  # project export: images/<Subset>/<name>
            rel = f"{subset}/{name}"
        rec = image_record(root, rel, width=w, height=h, what=f"{xml_path.name}: image name")
        project.images.setdefault(rec.key, ImageRecord(rec.key, rec.path, "", w, h))
        if subset:
            labels.extras.setdefault(rec.key, {})["cvat"] = {"subset": subset}
        items: dict[tuple, tuple[str, object, Provenance, dict]] = {}  # annotations in document order
        grouped: dict[tuple, list[np.ndarray]] = {}
        for k, el in enumerate([*im, *tracks.get(im.get("id"), [])]):
            label = el.get("label")
            if not label:
                ctx.dropped(
                    el.tag, "no label", file=xml_path, detail=f"image {name!r}: <{el.tag}> without a label"
                )
                continue
            prov = _provenance(el)
            attrs = _attributes(el)
            if el.tag == "box":
                x0, y0, x1, y1 = _floats(el, "xtl", "ytl", "xbr", "ybr", where=where)
                turn = float(el.get("rotation") or 0.0)
                shape = (
                    Box(x0, y0, x1, y1)
                    if turn % 360 == 0
                    else RotatedBox((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, turn)
                )
                items[(k,)] = (label, shape, prov, attrs)
            elif el.tag == "ellipse":
                cx, cy, rx, ry = _floats(el, "cx", "cy", "rx", "ry", where=where)
                items[(k,)] = (label, Ellipse(cx, cy, rx, ry, float(el.get("rotation") or 0.0)), prov, attrs)
            elif el.tag == "polygon":
                pts = _points(el.get("points", ""), where)
                if len(pts) < 3:
                    ctx.dropped(
                        "polygon",
                        "fewer than 3 points",
                        file=xml_path,
                        detail=f"image {name!r}: a polygon needs at least 3 points",
                    )
                    continue
                gid = el.get("group_id")
                slot = ("group", gid, label) if gid and gid != "0" else (k,)
                if slot not in grouped:
                    grouped[slot] = []
                    items[slot] = (label, None, prov, attrs)
                grouped[slot].append(pts)
            elif el.tag == "polyline":
                pts = _points(el.get("points", ""), where)
                shape = Polyline(pts) if len(pts) >= 2 else Points(pts)
                items[(k,)] = (label, shape, prov, attrs)
            elif el.tag == "points":
                items[(k,)] = (label, Points(_points(el.get("points", ""), where)), prov, attrs)
            elif el.tag == "skeleton":  # CVAT 2.x: one <points> per keypoint, named by its sub-label
                names, pts, vis = [], [], []
                for kp in el.findall("points"):
                    xy = _points(kp.get("points", ""), where)
                    if len(xy) != 1:
                        continue
                    names.append(str(kp.get("label") or len(names)))
                    pts.append(xy[0])
                    vis.append(0 if kp.get("outside") == "1" else 1 if kp.get("occluded") == "1" else 2)
                if not pts:
                    ctx.dropped(
                        "keypoints",
                        "empty skeleton",
                        file=xml_path,
                        detail=f"image {name!r}: a <skeleton> without points",
                    )
                    continue
                items[(k,)] = (label, Keypoints(np.asarray(pts), tuple(vis), tuple(names)), prov, attrs)
            elif el.tag == "tag":
                labels.set_tags(rec.key, (*labels.tags.get(rec.key, ()), label))
            elif el.tag == "mask":
                left, top, mw, mh = (
                    int(v) for v in _floats(el, "left", "top", "width", "height", where=where)
                )
                if left < 0 or top < 0 or mw < 0 or mh < 0 or left + mw > w or top + mh > h:
                    raise FormatError(f"{where}: mask box {left},{top} {mw}x{mh} lies outside the image")
                try:
                    crop = cvat_rle_to_mask(
                        [int(c) for c in el.get("rle", "").split(",") if c.strip()], mw, mh
                    )
                except ValueError as exc:
                    raise FormatError(f"{where}: invalid mask rle ({exc})") from None
                full = np.zeros((h, w), dtype=bool)
                full[top : top + mh, left : left + mw] = crop[: max(0, h - top), : max(0, w - left)]
                items[(k,)] = (label, Mask.from_array(full), prov, attrs)
            else:
                ctx.dropped(
                    el.tag, "not imported", file=xml_path, detail=f"<{el.tag}> elements are not imported"
                )
        for slot, (label, shape, prov, attrs) in items.items():
            if shape is None:  # polygons sharing a group_id are one multi-part polygon
                shape = Polygon(tuple(PolygonPart(r) for r in grouped[slot]))
            labels.add(
                Annotation(
                    rec.key, label, clipped(shape, w, h, ctx, xml_path), provenance=prov, attributes=attrs
                )
            )
    return project


def _attributes(el: ET.Element) -> dict:
    attrs: dict = {}
    if el.get("occluded") == "1":
        attrs["occluded"] = True
    z = el.get("z_order")
    if z and z.lstrip("-").isdigit() and int(z) != 0:
        attrs["z_order"] = int(z)
    for at in el.findall("attribute"):
        if at.get("name"):
            attrs[str(at.get("name"))] = (at.text or "").strip()
    return attrs


def _tracks_by_frame(doc: ET.Element, frames: set, xml_path: Path, ctx: ExchangeContext) -> dict[str, list]:
    """Shapes of ``<track>`` elements per frame id; shapes marked ``outside`` are not in view."""
    out: dict[str, list] = {}
    for track in doc.findall("track"):
        for el in track:
            if el.get("outside") == "1":
                continue
            frame = el.get("frame")
            if frame not in frames:
                ctx.dropped(
                    el.tag,
                    "track frame not in the file",
                    file=xml_path,
                    detail=f"track {track.get('id')}: shapes on frames without <image> (video tasks: "
                    "export the task as 'CVAT for images' to get the frames)",
                )
                continue
            el.set("label", track.get("label") or "")
            if track.get("source") and not el.get("source"):
                el.set("source", track.get("source"))
            out.setdefault(frame, []).append(el)
    return out


def _is_color(text: str | None) -> bool:
    t = (text or "").strip()
    return len(t) == 7 and t.startswith("#")


def _provenance(el: ET.Element) -> Provenance:
    score = el.get("score")
    prov = imported(float(score) if score else None, "cvat")
    if el.get("source") == "auto":
        prov = Provenance("model", params={"format": "cvat"}, score=prov.score)
    return prov
