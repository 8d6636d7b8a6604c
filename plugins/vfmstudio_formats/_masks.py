"""Mask PNGs: semantic (pixel = class index + 1, 0 = background) or instance (pixel = instance id).

Masks and polygons are rasterised in annotation order (later on top); boxes and points are not
written. ``classes.txt`` lists the classes (line n = value n); instance folders get an
``instances.json`` per image mapping ids to classes.

Import reads semantic maps: index PNGs (greyscale or palette, as VOC ``SegmentationClass`` holds
them; value n is line n of ``classes.txt``, 0 background, 255 void) or colour PNGs whose colours
``labelmap.txt`` names (``name:r,g,b::``). Each class present in an image becomes one mask
annotation on the image of the same stem.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from vfmstudio.plugin_api import (
    AREA_SHAPES,
    DEFAULT_MAX_PIXELS,
    Annotation,
    Box,
    ExchangeContext,
    FormatError,
    Mask,
    Project,
    in_memory,
    open_image,
    shape_kind,
)

from ._common import (
    check_regular_file,
    drop_image_texts,
    export_names,
    find_images,
    image_dims,
    image_record,
    imported,
    iter_images,
    read_text,
    write_json,
)

VOID = 255  # VOC's "don't care" border value


def _save_png(arr: np.ndarray, path: Path, ctx: ExchangeContext) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.max(initial=0) <= 255:
        Image.fromarray(arr.astype(np.uint8), mode="L").save(path)
    else:
        Image.fromarray(arr.astype(np.uint16)).save(path)  # 16-bit greyscale PNG
    ctx.wrote(path)


def export(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    labels = project.labels
    instance = params["kind"] == "instance"
    names = export_names(project)
    cls_value = {c.name: i + 1 for i, c in enumerate(labels.classes)}
    for _, rec in iter_images(project, ctx, "masks"):
        h, w = image_dims(project, rec)
        canvas = np.zeros((h, w), dtype=np.int32)
        meta = []
        for ann in labels.annotations(rec.key):
            if isinstance(ann.shape, Box) or not isinstance(ann.shape, AREA_SHAPES):
                ctx.dropped(shape_kind(ann.shape), "mask PNGs hold outlined regions only")
                continue
            if not isinstance(ann.shape, Mask):
                ctx.converted(shape_kind(ann.shape), "mask", "mask PNGs hold pixels")
            m = ann.shape.to_mask(h, w)
            value = len(meta) + 1 if instance else cls_value[ann.label]
            canvas[m] = value
            meta.append({"id": len(meta) + 1, "label": ann.label, "annotation": ann.id, "score": ann.score})
        stem = PurePosixPath(names[rec.key]).with_suffix(".png")
        _save_png(canvas, out / ("instances" if instance else "semantic") / stem, ctx)
        if instance:
            write_json(out / "instances" / stem.with_suffix(".json"), meta, ctx)
    classes = out / "classes.txt"
    classes.write_text("background\n" + "".join(c.name + "\n" for c in labels.classes), encoding="utf-8")
    ctx.wrote(classes)
    drop_image_texts(project, ctx, "mask PNGs")


def import_(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    if not source.is_dir():
        raise FormatError(f"{source}: give the folder holding the mask PNGs and classes.txt or labelmap.txt")
    folder = next((source / n for n in ("semantic", "SegmentationClass") if (source / n).is_dir()), source)
    root = Path(params["image_root"]).resolve() if params.get("image_root") else source.resolve()
    index_names, colours = _class_lists(source)
    if index_names is None and colours is None:
        raise FormatError(
            f"{source}: no classes.txt (index maps) or labelmap.txt (colour maps) naming the classes"
        )
    masks = sorted(folder.glob("*.png"))
    images: dict[str, Path] = {}
    for img in find_images(root):
        if folder.resolve() not in img.resolve().parents:
            images.setdefault(img.stem, img)
    project = in_memory(root)
    for name in (index_names or [])[1:] + [n for n in (colours or {}).values() if n != "background"]:
        project.labels.ensure_class(name)
    for i, path in enumerate(masks):
        ctx.progress(i / max(len(masks), 1), f"masks {path.name}")
        ctx.file = path
        img = images.get(path.stem)
        if img is None:
            ctx.dropped("file", "no image of that name", file=path)
            continue
        rec = image_record(root, img.resolve().relative_to(root).as_posix())
        values = _read_png(path, colours is not None and index_names is None)
        if (rec.height, rec.width) != values.shape[:2]:
            ctx.dropped(
                "file",
                "size differs from the image",
                file=path,
                detail=f"mask {values.shape[1]}x{values.shape[0]}, image {rec.width}x{rec.height}",
            )
            continue
        project.images[rec.key] = rec
        for label, mask in _regions(values, index_names, colours, path, ctx):
            project.labels.add(
                Annotation(rec.key, label, Mask.from_array(mask), provenance=imported(None, "masks"))
            )
    ctx.file = None
    return project


def _class_lists(source: Path) -> tuple[list[str] | None, dict | None]:
    classes = next((p for p in (source / "classes.txt", source.parent / "classes.txt") if p.is_file()), None)
    labelmap = next(
        (p for p in (source / "labelmap.txt", source.parent / "labelmap.txt") if p.is_file()), None
    )
    names = [line.strip() for line in read_text(classes).splitlines() if line.strip()] if classes else None
    colours = None
    if labelmap is not None:
        colours = {}
        for line in read_text(labelmap).splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, _, rest = line.partition(":")
            rgb = rest.split(":", 1)[0].split(",")
            if len(rgb) == 3 and all(v.strip().isdigit() for v in rgb):
                colours[tuple(int(v) for v in rgb)] = name.strip()
    return names, colours


def _read_png(path: Path, colour: bool) -> np.ndarray:
    """Pixel values of a mask PNG: indices (H, W), or RGB (H, W, 3) for colour maps. Only PNG is
    decoded, and only within the pixel limit."""
    check_regular_file(path)
    try:
        with open_image(path, only=("PNG",)) as im:  # the one allow-listed opener (ADR 0100)
            if im.width * im.height > DEFAULT_MAX_PIXELS:
                raise FormatError(
                    f"{path}: {im.width}x{im.height} pixels is above the limit ({DEFAULT_MAX_PIXELS})"
                )
            if colour:
                return np.asarray(im.convert("RGB"))
            if im.mode in ("P", "L", "I;16", "I"):
                return np.asarray(im).astype(np.int64)  # palette images: the index, not the colour
            raise FormatError(
                f"{path}: a {im.mode} image is not an index map (give labelmap.txt for colour maps)"
            )
    except (OSError, Image.DecompressionBombError) as exc:
        raise FormatError(f"{path}: not a readable PNG ({exc})") from None


def _regions(values: np.ndarray, index_names, colours, path: Path, ctx: ExchangeContext):
    if values.ndim == 3:
        flat = values.reshape(-1, 3)
        codes = (flat[:, 0].astype(np.int64) << 16) | (flat[:, 1].astype(np.int64) << 8) | flat[:, 2]
        for code in np.unique(codes):
            rgb = (int(code >> 16), int((code >> 8) & 255), int(code & 255))
            name = colours.get(rgb)
            if name == "background" or rgb == (0, 0, 0):
                continue
            if name is None:
                n = int((codes == code).sum())
                ctx.warn(f"{n} pixels of colour {rgb} that labelmap.txt does not name, left out", file=path)
                continue
            yield name, (codes == code).reshape(values.shape[:2])
        return
    for v in np.unique(values):
        v = int(v)
        if v == 0 or v == VOID:
            continue
        if index_names is not None and v < len(index_names):
            name = index_names[v]
        else:
            name = str(v)
            ctx.warn(f"value {v} is not in the class list; named {name!r}", file=path)
        yield name, values == v
