"""Pascal VOC XML: one file per image under Annotations/, 1-based inclusive integer pixel boxes.

A box (x0, y0, x1, y1) on pixel edges covers pixels x0 .. x1-1, written as xmin = x0 + 1 and
xmax = x1 (rounded to whole pixels); reading does the inverse. Untrusted XML is read with defusedxml.

The class list is ``labelmap.txt`` (``name:r,g,b::`` per line, as datumaro and CVAT read it; the
first line is ``background``). ``truncated``, ``difficult``, ``occluded`` and ``pose`` become
annotation attributes, ``<part>`` children (VOC person layout) ``parts``; a file without
``<size>`` takes the size from its image.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only to build trees we write ourselves
from pathlib import Path, PurePosixPath

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from vfmstudio.plugin_api import (
    Annotation,
    Box,
    ExchangeContext,
    FormatError,
    ImageLoadError,
    ImageRecord,
    Project,
    image_size,
    in_memory,
    safe_join,
)

from ._common import (
    check_regular_file,
    check_size,
    clipped,
    copy_image,
    drop_image_texts,
    export_names,
    image_dims,
    imported,
    iter_images,
    nearest_shape,
    read_text,
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
            shape = nearest_shape(ann, (Box,), ctx, "VOC")
            if shape is None:
                continue
            x0, y0, x1, y1 = (max(shape.x0, 0.0), max(shape.y0, 0.0), min(shape.x1, w), min(shape.y1, h))
            obj = ET.SubElement(root, "object")
            _sub(obj, "name", ann.label)
            _sub(obj, "pose", ann.attributes.get("pose", "Unspecified"))
            truncated = ann.attributes.get("truncated", int(x0 <= 0 or y0 <= 0 or x1 >= w or y1 >= h))
            _sub(obj, "truncated", int(bool(truncated)))
            _sub(obj, "difficult", int(bool(ann.attributes.get("difficult", 0))))
            if "occluded" in ann.attributes:
                _sub(obj, "occluded", int(bool(ann.attributes["occluded"])))
            if ann.score is not None:
                _sub(obj, "score", f"{ann.score:.6g}")
            box = ET.SubElement(obj, "bndbox")
            _sub(box, "xmin", int(round(x0)) + 1)
            _sub(box, "ymin", int(round(y0)) + 1)
            _sub(box, "xmax", max(int(round(x1)), int(round(x0)) + 1))
            _sub(box, "ymax", max(int(round(y1)), int(round(y0)) + 1))
            for part in ann.attributes.get("parts") or ():
                _write_part(obj, part)
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
    labelmap = out / "labelmap.txt"  # what datumaro and CVAT read: name:r,g,b:parts:actions
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    lines += [f"{c.name}:{','.join(map(str, c.rgb))}::" for c in project.labels.classes]
    labelmap.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    ctx.wrote(labelmap)
    drop_image_texts(project, ctx, "VOC")


def _write_part(obj: ET.Element, part) -> None:
    if not (isinstance(part, dict) and isinstance(part.get("bbox"), list) and len(part["bbox"]) == 4):
        return
    el = ET.SubElement(obj, "part")
    _sub(el, "name", part.get("name", "part"))
    box = ET.SubElement(el, "bndbox")
    for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), part["bbox"]):
        _sub(box, tag, int(round(float(v))))


def _read_labelmap(path: Path) -> list[tuple[str, str]]:
    """(name, '#rrggbb' or '') per class of a labelmap.txt, background left out."""
    out = []
    for line in read_text(path).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        name = name.strip()
        if not name or name == "background":
            continue
        rgb = rest.split(":", 1)[0].split(",")
        color = ""
        if len(rgb) == 3 and all(v.strip().isdigit() and int(v) < 256 for v in rgb):
            color = "#" + "".join(f"{int(v):02x}" for v in rgb)
        out.append((name, color))
    return out


def parse_xml(path: Path) -> ET.Element:
    check_regular_file(path)
    try:
        return SafeET.parse(
            path, forbid_dtd=True
        ).getroot()  # no dataset needs a DTD; external ones are never read
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
    labelmap, labels_txt = base / "labelmap.txt", base / "labels.txt"
    if labelmap.exists():
        for name, color in _read_labelmap(labelmap):
            labels.ensure_class(name, color)
    elif labels_txt.exists():
        for line in read_text(labels_txt).splitlines():
            if line.strip():
                labels.ensure_class(line.strip())
    for i, xml_path in enumerate(xmls):
        ctx.progress(i / max(len(xmls), 1), f"VOC {xml_path.name}")
        ctx.file = xml_path
        try:
            _read_one(project, xml_path, root, ctx)
        except FormatError as exc:
            if source.is_file():
                raise
            ctx.dropped("file", "unreadable", detail=str(exc))  # one bad file of many: the rest imports
    ctx.file = None
    return project


def _read_one(project: Project, xml_path: Path, root: Path, ctx: ExchangeContext) -> None:
    labels = project.labels
    doc = parse_xml(xml_path)
    where = str(xml_path)
    filename = (doc.findtext("filename") or "").strip()
    if not filename:
        raise FormatError(f"{where}: missing <filename>")
    candidates = [f"JPEGImages/{filename}", filename]
    rel = next(
        (c for c in candidates if safe_join(root, c, what=f"{where}: filename").exists()), candidates[0]
    )
    path = safe_join(root, rel, what=f"{where}: filename")
    size = doc.find("size")
    if size is None and path.exists():  # some tools leave <size> out: the image knows
        try:
            w, h = image_size(path)
        except ImageLoadError as exc:
            raise FormatError(f"{where}: no <size> and the image cannot be read ({exc})") from None
        ctx.warn("no <size>, read from the image", file=xml_path)
    else:
        w, h = _int(size, "width", where), _int(size, "height", where)
    check_size(w, h, where)
    key = path.relative_to(root.resolve()).as_posix()
    project.images.setdefault(key, ImageRecord(key, key, "", w, h))
    for n, obj in enumerate(doc.findall("object"), 1):
        name = (obj.findtext("name") or "").strip()
        try:
            if not name:
                raise FormatError(f"<object> {n} has no <name>")
            box = obj.find("bndbox")
            xmin, ymin = _int(box, "xmin", where), _int(box, "ymin", where)
            xmax, ymax = _int(box, "xmax", where), _int(box, "ymax", where)
            if xmax < xmin or ymax < ymin:
                raise FormatError(f"box of {name!r} has xmax < xmin or ymax < ymin")
        except FormatError as exc:
            ctx.dropped("box", "invalid", file=xml_path, detail=str(exc).removeprefix(f"{where}: "))
            continue
        score = obj.findtext("score")
        try:
            score_value = float(score) if score else None
        except ValueError:
            score_value = None
        labels.add(
            Annotation(
                key,
                name,
                clipped(Box(xmin - 1, ymin - 1, xmax, ymax), w, h, ctx, xml_path),
                provenance=imported(score_value, "voc"),
                attributes=_object_attributes(obj, where),
            )
        )


def _object_attributes(obj: ET.Element, where: str) -> dict:
    attrs: dict = {}
    for tag in ("difficult", "truncated", "occluded"):
        if (obj.findtext(tag) or "0").strip() == "1":
            attrs[tag] = 1
    pose = (obj.findtext("pose") or "").strip()
    if pose and pose != "Unspecified":
        attrs["pose"] = pose
    parts = []
    for part in obj.findall("part"):
        box = part.find("bndbox")
        try:
            bbox = [_int(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax")]
        except FormatError:
            continue
        parts.append({"name": (part.findtext("name") or "part").strip(), "bbox": bbox})
    if parts:
        attrs["parts"] = parts
    return attrs
