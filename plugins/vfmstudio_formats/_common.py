"""Helpers shared by the codecs: output names, image copies, shape conversions, safe reading."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from vfmstudio.plugin_api import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    Annotation,
    Box,
    Ellipse,
    ExchangeContext,
    FormatError,
    ImageLoadError,
    ImageRecord,
    Keypoints,
    LabelSet,
    Mask,
    Points,
    Polygon,
    Polyline,
    Project,
    Provenance,
    RotatedBox,
    Shape,
    image_size,
    mask_to_parts,
    safe_join,
    shape_kind,
)

Part = tuple[np.ndarray, list[np.ndarray]]


def export_names(
    project: Project, *, flat: bool = False, drop_dirs: frozenset[str] = frozenset()
) -> dict[str, str]:
    """A unique relative output name per image key, never escaping the output folder.

    Names mirror the project-relative paths ('..' segments and folders named in ``drop_dirs``
    dropped); ``flat`` joins folders with '__'.
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for key, rec in project.images.items():
        path = PurePosixPath(rec.path)
        parts = [p for p in path.parent.parts if p not in ("..", ".", "/") and p not in drop_dirs]
        parts = [*parts, path.name] if path.name not in ("", "..", ".") else parts
        parts = parts or [key]
        name = "__".join(parts) if flat else "/".join(parts)
        base, n = name, 1
        while name.lower() in taken:
            stem, dot, ext = base.rpartition(".")
            name = f"{stem}-{n}.{ext}" if dot else f"{base}-{n}"
            n += 1
        taken.add(name.lower())
        out[key] = name
    return out


def iter_images(project: Project, ctx: ExchangeContext, what: str) -> Iterator[tuple[int, ImageRecord]]:
    """Images in project order, reporting progress (and checking cancel) before each."""
    records = list(project.images.values())
    for i, rec in enumerate(records):
        ctx.progress(i / max(len(records), 1), f"{what} {rec.path}")
        yield i, rec


def image_dims(project: Project, rec: ImageRecord) -> tuple[int, int]:
    """(height, width) of an image, from the record or else from the file header."""
    if rec.width > 0 and rec.height > 0:
        return rec.height, rec.width
    for ann in project.labels.annotations(rec.key):
        if isinstance(ann.shape, Mask):
            return ann.shape.height, ann.shape.width
    p = project.root / rec.path
    if p.exists():
        w, h = image_size(p)
        return h, w
    raise FormatError(f"{rec.path}: image size unknown (the file is missing)")


def copy_image(project: Project, rec: ImageRecord, dest: Path, ctx: ExchangeContext) -> bool:
    src = project.root / rec.path
    if not src.exists():
        ctx.warn(f"{rec.path}: image file missing, not copied")
        return False
    try:  # a project file from elsewhere may name any file ('../../.ssh/id_rsa'): copy images only
        image_size(src)
    except ImageLoadError:
        ctx.warn(f"{rec.path}: not a readable image file, not copied")
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    ctx.wrote(dest)
    return True


def shape_parts(shape: Shape, tolerance: float) -> list[Part]:
    """Polygon parts (exterior, holes) of a shape; boxes become rectangles, points nothing."""
    if isinstance(shape, Polygon):
        return [(np.asarray(p.exterior), [np.asarray(h) for h in p.holes]) for p in shape.parts]
    if isinstance(shape, Box | RotatedBox):
        return [(np.asarray(shape.corners()), [])]
    if isinstance(shape, Ellipse):
        return [(np.asarray(shape.ring()), [])]
    if isinstance(shape, Mask):
        return mask_to_parts(shape.to_array(), tolerance)
    return []


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    if isinstance(shape, Points | Polyline | Keypoints):
        return np.zeros((height, width), dtype=bool)
    return shape.to_mask(height, width)


def shape_box(shape: Shape) -> tuple[float, float, float, float]:
    return tuple(float(v) for v in shape.bbox())  # type: ignore[return-value]


def source_of(ann: Annotation) -> str:
    return "manual" if ann.provenance.source == "manual" else "auto"


def imported(score: float | None = None, fmt: str = "") -> Provenance:
    return Provenance("import", params={"format": fmt} if fmt else {}, score=score)


def clip_points(points: np.ndarray, width: int, height: int) -> np.ndarray:
    out = np.asarray(points, dtype=np.float64).copy()
    if width > 0:
        out[:, 0] = np.clip(out[:, 0], 0, width)
    if height > 0:
        out[:, 1] = np.clip(out[:, 1], 0, height)
    return out


def check_regular_file(path: Path) -> None:
    """A FIFO or device named like a dataset file (a hostile archive can hold one) would block open()."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise FormatError(f"{path}: not a regular file")


def read_text(path: Path) -> str:
    """A dataset's text file, refused before open() when it is a FIFO or device."""
    check_regular_file(path)
    return path.read_text(encoding="utf-8")


def read_json(path: Path) -> Any:
    check_regular_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def write_json(path: Path, obj: Any, ctx: ExchangeContext) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    ctx.wrote(path)


def check_size(width: int, height: int, where: str) -> None:
    """Refuse image sizes a file claims but no image has (they would allocate huge masks)."""
    if width < 0 or height < 0 or width * height > DEFAULT_MAX_PIXELS:
        raise FormatError(
            f"{where}: image size {width}x{height} is negative or above the pixel limit "
            f"({DEFAULT_MAX_PIXELS})"
        )


