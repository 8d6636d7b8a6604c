"""Reference masks for ``dinov2.propagate``: where they come from and how they become patch labels.

The ``masks`` parameter names one source per reference image, in the order of the images
(docs/adr/0011):

- ``a.png; b.png`` - label images, one per reference, the size of their reference image. 0 (or
  black) is background; every other grey level, palette index or colour is one class. A mask with
  a single non-zero value is the class ``foreground``.
- ``a.json`` - a ``Masks`` result as JSON, or a whole prediction JSON (``vfmstudio run --json``),
  whose masks are all taken.
- inline JSON (text starting with ``{`` or ``[``): a ``Masks`` object or a list of them, one per
  reference; this is what the window passes for the annotations on screen.

Masks with the same label are merged: a class is a label.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vfmstudio.plugin_api import LoadedImage, Masks, ParamError, Prediction, ResultError, result_from_json

BACKGROUND = "background"
MAX_CLASSES = 255  # more distinct values than this is a photo or a soft mask, not a label image
ClassMasks = dict[str, np.ndarray]  # label -> (H, W) bool


def read_reference_masks(spec: str, images: list[LoadedImage]) -> list[ClassMasks]:
    """One ``{label: mask}`` per reference image; the references are the first images, in order."""
    spec = spec.strip()
    if spec[:1] in ("{", "["):
        try:
            data = json.loads(spec)
        except ValueError as exc:
            raise ParamError(f"parameter 'masks': inline JSON does not parse ({exc})") from None
        entries = data if isinstance(data, list) else [data]
        per_ref = [_masks_from_json(entry, f"masks[{i}]") for i, entry in enumerate(entries)]
    else:
        per_ref = [_read_file(Path(part.strip()).expanduser()) for part in spec.split(";") if part.strip()]
    if not per_ref:
        raise ParamError("parameter 'masks': give a mask file per reference image (PNG or JSON)")
    if len(per_ref) >= len(images):
        raise ParamError(
            f"parameter 'masks': {len(per_ref)} reference mask(s) for {len(images)} image(s); "
            "give the reference images first, then at least one image to label"
        )
    out = []
    for classes, image in zip(per_ref, images):
        for label, mask in classes.items():
            if mask.shape != (image.height, image.width):
                raise ParamError(
                    f"parameter 'masks': the mask '{label}' is {mask.shape[1]}x{mask.shape[0]} "
                    f"but its reference image {image.name} is {image.width}x{image.height}"
                )
        if not classes:
            raise ParamError(f"parameter 'masks': the masks for {image.name} are empty")
        out.append(classes)
    return out


def _read_file(path: Path) -> ClassMasks:
    if not path.exists():
        raise ParamError(f"parameter 'masks': no such file '{path}'")
    if not path.is_file():  # a FIFO or device would block open() forever
        raise ParamError(f"parameter 'masks': '{path}' is not a regular file")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ParamError(f"parameter 'masks': cannot read '{path}' as JSON ({exc})") from None
        return _masks_from_json(data, str(path), path.parent)
    return _read_label_image(path)


def _masks_from_json(data: object, where: str, folder: Path | None = None) -> ClassMasks:
    try:
        if isinstance(data, dict) and "results" in data:
            results = list(Prediction.from_json(data, folder).results)
        else:
            results = [result_from_json(data, folder)]  # type: ignore[arg-type]
    except ResultError as exc:
        raise ParamError(f"parameter 'masks': {where}: {exc}") from None
    classes: ClassMasks = {}
    for result in results:
        if isinstance(result, Masks):
            for label, mask in zip(result.labels, result.masks):
                label = label or "object"
                classes[label] = classes[label] | mask if label in classes else mask.copy()
    if not classes and not any(isinstance(r, Masks) for r in results):
        raise ParamError(f"parameter 'masks': {where} holds no masks")
    return classes


def _read_label_image(path: Path) -> ClassMasks:
    from PIL import Image, UnidentifiedImageError

    from vfmstudio.plugin_api import DEFAULT_MAX_PIXELS, open_image

    try:
        with open_image(path) as im:
            if DEFAULT_MAX_PIXELS and im.width * im.height > DEFAULT_MAX_PIXELS:
                raise ParamError(
                    f"parameter 'masks': '{path}' has {im.width}x{im.height} pixels, over the limit of "
                    f"{DEFAULT_MAX_PIXELS} (set VFMSTUDIO_MAX_PIXELS)"
                )
            im.load()
            values = np.asarray(im.convert("RGB") if im.mode in ("RGBA", "LA", "CMYK", "YCbCr") else im)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ParamError(f"parameter 'masks': cannot read '{path}' as a label image ({exc})") from None
    if values.ndim == 3:  # colours: pack RGB into one integer per pixel
        values = (
            (values[..., 0].astype(np.int64) << 16) | (values[..., 1].astype(np.int64) << 8) | values[..., 2]
        )
        name = "#{:06x}".format
    else:
        name = "class {}".format
    classes = [int(v) for v in np.unique(values) if v != 0]
    if len(classes) > MAX_CLASSES:
        raise ParamError(
            f"parameter 'masks': '{path}' has {len(classes)} distinct values; a label image has "
            f"0 for background and at most {MAX_CLASSES} class values"
        )
    if len(classes) == 1:
        return {"foreground": values == classes[0]}
    return {name(v): values == v for v in classes}


def patch_labels(
    classes: ClassMasks,
    extent: tuple[float, float, float, float],
    grid: tuple[int, int],
    min_share: float = 0.5,
) -> tuple[list[str], np.ndarray]:
    """Class per patch of a reference: ``(names, labels)`` with labels (rows*cols,) in -1..len(names)-1.

    Index 0 is background. A patch takes the class covering most of its pixels, or -1 (ignored)
    when no class covers ``min_share`` of it: mixed patches on boundaries would blur the votes.
    """
    names = [BACKGROUND, *(n for n in classes if n != BACKGROUND)]
    covers = [_cell_cover(classes[n], extent, grid) for n in names[1:]]
    union = np.clip(np.sum(covers, axis=0), 0.0, 1.0) if covers else np.zeros(grid)
    stack = np.stack([1.0 - union, *covers]).reshape(len(names), -1)
    labels = stack.argmax(axis=0)
    labels[stack.max(axis=0) < min_share] = -1
    return names, labels


def _cell_cover(
    mask: np.ndarray, extent: tuple[float, float, float, float], grid: tuple[int, int]
) -> np.ndarray:
    """Share of each patch cell (rows, cols) covered by ``mask``, via an integral image."""
    h, w = mask.shape
    rows, cols = grid
    x0, y0, x1, y1 = extent
    ys = np.clip(np.round(y0 + np.arange(rows + 1) * (y1 - y0) / rows), 0, h).astype(int)
    xs = np.clip(np.round(x0 + np.arange(cols + 1) * (x1 - x0) / cols), 0, w).astype(int)
    ii = np.zeros((h + 1, w + 1), dtype=np.int64)
    ii[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    sums = (
        ii[np.ix_(ys[1:], xs[1:])]
        - ii[np.ix_(ys[:-1], xs[1:])]
        - ii[np.ix_(ys[1:], xs[:-1])]
        + ii[np.ix_(ys[:-1], xs[:-1])]
    )
    area = np.outer(np.diff(ys), np.diff(xs))
    return sums / np.maximum(area, 1)
