"""YOLO detect and segment: labels/<split>/<name>.txt next to images/<split>/<name>, and data.yaml.

Detect rows are ``cls cx cy w h``; segment rows ``cls x1 y1 ... xn yn`` (one polygon per row, at
least 3 points); all coordinates normalised to [0, 1] by the image size, classes 0-based.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import numpy as np
import yaml

from vfmstudio.core.annotations import MAX_CLASSES, Annotation, Box, Points, Polygon, PolygonPart
from vfmstudio.core.exchange import ExchangeContext, FormatError, safe_join
from vfmstudio.core.project import Project, in_memory
from vfmstudio.core.yaml_safe import YAMLRefused, load_yaml

from ._common import (
    copy_image,
    export_names,
    find_images,
    image_dims,
    image_record,
    imported,
    iter_images,
    read_text,
    shape_box,
    shape_parts,
)

DIGITS = 6


def _split_of(key: str, val_fraction: float, seed: int) -> str:
    if val_fraction <= 0:
        return "train"
    h = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    return "val" if h < val_fraction else "train"


def _fmt(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.{DIGITS}f}"


def export_detect(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    _export(project, out, params, ctx, segment=False)


def export_segment(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    _export(project, out, params, ctx, segment=True)


def _export(project: Project, out: Path, params: dict, ctx: ExchangeContext, *, segment: bool) -> None:
    labels = project.labels
    cls_index = {c.name: i for i, c in enumerate(labels.classes)}
    names = export_names(project)
    splits_used = set()
    for _, rec in iter_images(project, ctx, "YOLO"):
        h, w = image_dims(project, rec)
        split = _split_of(rec.key, params["val_fraction"], params["seed"])
        splits_used.add(split)
        name = PurePosixPath(names[rec.key])
        if params["copy_images"]:
            copy_image(project, rec, out / "images" / split / name, ctx)
        rows = []
        for ann in labels.annotations(rec.key):
            c = cls_index[ann.label]
            if isinstance(ann.shape, Points):
                ctx.warn("YOLO: point annotations are not exported")
                continue
            if segment:
                parts = shape_parts(ann.shape, params["tolerance"])
                if any(holes for _, holes in parts):
                    ctx.warn("YOLO segment: holes are dropped (one outline per row)")
                for ext, _ in parts:
                    if len(ext) < 3:
                        continue
                    xy = np.asarray(ext, dtype=np.float64) / (w, h)
                    rows.append(" ".join([str(c), *(_fmt(v) for v in xy.ravel())]))
            else:
                x0, y0, x1, y1 = shape_box(ann.shape)
                rows.append(" ".join([str(c), _fmt((x0 + x1) / 2 / w), _fmt((y0 + y1) / 2 / h),
                                      _fmt((x1 - x0) / w), _fmt((y1 - y0) / h)]))
        txt = out / "labels" / split / name.with_suffix(".txt")
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
        ctx.wrote(txt)
    data = {"path": str(out.resolve()), "train": "images/train",
            "val": "images/val" if "val" in splits_used else "images/train",
            "names": {i: c.name for i, c in enumerate(labels.classes)}}
    yml = out / "data.yaml"
    yml.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    ctx.wrote(yml)


def validate_line(line: str, n_classes: int, *, segment: bool | None = None) -> str | None:
    """Why a label row is invalid (None when valid). ``segment`` None accepts either row kind."""
    parts = line.split()
    if not parts:
        return "empty row"
    try:
        c = int(parts[0])
        values = [float(v) for v in parts[1:]]
    except ValueError:
        return "non-numeric value"
    if not 0 <= c < n_classes:
        return f"class {c} outside 0..{n_classes - 1}"
    if any(not 0.0 <= v <= 1.0 for v in values):
        return "coordinate outside [0, 1]"
    is_box = len(values) == 4
    if segment is False and not is_box:
        return f"detect rows have 4 values after the class, got {len(values)}"
    if not is_box or segment:
        if len(values) % 2 or len(values) < 6:
            return f"segment rows need >= 3 x,y pairs, got {len(values)} values"
    elif values[2] < 0 or values[3] < 0:
        return "negative box size"
    return None


def import_(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    yml = source if source.is_file() else source / "data.yaml"
    names: list[str] = []
    root = source if source.is_dir() else source.parent
    if yml.exists():
        try:
            data = load_yaml(read_text(yml)) or {}  # aliases bounded: no alias bomb
        except (OSError, YAMLRefused) as exc:
            raise FormatError(f"{yml}: cannot read data.yaml ({' '.join(str(exc).split())})") from None
        raw = data.get("names", [])
        names = [str(raw[k]) for k in sorted(raw)] if isinstance(raw, dict) else [str(n) for n in raw]
        root = yml.parent
    if params.get("image_root"):
        root = Path(params["image_root"])
    images_dir = safe_join(root, "images", what="images folder")
    if not images_dir.is_dir():
        raise FormatError(f"{root}: no images/ folder")
    project = in_memory(root)
    labels = project.labels
    for n in names:
        labels.ensure_class(n)
    files = find_images(images_dir)
    for i, img in enumerate(files):
        ctx.progress(i / max(len(files), 1), f"YOLO {img.name}")
        rel = img.resolve().relative_to(root.resolve()).as_posix()
        rec = image_record(root, rel)
        project.images[rec.key] = rec
        label_rel = "labels/" + rel.split("/", 1)[1]
        txt = safe_join(root, str(PurePosixPath(label_rel).with_suffix(".txt")), what="label file")
        if not txt.exists():
            continue
        for lineno, line in enumerate(read_text(txt).splitlines(), 1):
            if not line.strip():
                continue
            # Without data.yaml the classes are unnamed: any index is accepted and named by its number.
            why = validate_line(line, len(names) if names else MAX_CLASSES)
            if why:
                raise FormatError(f"{txt}: line {lineno}: {why}")
            parts = line.split()
            c = int(parts[0])
            while len(labels.classes) <= c:
                labels.ensure_class(str(len(labels.classes)))
            label = labels.classes[c].name
            v = np.asarray(parts[1:], dtype=np.float64)
            if v.size == 4:
                cx, cy, bw, bh = v * (rec.width, rec.height, rec.width, rec.height)
                shape = Box(cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
            else:
                shape = Polygon((PolygonPart(v.reshape(-1, 2) * (rec.width, rec.height)),))
            labels.add(Annotation(rec.key, label, shape, provenance=imported(None, "yolo")))
    return project
