"""YOLO detect, segment, OBB and pose in the layout Ultralytics reads, and the layouts peers write.

Export: ``images/<split>/<name>`` and ``labels/<split>/<name>.txt`` with the same relative name
(Ultralytics finds a label by replacing the last ``/images/`` of the image path with ``/labels/``,
so no folder named ``images`` is nested below the split), and ``data.yaml``. Rows, normalised to
[0, 1] by the image size, classes 0-based:

- detect ``cls cx cy w h``; segment ``cls x1 y1 ... xn yn`` (one outline per row);
- OBB ``cls x1 y1 x2 y2 x3 y3 x4 y4`` (the 4 corners); pose ``cls cx cy w h`` then ``x y v`` per
  keypoint (``kpt_shape: [K, 3]`` in data.yaml).

Import reads ``data.yaml`` (``path``, ``train``/``val``/``test`` as folders or list files,
``names`` as list or mapping, ``kpt_shape``), the Roboflow layout (``train/images``,
``valid/images``), the Darknet layout (``obj.data``, ``obj.names``, ``train.txt``, labels beside
the images) and class names from ``classes.txt`` or ``obj.names``. A bad row is skipped and a
coordinate outside [0, 1] clipped, each with a warning naming the file and line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import numpy as np
import yaml

from vfmstudio.plugin_api import (
    IMAGE_EXTENSIONS,
    Annotation,
    Box,
    ExchangeContext,
    FormatError,
    Keypoints,
    Polygon,
    PolygonPart,
    Project,
    RotatedBox,
    Skeleton,
    YAMLRefused,
    in_memory,
    load_yaml,
    safe_join,
    shape_kind,
)

from ._common import (
    copy_image,
    drop_image_texts,
    export_names,
    find_images,
    image_dims,
    image_record,
    imported,
    iter_images,
    nearest_shape,
    read_text,
    shape_box,
    shape_parts,
)

DIGITS = 6
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _split_of(key: str, val_fraction: float, seed: int) -> str:
    if val_fraction <= 0:
        return "train"
    h = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    return "val" if h < val_fraction else "train"


def _fmt(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.{DIGITS}f}"


def label_path_for(image_path: str) -> str:
    """Ultralytics' rule (``img2label_paths``): the last ``/images/`` becomes ``/labels/``, the
    suffix ``.txt``."""
    rooted = image_path if image_path.startswith("/") else "/" + image_path  # relative paths: from the root
    head, sep, tail = rooted.rpartition("/images/")
    path = f"{head}/labels/{tail}" if sep else rooted
    path = path if image_path.startswith("/") else path[1:]
    return str(PurePosixPath(path).with_suffix(".txt"))


# ------------------------------------------------------------------------------------ export


def export_detect(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    _export(project, out, params, ctx, "detect")


def export_segment(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    _export(project, out, params, ctx, "segment")


def export_obb(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    _export(project, out, params, ctx, "obb")


def export_pose(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    _export(project, out, params, ctx, "pose")


def _clipped_box(shape, w: int, h: int) -> tuple[float, float, float, float]:
    """The box inside the image (a box reaching outside keeps its visible part, it does not move)."""
    x0, y0, x1, y1 = shape_box(shape)
    return (min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h))


def _box_row(c: int, box: tuple[float, float, float, float], w: int, h: int) -> list[str]:
    x0, y0, x1, y1 = box
    return [
        str(c),
        _fmt((x0 + x1) / 2 / w),
        _fmt((y0 + y1) / 2 / h),
        _fmt((x1 - x0) / w),
        _fmt((y1 - y0) / h),
    ]


def _rows(
    ann: Annotation, c: int, w: int, h: int, task: str, params: dict, kpt: int, ctx: ExchangeContext
) -> list[str]:
    scale = np.array([w, h], dtype=np.float64)
    if task == "detect":
        shape = nearest_shape(ann, (Box,), ctx, "YOLO detect")
        return [] if shape is None else [" ".join(_box_row(c, _clipped_box(shape, w, h), w, h))]
    if task == "obb":
        shape = nearest_shape(ann, (RotatedBox,), ctx, "YOLO OBB")
        if shape is None:
            return []
        if not isinstance(shape, RotatedBox):  # a box through its bounds, unturned
            x0, y0, x1, y1 = shape.bbox()
            shape = RotatedBox((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, 0.0)
        xy = np.asarray(shape.corners()) / scale
        return [" ".join([str(c), *(_fmt(v) for v in xy.ravel())])]
    if task == "pose":
        if not isinstance(ann.shape, Keypoints) or len(ann.shape.points) != kpt:
            why = (
                "YOLO pose rows hold keypoints"
                if not isinstance(ann.shape, Keypoints)
                else f"YOLO pose needs {kpt} keypoints per object (kpt_shape)"
            )
            ctx.dropped(shape_kind(ann.shape), why)
            return []
        s = ann.shape
        box = ann.attributes.get("bbox")
        bounds = tuple(float(v) for v in box) if isinstance(box, list | tuple) and len(box) == 4 else s.bbox()
        row = _box_row(c, _clipped_box(Box(*bounds), w, h), w, h)
        for (x, y), v in zip(s.points, s.visibility):
            row += ["0", "0", "0"] if v == 0 else [_fmt(x / w), _fmt(y / h), str(v)]
        return [" ".join(row)]
    shape = ann.shape  # segment
    if shape.kind == "mask":
        parts = shape_parts(shape, params["tolerance"])
        ctx.converted("mask", "polygon", "YOLO segment rows are outlines")
    else:
        shape = nearest_shape(ann, (Polygon,), ctx, "YOLO segment")
        if shape is None:
            return []
        parts = shape_parts(shape, 0.0)
    holes = sum(len(hs) for _, hs in parts)
    if holes:
        ctx.dropped("hole", "YOLO segment rows are one outline each", holes)
    rows = []
    for ext, _ in parts:
        if len(ext) >= 3:
            xy = np.asarray(ext, dtype=np.float64) / scale
            rows.append(" ".join([str(c), *(_fmt(v) for v in xy.ravel())]))
    return rows


def _export(project: Project, out: Path, params: dict, ctx: ExchangeContext, task: str) -> None:
    labels = project.labels
    cls_index = {c.name: i for i, c in enumerate(labels.classes)}
    names = export_names(project, drop_dirs=frozenset({"images"}))
    kpt = 0
    if task == "pose":
        sizes = {len(a.shape.points) for a in labels.annotations() if isinstance(a.shape, Keypoints)}
        kpt = max(sizes, default=0)
        if len(sizes) > 1:
            ctx.warn(f"YOLO pose: objects have {sorted(sizes)} keypoints; only those with {kpt} are written")
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
            rows += _rows(ann, cls_index[ann.label], w, h, task, params, kpt, ctx)
        txt = out / label_path_for(f"images/{split}/{name}")
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
        ctx.wrote(txt)
    if not params["copy_images"]:
        ctx.warn("images not copied: data.yaml names images/<split> folders that hold no images")
    drop_image_texts(project, ctx, "YOLO")
    data: dict = {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val" if "val" in splits_used else "images/train",
        "names": {i: c.name for i, c in enumerate(labels.classes)},
    }
    if task == "pose":
        data["kpt_shape"] = [kpt, 3]
        skeleton = next(iter(labels.skeletons.values()), None)
        if skeleton is not None and len(skeleton.names) == kpt:
            data["kpt_names"] = {0: list(skeleton.names)}
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


# ------------------------------------------------------------------------------------ import


def import_(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    return _import(source, params, ctx, obb=False)


def import_obb(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    return _import(source, params, ctx, obb=True)


def _load_yaml(path: Path) -> dict:
    try:
        data = load_yaml(read_text(path)) or {}  # aliases bounded: no alias bomb
    except (OSError, UnicodeDecodeError, YAMLRefused) as exc:
        raise FormatError(f"{path}: cannot read ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: not a YOLO data file (expected keys such as names, train, val)")
    return data


def _darknet_data(path: Path) -> dict:
    """``obj.data``: ``key = value`` lines (classes, train, valid, names, backup)."""
    data: dict = {}
    for line in read_text(path).splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            data[key.strip()] = value.strip()
    return {
        "train": data.get("train"),
        "val": data.get("valid"),
        "test": data.get("test"),
        "names_file": data.get("names"),
    }


def _names_list(raw, where: Path) -> list[str]:
    if isinstance(raw, dict):
        try:
            keys = sorted(int(k) for k in raw)
        except (TypeError, ValueError):
            raise FormatError(f"{where}: names must map class numbers to names") from None
        if keys != list(range(len(keys))):
            raise FormatError(f"{where}: class numbers in names must run 0..{len(keys) - 1}")
        by_int = {int(k): v for k, v in raw.items()}
        return [str(by_int[k]) for k in keys]
    if isinstance(raw, list):
        return [str(n) for n in raw]
    raise FormatError(f"{where}: names must be a list or a mapping")


def _within(root: Path, rel: str, what: str) -> Path | None:
    """``rel`` inside ``root``; Ultralytics also accepts a leading '../' meaning the root itself
    (Roboflow writes ``../train/images``) and Darknet paths start with the ``data/`` folder."""
    rel = rel.replace("\\", "/").strip()
    candidates = [rel]
    if rel.startswith("../"):
        candidates.append(rel[3:])
    if rel.startswith("./"):
        candidates.append(rel[2:])
    if rel.startswith("data/"):
        candidates.append(rel[5:])
    for c in candidates:
        try:
            p = safe_join(root, c, what=what)
        except FormatError:
            continue
        if p.exists():
            return p
    return None


def _find_config(source: Path) -> Path | None:
    if source.is_file():
        return source
    for name in ("data.yaml", "data.yml", "dataset.yaml", "obj.data"):
        if (source / name).is_file():
            return source / name
    found = sorted(source.glob("*.yaml")) + sorted(source.glob("*.yml"))
    return found[0] if len(found) == 1 else None


def _images_of(entry: Path, root: Path, ctx: ExchangeContext) -> list[Path]:
    if entry.is_dir():
        return find_images(entry)
    images = []  # a list file: one image path per line, relative to the dataset folder
    for n, line in enumerate(read_text(entry).splitlines(), 1):
        if not line.strip():
            continue
        p = _within(root, line.strip(), f"{entry.name}: line {n}")
        if p is None or p.suffix.lower() not in IMAGE_EXTENSIONS:
            ctx.dropped(
                "image", "listed but missing", file=entry, line=n, detail=f"{line.strip()!r} not found"
            )
            continue
        images.append(p)
    return images


def _sources(root: Path, config: dict, ctx: ExchangeContext, where: Path | None) -> list[tuple[str, Path]]:
    """(split, folder or list file) pairs to read, from the config or the folder layout."""
    out: list[tuple[str, Path]] = []
    for split in SPLITS:
        value = config.get(split)
        for rel in [value] if isinstance(value, str) else (value or []):
            entry = _within(root, str(rel), f"{where.name if where else root}: {split}")
            if entry is None:
                ctx.warn(f"{split} path {rel!r} not found inside {root}", file=where)
            elif (split, entry) not in out:
                out.append((split, entry))
    if out:
        return out
    for name, split in _SPLIT_ALIASES.items():  # Roboflow: train/images, valid/images, test/images
        if (root / name / "images").is_dir():
            out.append((split, root / name / "images"))
    if out:
        return out
    if (root / "images").is_dir():
        return [("train", root / "images")]
    darknet = [p for p in sorted(root.glob("obj_*_data")) if p.is_dir()]
    if darknet:
        return [("train", p) for p in darknet]
    raise FormatError(f"{root}: no images/ folder, no data.yaml and no Roboflow (train/images) layout")


def _class_file(root: Path, extra: str | None) -> Path | None:
    for rel in ([extra] if extra else []) + ["classes.txt", "obj.names", "labels/classes.txt"]:
        p = _within(root, rel, "class names file")
        if p is not None and p.is_file():
            return p
    return None


def _import(source: Path, params: dict, ctx: ExchangeContext, *, obb: bool) -> Project:
    config_path = _find_config(source)
    root = (config_path.parent if config_path else source).resolve()
    config: dict = {}
    if config_path is not None:
        ctx.file = config_path
        if config_path.suffix == ".data":
            config = _darknet_data(config_path)
        else:
            config = _load_yaml(config_path)
            base = config.get("path")
            if isinstance(base, str) and base.strip():
                p = Path(base)
                if not p.is_absolute():
                    p = root / p
                if p.resolve() == root or root in p.resolve().parents:
                    root = p.resolve()
                else:  # written on another machine, or pointing elsewhere: the folder of the file
                    ctx.warn(
                        f"path {base!r} lies outside the dataset folder; reading relative to {root}",
                        file=config_path,
                    )
    if params.get("image_root"):
        root = Path(params["image_root"]).resolve()
    names: list[str] = []
    if "names" in config:
        names = _names_list(config["names"], config_path or root)
    else:
        class_file = _class_file(root, config.get("names_file"))
        if class_file is not None:
            names = [line.strip() for line in read_text(class_file).splitlines() if line.strip()]
    kpt_shape = config.get("kpt_shape")
    kpt = (
        (int(kpt_shape[0]), int(kpt_shape[1]))
        if isinstance(kpt_shape, list) and len(kpt_shape) == 2
        else None
    )
    if kpt is not None and (kpt[0] <= 0 or kpt[1] not in (2, 3)):
        raise FormatError(f"{config_path}: kpt_shape must be [K, 2] or [K, 3], got {kpt_shape}")
    project = in_memory(root)
    labels = project.labels
    for n in names:
        labels.ensure_class(n)
    kpt_names = _kpt_names(config, kpt)
    if kpt is not None and names:
        for n in names:
            labels.skeletons.setdefault(n, Skeleton(kpt_names))
    files: list[tuple[str, Path]] = []
    for split, entry in _sources(root, config, ctx, config_path):
        files += [(split, p) for p in _images_of(entry, root, ctx)]
    seen = set()
    for i, (split, img) in enumerate(files):
        ctx.progress(i / max(len(files), 1), f"YOLO {img.name}")
        rel = img.resolve().relative_to(root).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        rec = image_record(root, rel)
        project.images[rec.key] = rec
        labels.extras.setdefault(rec.key, {})["yolo"] = {"split": split}
        txt = _label_file(root, rel)
        if txt is None:
            continue
        ctx.file = txt
        for lineno, line in enumerate(read_text(txt).splitlines(), 1):
            if line.strip():
                ann = _row(line, rec, labels, names, kpt, kpt_names, obb, ctx, txt, lineno)
                if ann is not None:
                    labels.add(ann)
    ctx.file = None
    return project


def _kpt_names(config: dict, kpt: tuple[int, int] | None) -> tuple[str, ...]:
    if kpt is None:
        return ()
    raw = config.get("kpt_names")
    if isinstance(raw, dict) and raw:
        raw = next(iter(raw.values()))
    if isinstance(raw, list) and len(raw) == kpt[0]:
        return tuple(str(n) for n in raw)
    return tuple(str(i) for i in range(kpt[0]))


def _label_file(root: Path, rel: str) -> Path | None:
    for candidate in (
        label_path_for(rel),
        str(PurePosixPath(rel).with_suffix(".txt")),
    ):  # Ultralytics, Darknet
        p = safe_join(root, candidate, what="label file")
        if p.is_file():
            return p
    return None


def _row(
    line: str,
    rec,
    labels,
    names: list[str],
    kpt,
    kpt_names,
    obb: bool,
    ctx: ExchangeContext,
    txt: Path,
    lineno: int,
) -> Annotation | None:
    """One label row as an annotation, or None (counted) when it cannot be used."""
    parts = line.split()
    try:
        c = int(parts[0])
        v = np.asarray([float(x) for x in parts[1:]], dtype=np.float64)
    except ValueError:
        ctx.dropped("line", "not numbers", file=txt, line=lineno, detail="non-numeric value")
        return None
    if not np.isfinite(v).all():
        ctx.dropped("line", "not numbers", file=txt, line=lineno, detail="a value is not a finite number")
        return None
    if c < 0 or (names and c >= len(names)):
        ctx.dropped(
            "line",
            "unknown class",
            file=txt,
            line=lineno,
            detail=f"class {c} outside 0..{len(names) - 1}" if names else f"class {c} is negative",
        )
        return None
    if (
        names == [] and c >= 10_000
    ):  # unnamed classes are created up to c: a hostile row must not ask for 10**9
        ctx.dropped("line", "unknown class", file=txt, line=lineno, detail=f"class {c} without a class list")
        return None
    while len(labels.classes) <= c:  # unnamed classes are named by their number
        labels.ensure_class(str(len(labels.classes)))
    label = labels.classes[c].name
    coords = v
    if kpt is not None:
        coords = (
            np.concatenate([v[:4], v[4:].reshape(-1, kpt[1])[:, :2].ravel()])
            if v.size == 4 + kpt[0] * kpt[1]
            else v
        )
    if (coords < 0).any() or (coords > 1).any():
        worst = coords[np.argmax(np.abs(coords - 0.5))]
        ctx.warn(f"coordinate {worst:g} outside [0, 1], clipped", file=txt, line=lineno)
    wh = np.array([rec.width, rec.height], dtype=np.float64)
    prov = imported(None, "yolo")
    if kpt is not None and v.size == 4 + kpt[0] * kpt[1]:
        cx, cy, bw, bh = np.clip(v[:4], 0, 1) * np.tile(wh, 2)
        k = v[4:].reshape(kpt[0], kpt[1])
        pts = np.clip(k[:, :2], 0, 1) * wh
        vis = tuple(
            int(round(x)) if kpt[1] == 3 and x in (0, 1, 2) else 2
            for x in (k[:, 2] if kpt[1] == 3 else np.full(kpt[0], 2.0))
        )
        box = [float(cx - bw / 2), float(cy - bh / 2), float(cx + bw / 2), float(cy + bh / 2)]
        return Annotation(
            rec.key, label, Keypoints(pts, vis, kpt_names), provenance=prov, attributes={"bbox": box}
        )
    v = np.clip(v, 0.0, 1.0)
    if v.size == 4:
        cx, cy, bw, bh = v * np.tile(wh, 2)
        return Annotation(
            rec.key, label, Box(cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), provenance=prov
        )
    if obb and v.size == 8:
        return Annotation(rec.key, label, RotatedBox.from_corners(v.reshape(4, 2) * wh), provenance=prov)
    if v.size % 2 or v.size < 6:
        ctx.dropped(
            "line",
            "wrong number of values",
            file=txt,
            line=lineno,
            detail=f"{v.size} values after the class (a box has 4, an outline >= 6 in x,y pairs)",
        )
        return None
    return Annotation(rec.key, label, Polygon((PolygonPart(v.reshape(-1, 2) * wh),)), provenance=prov)
