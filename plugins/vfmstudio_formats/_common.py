"""Helpers shared by the codecs: output names, image copies, shape conversions, safe reading."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from vfmstudio.core import geometry
from vfmstudio.core.annotations import Annotation, Box, LabelSet, Mask, Points, Polygon, Provenance, Shape
from vfmstudio.core.exchange import ExchangeContext, FormatError, safe_join
from vfmstudio.core.image import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageLoadError
from vfmstudio.core.project import ImageRecord, Project, image_size

Part = tuple[np.ndarray, list[np.ndarray]]


def export_names(project: Project, *, flat: bool = False) -> dict[str, str]:
    """A unique relative output name per image key, never escaping the output folder.

    Names mirror the project-relative paths ('..' segments dropped); ``flat`` joins folders with '__'.
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for key, rec in project.images.items():
        parts = [p for p in PurePosixPath(rec.path).parts if p not in ("..", ".", "/")] or [key]
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
    if isinstance(shape, Box):
        return [(np.asarray(shape.corners()), [])]
    if isinstance(shape, Mask):
        return geometry.mask_to_parts(shape.to_array(), tolerance)
    return []


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    if isinstance(shape, Points):
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
        raise FormatError(f"{where}: image size {width}x{height} is negative or above the pixel limit "
                          f"({DEFAULT_MAX_PIXELS})")


def image_record(root: Path, rel: str, *, width: int = 0, height: int = 0, what: str = "image path") -> ImageRecord:
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

    from vfmstudio.core.image import open_image

    with open_image(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L")) > 0