def image_record(
    root: Path, rel: str, *, width: int = 0, height: int = 0, what: str = "image path"
) -> ImageRecord:
    """A record for an image named in a dataset file, resolved safely inside ``root``."""
    check_size(int(width), int(height), what)
    path = safe_join(root, rel, what=what)
    key = path.relative_to(root.resolve()).as_posix()
    if (width <= 0 or height <= 0) and path.exists():
        width, height = image_size(path)
    return ImageRecord(key, key, "", int(width), int(height))


def find_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def ensure_classes(labels: LabelSet, names: list[str]) -> None:
    for n in names:
        labels.ensure_class(n)


def mask_crop_png(mask: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool)).save(buf, format="PNG")
    return buf.getvalue()


def png_to_mask(data: bytes) -> np.ndarray:
    import io

    from vfmstudio.plugin_api import open_image

    with open_image(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L")) > 0


# Annotation attributes that are bookkeeping of one format, not attributes a user gave an object.
_PRIVATE_ATTRIBUTES = {
    "labelme",
    "labelme_shape_type",
    "cvat_shape",
    "iscrowd",
    "occluded",
    "z_order",
    "description",
    "flags",
    "track_id",
    "keyframe",
    "outside",
    "object",
}


def named_attributes(ann: Annotation) -> dict[str, Any]:
    """The object's own attributes (``difficult``, ``color`` ...): scalar values only."""
    return {
        k: v
        for k, v in ann.attributes.items()
        if k not in _PRIVATE_ATTRIBUTES and isinstance(v, str | int | float | bool)
    }


def nearest_shape(ann: Annotation, holds: tuple[type, ...], ctx: ExchangeContext, fmt: str) -> Shape | None:
    """``ann``'s shape, or the nearest one a format that ``holds`` these shape types can write,
    counted in the report; None (counted as dropped) when it has none."""
    s = ann.shape
    if isinstance(s, holds):
        return s
    kind = shape_kind(s)
    area = isinstance(s, Box | Polygon | Mask | RotatedBox | Ellipse)
    if isinstance(s, RotatedBox) and s.is_axis_aligned and Box in holds:
        out: Shape = Box(*s.bbox())
    elif area and Polygon in holds and not isinstance(s, Mask):
        parts = shape_parts(s, 0.0)
        out = Polygon(tuple((e, tuple(h)) for e, h in parts))
    elif area and RotatedBox in holds:  # an unturned box through the bounds
        x0, y0, x1, y1 = s.bbox()
        out = RotatedBox((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)
    elif area and Box in holds:
        out = Box(*s.bbox())
    elif isinstance(s, Keypoints) and Points in holds:
        visible = [p for p, v in zip(s.points, s.visibility) if v > 0]
        if not visible:
            ctx.dropped(kind, f"{fmt} cannot hold keypoints", detail=f"{fmt}: no labelled keypoint")
            return None
        out = Points(tuple(visible))
    elif isinstance(s, Polyline | Points) and Points in holds:
        out = Points(s.points)
    elif isinstance(s, Box) and Polygon in holds:
        out = Polygon.simple(s.corners())
    else:
        ctx.dropped(kind, f"{fmt} cannot hold them")
        return None
    ctx.converted(kind, shape_kind(out), f"{fmt} cannot hold them")
    return out


def drop_image_texts(
    project: Project, ctx: ExchangeContext, fmt: str, *, tags: bool = True, captions: bool = True
) -> None:
    """Count the image tags and captions a format does not write."""
    labels = project.labels
    n_tags = sum(len(t) for t in labels.tags.values())
    n_captions = sum(1 for c in labels.captions.values() if c)
    if tags and n_tags:
        ctx.dropped("tag", f"{fmt} has no image tags", n_tags)
    if captions and n_captions:
        ctx.dropped("caption", f"{fmt} has no captions", n_captions)


def drop_annotations(project: Project, ctx: ExchangeContext, fmt: str) -> None:
    """Count every annotation of a format that holds no shapes (captions files)."""
    from collections import Counter

    for kind, n in Counter(shape_kind(a.shape) for a in project.labels.annotations()).items():
        ctx.dropped(kind, f"{fmt} holds no shapes", n)


def clipped(shape: Shape, width: int, height: int, ctx: ExchangeContext, file: Any = None) -> Shape:
    """A box, polygon, polyline or point set moved inside the image (a warning says so); other
    shapes, and every shape when the image size is unknown, unchanged."""
    if width <= 0 or height <= 0:
        return shape
    x0, y0, x1, y1 = shape.bbox()
    if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
        return shape
    out: Shape = shape
    if isinstance(shape, Box):
        out = Box(
            min(max(x0, 0.0), width),
            min(max(y0, 0.0), height),
            min(max(x1, 0.0), width),
            min(max(y1, 0.0), height),
        )
    elif isinstance(shape, Polygon):
        out = Polygon(
            tuple(
                (
                    clip_points(np.asarray(p.exterior), width, height),
                    tuple(clip_points(np.asarray(h), width, height) for h in p.holes),
                )
                for p in shape.parts
            )
        )
    elif isinstance(shape, Polyline | Points):
        out = type(shape)(clip_points(np.asarray(shape.points), width, height))
    if out is not shape:
        ctx.warn(f"{shape.kind} reaching outside the {width}x{height} image, clipped to it", file=file)
    return out
