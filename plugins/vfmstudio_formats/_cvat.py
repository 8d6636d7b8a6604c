"""CVAT for images 1.1 XML: ``<image>`` elements holding boxes, polygons, points, tags and masks.

Masks are CVAT's tight-box RLE: ``rle`` lists alternating run lengths (background first) over the
``width`` x ``height`` crop at ``left``/``top``, row by row. Model output is marked
``source="auto"``. Multi-part polygons share a ``group_id``; polygons with holes are written as
masks. Untrusted XML is read with defusedxml.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only to build trees we write ourselves
from pathlib import Path

import numpy as np

from vfmstudio.core import geometry
from vfmstudio.core.annotations import Annotation, Box, Mask, Points, Polygon, PolygonPart, Provenance
from vfmstudio.core.exchange import ExchangeContext, FormatError, safe_join
from vfmstudio.core.project import ImageRecord, Project, in_memory

from ._common import copy_image, export_names, image_dims, image_record, imported, iter_images
from ._voc import parse_xml


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
    for c in labels.classes:
        lab = ET.SubElement(labels_el, "label")
        ET.SubElement(lab, "name").text = c.name
        ET.SubElement(lab, "color").text = c.color
        ET.SubElement(lab, "type").text = "any"
        ET.SubElement(lab, "attributes")
    declared = set(labels.class_names)
    for tag in dict.fromkeys(t for tags in labels.tags.values() for t in tags):
        if tag not in declared:  # CVAT needs every tag's label declared
            lab = ET.SubElement(labels_el, "label")
            ET.SubElement(lab, "name").text = tag
            ET.SubElement(lab, "type").text = "tag"
    group = 0
    for i, rec in iter_images(project, ctx, "CVAT"):
        h, w = image_dims(project, rec)
        if params["copy_images"]:
            copy_image(project, rec, out / "images" / names[rec.key], ctx)
        im = ET.SubElement(root, "image", id=str(i), name=names[rec.key], width=str(w), height=str(h))
        for ann in labels.annotations(rec.key):
            common = {"label": ann.label, "source": "manual" if ann.provenance.source == "manual" else "auto",
                      "occluded": "0", "z_order": "0"}
            if ann.score is not None:
                common["score"] = f"{ann.score:.6g}"
            s = ann.shape
            if isinstance(s, Box):
                ET.SubElement(im, "box", **common, xtl=f"{s.x0:.2f}", ytl=f"{s.y0:.2f}", xbr=f"{s.x1:.2f}",
                              ybr=f"{s.y1:.2f}")
            elif isinstance(s, Points):
                ET.SubElement(im, "points", **common, points=_pts(s.points))
            elif isinstance(s, Polygon) and not s.has_holes:
                extra = {}
                if len(s.parts) > 1:
                    group += 1
                    extra["group_id"] = str(group)
                for part in s.parts:
                    ET.SubElement(im, "polygon", **common, **extra, points=_pts(part.exterior))
            else:
                mask = s.to_mask(h, w)
                box = geometry.mask_bbox(mask)
                if box is None:
                    continue
                x0, y0, x1, y1 = box
                counts = mask_to_cvat_rle(mask[y0:y1, x0:x1])
                ET.SubElement(im, "mask", **common, rle=", ".join(map(str, counts)), left=str(x0), top=str(y0),
                              width=str(x1 - x0), height=str(y1 - y0))
        for tag in labels.tags.get(rec.key, ()):
            ET.SubElement(im, "tag", label=tag, source="manual")
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
        return np.asarray([[float(v) for v in p.split(",")] for p in text.split(";") if p.strip()],
                          dtype=np.float64).reshape(-1, 2)
    except ValueError:
        raise FormatError(f"{where}: invalid points {text[:40]!r}") from None


def import_(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    xml_path = source if source.is_file() else source / "annotations.xml"
    if not xml_path.exists():
        raise FormatError(f"{source}: no annotations.xml")
    base = xml_path.parent
    root = Path(params["image_root"]) if params.get("image_root") else (
        base / "images" if (base / "images").is_dir() else base)
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
            labels.ensure_class(name, (lab.findtext("color") or "").strip() if _is_color(lab.findtext("color")) else "")
    images = doc.findall("image")
    for n, im in enumerate(images):
        ctx.progress(n / max(len(images), 1), f"CVAT {im.get('name')}")
        where = f"{xml_path.name}: image {im.get('name')!r}"
        w, h = (int(v) for v in _floats(im, "width", "height", where=where))
        rec = image_record(root, str(im.get("name") or ""), width=w, height=h, what=f"{xml_path.name}: image name")
        project.images.setdefault(rec.key, ImageRecord(rec.key, rec.path, "", w, h))
        items: dict[tuple, tuple[str, object, Provenance, dict]] = {}  # annotations in document order
        grouped: dict[tuple, list[np.ndarray]] = {}
        for k, el in enumerate(im):
            label = el.get("label")
            if not label:
                raise FormatError(f"{where}: <{el.tag}> without a label")
            prov = _provenance(el)
            if el.tag == "box":
                x0, y0, x1, y1 = _floats(el, "xtl", "ytl", "xbr", "ybr", where=where)
                items[(k,)] = (label, Box(x0, y0, x1, y1), prov, {})
            elif el.tag == "polygon":
                pts = _points(el.get("points", ""), where)
                if len(pts) < 3:
                    raise FormatError(f"{where}: a polygon needs at least 3 points")
                gid = el.get("group_id")
                slot = ("group", gid, label) if gid and gid != "0" else (k,)
                if slot not in grouped:
                    grouped[slot] = []
                    items[slot] = (label, None, prov, {})
                grouped[slot].append(pts)
            elif el.tag in ("points", "polyline"):
                items[(k,)] = (label, Points(_points(el.get("points", ""), where)), prov,
                               {"cvat_shape": el.tag} if el.tag != "points" else {})
            elif el.tag == "tag":
                labels.set_tags(rec.key, (*labels.tags.get(rec.key, ()), label))
            elif el.tag == "mask":
                left, top, mw, mh = (int(v) for v in _floats(el, "left", "top", "width", "height", where=where))
                if left < 0 or top < 0 or mw < 0 or mh < 0 or left + mw > w or top + mh > h:
                    raise FormatError(f"{where}: mask box {left},{top} {mw}x{mh} lies outside the image")
                try:
                    crop = cvat_rle_to_mask([int(c) for c in el.get("rle", "").split(",") if c.strip()], mw, mh)
                except ValueError as exc:
                    raise FormatError(f"{where}: invalid mask rle ({exc})") from None
                full = np.zeros((h, w), dtype=bool)
                full[top:top + mh, left:left + mw] = crop[:max(0, h - top), :max(0, w - left)]
                items[(k,)] = (label, Mask.from_array(full), prov, {})
            else:
                ctx.warn(f"CVAT: <{el.tag}> elements are not imported")
        for slot, (label, shape, prov, attrs) in items.items():
            if shape is None:  # polygons sharing a group_id are one multi-part polygon
                shape = Polygon(tuple(PolygonPart(r) for r in grouped[slot]))
            labels.add(Annotation(rec.key, label, shape, provenance=prov, attributes=attrs))
    return project


def _is_color(text: str | None) -> bool:
    t = (text or "").strip()
    return len(t) == 7 and t.startswith("#")


def _provenance(el: ET.Element) -> Provenance:
    score = el.get("score")
    prov = imported(float(score) if score else None, "cvat")
    if el.get("source") == "auto":
        prov = Provenance("model", params={"format": "cvat"}, score=prov.score)
    return prov
