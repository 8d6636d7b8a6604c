"""Pascal VOC XML: one file per image under Annotations/, 1-based inclusive integer pixel boxes.

A box (x0, y0, x1, y1) on pixel edges covers pixels x0 .. x1-1, written as xmin = x0 + 1 and
xmax = x1 (rounded to whole pixels); reading does the inverse. Untrusted XML is read with defusedxml.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only to build trees we write ourselves
from pathlib import Path, PurePosixPath

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from vfmstudio.core.annotations import Annotation, Box, Points
from vfmstudio.core.exchange import ExchangeContext, FormatError, safe_join
from vfmstudio.core.project import ImageRecord, Project, in_memory

from ._common import (
    check_regular_file,
    check_size,
    copy_image,
    export_names,
    image_dims,
    imported,
    iter_images,
    read_text,
    shape_box,
)


def _sub(parent: ET.Element, tag: str, text: object) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = str(text)
    return el


def export(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    names = export_names(project, flat=True)
    listed = []
    for _, rec in iter_images(project, ctx, "VOC"):
        h, w = image_dims(project, rec)
        name = names[rec.key]
        if params["copy_images"]:
            copy_image(project, rec, out / "JPEGImages" / name, ctx)
        root = ET.Element("annotation")
        _sub(root, "folder", "JPEGImages")
        _sub(root, "filename", name)
        _sub(root, "path", rec.path)
        src = ET.SubElement(root, "source")
        _sub(src, "database", "vfmstudio")
        size = ET.SubElement(root, "size")
        _sub(size, "width", w)
        _sub(size, "height", h)
        _sub(size, "depth", 3)
        _sub(root, "segmented", 0)
        for ann in project.labels.annotations(rec.key):
            if isinstance(ann.shape, Points):
                ctx.warn("VOC: point annotations are not exported")
                continue
            x0, y0, x1, y1 = shape_box(ann.shape)
            obj = ET.SubElement(root, "object")
            _sub(obj, "name", ann.label)
            _sub(obj, "pose", "Unspecified")
            _sub(obj, "truncated", int(x0 <= 0 or y0 <= 0 or x1 >= w or y1 >= h))
            _sub(obj, "difficult", int(bool(ann.attributes.get("difficult", 0))))
            if ann.score is not None:
                _sub(obj, "score", f"{ann.score:.6g}")
            box = ET.SubElement(obj, "bndbox")
            _sub(box, "xmin", int(round(x0)) + 1)
            _sub(box, "ymin", int(round(y0)) + 1)
            _sub(box, "xmax", max(int(round(x1)), int(round(x0)) + 1))
            _sub(box, "ymax", max(int(round(y1)), int(round(y0)) + 1))
        ET.indent(root)
        xml_path = out / "Annotations" / PurePosixPath(name).with_suffix(".xml")
        xml_path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(root).write(xml_path, encoding="utf-8", xml_declaration=True)
        ctx.wrote(xml_path)
        listed.append(PurePosixPath(name).stem)
    sets = out / "ImageSets" / "Main" / "default.txt"
    sets.parent.mkdir(parents=True, exist_ok=True)
    sets.write_text("".join(n + "\n" for n in listed), encoding="utf-8")
    ctx.wrote(sets)
    labels_txt = out / "labels.txt"
    labels_txt.write_text("".join(c.name + "\n" for c in project.labels.classes), encoding="utf-8")
    ctx.wrote(labels_txt)


def parse_xml(path: Path) -> ET.Element:
    check_regular_file(path)
    try:
        return SafeET.parse(path, forbid_dtd=True).getroot()  # no dataset needs a DTD; external ones are never read
    except DefusedXmlException as exc:
        raise FormatError(f"{path}: refused unsafe XML ({type(exc).__name__})") from None
    except (ET.ParseError, OSError) as exc:
        raise FormatError(f"{path}: not readable XML ({exc})") from None


def _int(el: ET.Element | None, tag: str, where: str) -> int:
    child = None if el is None else el.find(tag)
    try:
        return int(round(float((child.text or "").strip())))  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        raise FormatError(f"{where}: missing or invalid <{tag}>") from None


def import_(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    if source.is_file():
        xmls, base = [source], source.parent.parent if source.parent.name == "Annotations" else source.parent
    else:
        folder = source / "Annotations" if (source / "Annotations").is_dir() else source
        xmls, base = sorted(folder.glob("*.xml")), source
    root = Path(params["image_root"]) if params.get("image_root") else base
    project = in_memory(root)
    labels = project.labels
    labels_txt = base / "labels.txt"
    if labels_txt.exists():
        for line in read_text(labels_txt).splitlines():
            if line.strip():
                labels.ensure_class(line.strip())
    for i, xml_path in enumerate(xmls):
        ctx.progress(i / max(len(xmls), 1), f"VOC {xml_path.name}")
        doc = parse_xml(xml_path)
        where = str(xml_path)
        filename = (doc.findtext("filename") or "").strip()
        if not filename:
            raise FormatError(f"{where}: missing <filename>")
        size = doc.find("size")
        w, h = _int(size, "width", where), _int(size, "height", where)
        check_size(w, h, where)
        candidates = [f"JPEGImages/{filename}", filename]
        rel = next((c for c in candidates if safe_join(root, c, what=f"{where}: filename").exists()), candidates[0])
        path = safe_join(root, rel, what=f"{where}: filename")
        key = path.relative_to(root.resolve()).as_posix()
        project.images.setdefault(key, ImageRecord(key, key, "", w, h))
        for obj in doc.findall("object"):
            name = (obj.findtext("name") or "").strip()
            if not name:
                raise FormatError(f"{where}: an <object> without <name>")
            box = obj.find("bndbox")
            xmin, ymin = _int(box, "xmin", where), _int(box, "ymin", where)
            xmax, ymax = _int(box, "xmax", where), _int(box, "ymax", where)
            if xmax < xmin or ymax < ymin:
                raise FormatError(f"{where}: box of {name!r} has xmax < xmin or ymax < ymin")
            score = obj.findtext("score")
            attrs = {"difficult": 1} if (obj.findtext("difficult") or "0").strip() == "1" else {}
            labels.add(Annotation(key, name, Box(xmin - 1, ymin - 1, xmax, ymax),
                                  provenance=imported(float(score) if score else None, "voc"), attributes=attrs))
    return project
