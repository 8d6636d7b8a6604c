"""Overlay pictures of results, drawn with numpy and Pillow (no Qt).

Used by ``vfmstudio run --out`` and batch outputs; the window paints its own interactive layers.
Colours, colour maps, mask fills and outlines come from :mod:`vfmstudio.core.render`, as in the
window, so a result looks the same in both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from vfmstudio.core.render import colour_for, colourize, composite, layer_maps_range, render_masks
from vfmstudio.core.results import (
    Classification,
    Correspondences,
    Detections,
    FeatureImage,
    Heatmap,
    LayerMaps,
    Masks,
    Prediction,
    Result,
    Text,
)


def _place(
    rgb: np.ndarray, extent, size: tuple[int, int], resample
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Resize a patch-level picture onto its extent in image pixels; returns picture and box."""
    h, w = size
    x0, y0, x1, y1 = extent if extent else (0, 0, w, h)
    box = (int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
    bw, bh = max(1, box[2] - box[0]), max(1, box[3] - box[1])
    pic = np.asarray(Image.fromarray(rgb).resize((bw, bh), resample))
    return pic, box


def _blend_region(
    base: np.ndarray, pic: np.ndarray, box, alpha: float, where: np.ndarray | None = None
) -> None:
    x0, y0, x1, y1 = box
    h, w = base.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    region = base[cy0:cy1, cx0:cx1].astype(np.float32)
    src = pic[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0].astype(np.float32)
    a = alpha if where is None else alpha * where[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0, None]
    base[cy0:cy1, cx0:cx1] = (region * (1 - a) + src * a).round().astype(np.uint8)


def draw_result(image: np.ndarray, result: Result, alpha: float = 0.5) -> np.ndarray:
    """Return a copy of ``image`` (H, W, 3) with ``result`` drawn over it: masks as the window draws
    them (translucent fills, opaque outlines), maps blended at ``alpha``."""
    out = np.array(image, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    if isinstance(result, Masks):
        out = composite(out, render_masks(result.masks))  # the window's mask raster
        assert result.boxes_xyxy is not None  # Masks derives the boxes when they are not given
        return _labels_at(out, [(b[0], b[1], lab) for b, lab in zip(result.boxes_xyxy, result.labels)])
    if isinstance(result, Heatmap):
        pic, box = _place(
            colourize(result.values, result.value_range), result.extent, (h, w), Image.Resampling.BILINEAR
        )
        _blend_region(out, pic, box, alpha)
        return out
    if isinstance(result, LayerMaps):
        last = result.values[-1]
        pic, box = _place(
            colourize(last, layer_maps_range(result.values)), result.extent, (h, w), Image.Resampling.NEAREST
        )
        _blend_region(out, pic, box, alpha)
        return _labels_at(out, [(4, 4, result.names[-1])])
    if isinstance(result, FeatureImage):
        pic, box = _place(result.rgb, result.extent, (h, w), Image.Resampling.NEAREST)
        where = None
        if result.foreground is not None:
            fg = Image.fromarray(result.foreground.astype(np.uint8) * 255).resize(
                pic.shape[1::-1], Image.Resampling.NEAREST
            )
            where = np.asarray(fg, dtype=np.float32) / 255.0
        _blend_region(out, pic, box, 0.75, where)
        return out
    if isinstance(result, Detections):
        pil = Image.fromarray(out)
        draw = ImageDraw.Draw(pil)
        for i, (box, label) in enumerate(zip(result.boxes_xyxy, result.labels)):
            score = "" if result.scores is None else f" {result.scores[i]:.2f}"
            draw.rectangle([float(v) for v in box], outline=colour_for(i), width=max(2, w // 300))
            _text(draw, float(box[0]), float(box[1]), f"{label}{score}", colour_for(i))
        return np.asarray(pil)
    if isinstance(result, Classification):
        lines = [f"{lab}: {s:.3f}" for lab, s in zip(result.labels[:5], result.scores[:5])]
        return _labels_at(out, [(4, 4 + 14 * i, line) for i, line in enumerate(lines)])
    if isinstance(result, Text):
        return _labels_at(out, [(4, 4, result.text[:120])])
    return out


def _text(draw: ImageDraw.ImageDraw, x: float, y: float, text: str, colour=(255, 255, 255)) -> None:
    left, top, right, bottom = draw.textbbox((x, y), text)
    draw.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=(0, 0, 0))
    draw.text((x, y), text, fill=colour)


def _labels_at(image: np.ndarray, items) -> np.ndarray:
    if not items:
        return image
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    for i, (x, y, text) in enumerate(items):
        _text(draw, float(x), float(y), str(text), colour_for(i))
    return np.asarray(pil)


def draw_correspondences(source: np.ndarray, target: np.ndarray, result: Correspondences) -> np.ndarray:
    """Source and target side by side (same height), with one line per match coloured by score."""
    hs, ws = source.shape[:2]
    ht, wt = target.shape[:2]
    scale = hs / ht
    target_resized = np.asarray(
        Image.fromarray(target).resize((max(1, round(wt * scale)), hs), Image.Resampling.BILINEAR)
    )
    canvas = np.concatenate([source, target_resized], axis=1)
    pil = Image.fromarray(canvas)
    draw = ImageDraw.Draw(pil)
    lo, hi = (float(result.scores.min()), float(result.scores.max())) if len(result) else (0.0, 1.0)
    colours = colourize(result.scores[None, :], (lo, hi if hi > lo else lo + 1))[0] if len(result) else []
    for (sx, sy), (tx, ty), colour in zip(result.source_xy, result.target_xy, colours):
        end = (ws + tx * scale, ty * scale)
        draw.line(
            [(float(sx), float(sy)), (float(end[0]), float(end[1]))],
            fill=tuple(int(c) for c in colour),
            width=2,
        )
        for cx, cy in ((sx, sy), end):
            draw.ellipse(
                [float(cx) - 3, float(cy) - 3, float(cx) + 3, float(cy) + 3], outline=(255, 255, 255)
            )
    return np.asarray(pil)


def render_prediction(
    prediction: Prediction, pixels: Mapping[str, np.ndarray]
) -> list[tuple[str, np.ndarray]]:
    """One overlay picture per drawable result: ``[(name, rgb), ...]``.

    ``pixels`` maps image ids to their (H, W, 3) arrays.
    """
    pictures: list[tuple[str, np.ndarray]] = []
    for i, result in enumerate(prediction.results):
        name = f"{i:02d}-{result.kind}"
        if isinstance(result, Correspondences):
            src, tgt = pixels.get(result.source_image or ""), pixels.get(result.target_image or "")
            if src is not None and tgt is not None:
                pictures.append((name, draw_correspondences(src, tgt, result)))
            continue
        image_id = getattr(result, "image_id", None)
        if image_id is None and len(prediction.image_ids) == 1:
            image_id = prediction.image_ids[0]
        base = pixels.get(image_id or "")
        if base is None or not _drawable(result):
            continue
        pictures.append((f"{name}-{image_id}", draw_result(base, result)))
    return pictures


def _drawable(result: Result) -> bool:
    return isinstance(result, Masks | Heatmap | LayerMaps | FeatureImage | Detections | Classification | Text)


def save_png(path, rgb: np.ndarray) -> None:
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path, format="PNG")


def contact_sheet(pictures: Sequence[np.ndarray], height: int = 256) -> np.ndarray:
    """Pictures scaled to one height and placed side by side (for set tools)."""
    scaled = [
        np.asarray(Image.fromarray(p).resize((max(1, round(p.shape[1] * height / p.shape[0])), height)))
        for p in pictures
    ]
    return np.concatenate(scaled, axis=1) if scaled else np.zeros((height, 1, 3), np.uint8)
