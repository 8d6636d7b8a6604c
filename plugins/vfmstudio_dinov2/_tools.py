"""The dinov2 tools: each is ``fn(ctx, images, params) -> list[Result]`` on cached features.

Only :func:`vfmstudio_dinov2._features.features_of_all` may run a model; everything after it is
math on cached arrays, so rerunning a tool with a new threshold, point, layer or image set costs
milliseconds for images already seen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vfmstudio.plugin_api import (
    Correspondences,
    FeatureImage,
    Heatmap,
    Histogram,
    LayerMaps,
    LoadedImage,
    Masks,
    ParamError,
    Result,
    RunContext,
    Table,
)
from vfmstudio_dinov2 import _math
from vfmstudio_dinov2._features import PatchFeatures, features_of_all
from vfmstudio_dinov2._refmasks import BACKGROUND, patch_labels, read_reference_masks

HISTOGRAM_BINS = 64
MAX_PICTURE_SIDE = 1024  # the PCA pictures' long side; masks always have the image's size
Check = Callable[[list[LoadedImage], dict], object]


def on_features(check: Check | None = None):
    """Make ``fn(ctx, images, params, feats)`` a tool: check the inputs first (cheap errors before any
    forward pass; a value ``check`` returns is passed on as a fifth argument), get the features (the
    model uses every thread), then run the math on one thread (see ``_math.one_thread``)."""

    def wrap(fn):
        @functools.wraps(fn)
        def tool(ctx: RunContext, images: list[LoadedImage], params: dict) -> list[Result]:
            extra = check(images, params) if check is not None else None
            feats = features_of_all(ctx, images, params["resolution"])
            with _math.one_thread():
                return (
                    fn(ctx, images, params, feats) if extra is None else fn(ctx, images, params, feats, extra)
                )

        return tool

    return wrap


# ---------------------------------------------------------------------------------------------- PCA


@dataclass(frozen=True)
class Split:
    """The foreground/background split of one image along its first principal component.

    ``pc1``: (rows*cols,) the component min-max scaled to [0, 1] and oriented so that foreground is
    high; ``foreground``: (rows, cols) the split after clean-up; ``threshold``: the cut used.
    """

    pc1: np.ndarray
    foreground: np.ndarray
    threshold: float


def first_component(feats: PatchFeatures) -> tuple[np.ndarray, float]:
    """PC1 of the patch tokens scaled to [0, 1] and oriented so foreground is high, and its Otsu cut."""
    comps, mean = _math.top_components(feats.tokens, 1)
    pc1 = _math.minmax01((_math.as_tensor(feats.tokens) - mean) @ comps[0]).numpy()
    auto = _math.otsu(pc1)
    # Orient once, from the automatic cut, so a numeric threshold always keeps foreground on the high
    # side: dragging the slider never swaps which side is the object.
    if not _math.foreground_is_high(pc1, auto, feats.grid):
        pc1, auto = 1.0 - pc1, 1.0 - auto
    return pc1.astype(np.float32), auto


def split_foreground(
    ctx: RunContext,
    feats: PatchFeatures,
    threshold: float | str = "auto",
    sign: str = "auto",
    cleanup: bool = True,
) -> Split:
    pc1, auto = feats.derived(ctx, "dinov2.pc1", lambda: first_component(feats))
    if sign == "flip":
        pc1, auto = 1.0 - pc1, 1.0 - auto
    cut = auto if threshold == "auto" else float(threshold)
    fg = (pc1 > cut).reshape(feats.grid)
    if cleanup:
        fg = _math.clean_mask(fg)
    return Split(pc1=pc1, foreground=fg, threshold=cut)


def _colour_foreground(tokens: list[np.ndarray], splits: list[Split]) -> list[np.ndarray]:
    """3-component PCA fitted on the foreground tokens of all images together -> (rows, cols, 3) in [0, 1].

    Each component is min-max scaled over all foreground tokens, so a colour means the same in every
    image; background is black.
    """
    fg_rows = [t[s.foreground.ravel()] for t, s in zip(tokens, splits)]
    stacked = np.concatenate(fg_rows) if fg_rows else np.zeros((0, tokens[0].shape[1]), np.float32)
    out = [np.zeros((*s.foreground.shape, 3), np.float32) for s in splits]
    if stacked.shape[0] < 2:
        return out
    comps, mean = _math.top_components(stacked, 3)
    proj = (_math.as_tensor(stacked) - mean) @ comps.T
    lo, hi = proj.amin(dim=0), proj.amax(dim=0)
    scale = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    start = 0
    for rows, split, rgb in zip(fg_rows, splits, out):
        part = ((proj[start : start + len(rows)] - lo) / scale).numpy()
        rgb[split.foreground] = part
        start += len(rows)
    return out


def _render(
    rgb: np.ndarray, fg: np.ndarray, feats: PatchFeatures, image: LoadedImage, mode: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patch-level RGB and foreground -> (uint8 picture, its foreground, full-size bool mask).

    The mask has the image's size (``Masks`` needs it). The picture, a view of patch features that
    painters stretch over the whole image, is capped at ``MAX_PICTURE_SIDE`` pixels: on a 12 MP photo
    this keeps a threshold drag at tens of milliseconds instead of several hundred.
    """
    size = (image.height, image.width)
    scale = min(1.0, MAX_PICTURE_SIDE / max(size))
    shown = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    # Scale to 0..255 (+0.5 to round) on the patch grid: interpolation weights sum to one, so this
    # equals scaling every pixel afterwards, at a thousandth of the cost.
    colours = torch.from_numpy(rgb).permute(2, 0, 1) * 255.0 + 0.5
    stack = torch.cat([colours, torch.from_numpy(fg).unsqueeze(0).float()])
    # The picture's extent is the patch extent in picture pixels: the same exact mapping, rescaled.
    sy, sx = shown[0] / size[0], shown[1] / size[1]
    x0, y0, x1, y1 = feats.extent
    full = _math.to_pixels(stack, (x0 * sx, y0 * sy, x1 * sx, y1 * sy), shown, mode)
    shown_fg = full[3] > 0.5
    picture = full[:3].clamp_(0, 255).to(torch.uint8).mul_(shown_fg)  # background black
    if shown == size:
        mask = shown_fg
    else:
        mask = _math.to_pixels(stack[3:], feats.extent, size, mode)[0] > 0.5
    return picture.permute(1, 2, 0).contiguous().numpy(), shown_fg.numpy(), mask.numpy()


def _whole(image: LoadedImage) -> tuple[float, float, float, float]:
    return (0.0, 0.0, float(image.width), float(image.height))


@on_features()
def pca(
    ctx: RunContext, images: list[LoadedImage], params: dict, features: list[PatchFeatures]
) -> list[Result]:
    (feats,), (image,) = features, images
    split = split_foreground(ctx, feats, params["threshold"], params["sign"], params["cleanup"])
    (rgb,) = _colour_foreground([feats.tokens], [split])
    picture, shown_fg, mask = _render(rgb, split.foreground, feats, image, params["upsample"])
    counts, edges = np.histogram(split.pc1, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return [
        FeatureImage(
            rgb=picture,
            foreground=shown_fg,
            label="PCA of foreground tokens",
            extent=_whole(image),
            image_id=image.id,
        ),
        Masks(masks=mask[None], labels=("foreground",), image_id=image.id),
        Heatmap(
            values=split.pc1.reshape(feats.grid),
            label="first PCA component (foreground high)",
            value_range=(0.0, 1.0),
            extent=feats.extent,
            image_id=image.id,
        ),
        Histogram(
            counts=counts,
            edges=edges,
            threshold=split.threshold,
            label="first PCA component",
            image_id=image.id,
        ),
    ]


@on_features()
def joint_pca(
    ctx: RunContext, images: list[LoadedImage], params: dict, feats: list[PatchFeatures]
) -> list[Result]:
    splits = [split_foreground(ctx, f, params["threshold"], params["sign"], params["cleanup"]) for f in feats]
    colours = _colour_foreground([f.tokens for f in feats], splits)
    out: list[Result] = []
    for image, f, split, rgb in zip(images, feats, splits, colours):
        picture, shown_fg, mask = _render(rgb, split.foreground, f, image, params["upsample"])
        out.append(
            FeatureImage(
                rgb=picture,
                foreground=shown_fg,
                label="joint PCA of foreground tokens",
                extent=_whole(image),
                image_id=image.id,
            )
        )
        out.append(Masks(masks=mask[None], labels=("foreground",), image_id=image.id))
    return out


# ---------------------------------------------------------------------------------------------- similarity


def _check_points(images: list[LoadedImage], params: dict) -> None:
    image = images[0]
    for x, y in params["points"]:
        if not (0 <= x < image.width and 0 <= y < image.height):
            raise ParamError(
                f"parameter 'points': ({x:g}, {y:g}) lies outside {image.name} ({image.width}x{image.height})"
            )


@on_features(check=_check_points)
def similarity(
    ctx: RunContext, images: list[LoadedImage], params: dict, feats: list[PatchFeatures]
) -> list[Result]:
    """Cosine similarity of the patch under each point of the first image to every patch of every image."""
    points = params["points"]
    source, src = images[0], feats[0]
    queries = _math.normalize_rows(src.tokens[[src.geometry.patch_index(x, y) for x, y in points]])  # (P, C)
    sims = [(_math.normalize_rows(f.tokens) @ queries.T).numpy() for f in feats]  # each (N, P)
    out: list[Result] = []
    for p, (x, y) in enumerate(points):
        lo = min(float(s[:, p].min()) for s in sims)
        hi = max(float(s[:, p].max()) for s in sims)
        value_range = (lo, hi) if hi > lo else None
        for image, f, s in zip(images, feats, sims):
            out.append(
                Heatmap(
                    values=s[:, p].reshape(f.grid),
                    label=f"similarity to ({x:.0f}, {y:.0f})",
                    value_range=value_range,
                    extent=f.extent,
                    image_id=image.id,
                )
            )
    src_xy = np.asarray(points, dtype=np.float32)
    for image, f, s in zip(images[1:], feats[1:], sims[1:]):
        best = s.argmax(axis=0)
        out.append(
            Correspondences(
                source_xy=src_xy,
                target_xy=f.geometry.patch_centres()[best],
                scores=s[best, np.arange(len(points))],
                source_image=source.id,
                target_image=image.id,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- matches


@on_features()
def matches(
    ctx: RunContext, images: list[LoadedImage], params: dict, feats: list[PatchFeatures]
) -> list[Result]:
    """Best buddies between two images, then a diverse top-k by k-means over the pair descriptors."""
    fa, fb = feats
    ia_all = np.arange(fa.tokens.shape[0])
    ib_all = np.arange(fb.tokens.shape[0])
    if params["foreground"]:
        ia_all = np.flatnonzero(split_foreground(ctx, fa).foreground.ravel())
        ib_all = np.flatnonzero(split_foreground(ctx, fb).foreground.ravel())
    a = _math.normalize_rows(fa.tokens[ia_all])
    b = _math.normalize_rows(fb.tokens[ib_all])
    if len(a) and len(b):
        ia, ib, score = _math.mutual_nearest(a, b)
    else:
        ia = ib = torch.zeros(0, dtype=torch.long)
        score = torch.zeros(0)
    k = params["k"]
    if len(ia) > k:
        labels = _math.kmeans(torch.cat([a[ia], b[ib]], dim=1), k)
        # Strongest pair of each cluster: sort by score, keep the first occurrence of every label.
        order = torch.argsort(score, descending=True, stable=True)
        first = np.unique(labels[order].numpy(), return_index=True)[1]
        keep = order[torch.from_numpy(first)]
        ia, ib, score = ia[keep], ib[keep], score[keep]
    order = torch.argsort(score, descending=True, stable=True)
    ia, ib, score = ia[order].numpy(), ib[order].numpy(), score[order].numpy()
    return [
        Correspondences(
            source_xy=fa.geometry.patch_centres()[ia_all[ia]],
            target_xy=fb.geometry.patch_centres()[ib_all[ib]],
            scores=score,
            source_image=images[0].id,
            target_image=images[1].id,
        )
    ]


# ---------------------------------------------------------------------------------------------- norms


@on_features()
def norms(
    ctx: RunContext, images: list[LoadedImage], params: dict, features: list[PatchFeatures]
) -> list[Result]:
    """Patch-token norms of every layer, a per-layer summary and the outlier tokens of one layer."""
    (feats,), (image,) = features, images
    values = feats.layer_norms
    n_layers = values.shape[0]
    layer = params["layer"]
    if not -n_layers <= layer < n_layers:
        raise ParamError(
            f"parameter 'layer': {layer} is out of range; this model has layers 0..{n_layers - 1} "
            "(0 = embeddings; negative values count from the end)"
        )
    layer %= n_layers
    k = params["k"]
    rows = []
    for name, v in zip(feats.layer_names, values):
        cut = _math.robust_cutoff(v, k)
        rows.append(
            (
                name,
                round(float(np.median(v)), 4),
                round(float(v.max()), 4),
                round(float((v > cut).mean()), 4),
                round(cut, 4),
            )
        )
    outliers = values[layer] > _math.robust_cutoff(values[layer], k)
    mask = (
        _math.to_pixels(
            torch.from_numpy(outliers)[None], feats.extent, (image.height, image.width), "nearest"
        )[0].numpy()
        > 0.5
    )
    name = feats.layer_names[layer]
    out: list[Result] = [
        LayerMaps(
            values=values,
            names=feats.layer_names,
            label="patch-token norms",
            extent=feats.extent,
            image_id=image.id,
        ),
        Table(
            columns=("layer", "median", "max", "outlier share", "cutoff"),
            rows=tuple(rows),
            title=f"patch-token norms (outlier: robust z-score above {k:g})",
            image_id=image.id,
        ),
        Heatmap(values=values[layer], label=f"token norms, {name}", extent=feats.extent, image_id=image.id),
        Masks(masks=mask[None], labels=(f"high-norm tokens ({name})",), image_id=image.id),
    ]
    if feats.special_norms is not None:
        out.append(_special_token_table(feats, image))
    return out


def _special_token_table(feats: PatchFeatures, image: LoadedImage) -> Table:
    """Norms of the CLS and register tokens per layer: registers absorb the high-norm role that
    artifact patches take in models without them, so they are shown apart from the patch maps."""
    special = feats.special_norms
    columns = ("layer", "CLS", *(f"register {i}" for i in range(1, special.shape[1])))
    rows = tuple((name, *(round(float(v), 4) for v in row)) for name, row in zip(feats.layer_names, special))
    title = "CLS and register token norms" if special.shape[1] > 1 else "CLS token norms"
    return Table(columns=columns, rows=rows, title=title, image_id=image.id)


# ---------------------------------------------------------------------------------------------- propagate


def _read_masks(images: list[LoadedImage], params: dict) -> list:
    return read_reference_masks(params["masks"], images)


@on_features(check=_read_masks)
def propagate(
    ctx: RunContext, images: list[LoadedImage], params: dict, feats: list[PatchFeatures], references: list
) -> list[Result]:
    """Labels of the reference images (the first ones) carried to the others by k-NN voting on features."""
    names: list[str] = []
    for classes in references:
        names += [n for n in classes if n not in names and n != BACKGROUND]
    bank, bank_labels = [], []
    for classes, f in zip(references, feats):
        local_names, labels = patch_labels(classes, f.extent, f.grid)
        remap = np.array([names.index(n) + 1 if n in names else 0 for n in local_names])  # 0 = background
        keep = labels >= 0
        bank.append(f.tokens[keep])
        bank_labels.append(remap[labels[keep]])
    bank_t = _math.normalize_rows(np.concatenate(bank))
    bank_y = torch.from_numpy(np.concatenate(bank_labels))
    if bank_t.shape[0] == 0:
        raise ParamError(
            "parameter 'masks': no patch of the reference images is clearly inside or outside a mask"
        )
    n_classes = len(names) + 1
    k = min(params["k"], bank_t.shape[0])
    out: list[Result] = []
    for image, f in zip(images[len(references) :], feats[len(references) :]):
        ctx.check_cancelled()
        sims = _math.normalize_rows(f.tokens) @ bank_t.T
        top, idx = sims.topk(k, dim=1)
        # Neighbours at or above the floor vote with their similarity (never negatively, even with a
        # negative floor); the others do not vote.
        weight = torch.where(top >= params["floor"], top.clamp(min=1e-6), torch.zeros_like(top))
        votes = torch.zeros(sims.shape[0], n_classes).scatter_add_(1, bank_y[idx], weight)
        total = votes.sum(dim=1, keepdim=True)
        probs = torch.where(total > 0, votes / total.clamp(min=1e-12), torch.eye(n_classes)[0])  # no vote: bg
        full = _math.to_pixels(
            probs.T.reshape(n_classes, *f.grid), f.extent, (image.height, image.width), params["upsample"]
        )
        winner = full.argmax(dim=0).numpy()
        probs, patch_winner = probs.numpy(), probs.argmax(dim=1).numpy()
        found = [c for c in range(1, n_classes) if (winner == c).any()]
        scores = [
            float(probs[patch_winner == c, c].mean()) if (patch_winner == c).any() else 0.0 for c in found
        ]
        masks = (
            np.stack([winner == c for c in found])
            if found
            else np.zeros((0, image.height, image.width), bool)
        )
        out.append(
            Masks(
                masks=masks,
                labels=tuple(names[c - 1] for c in found),
                scores=np.asarray(scores),
                image_id=image.id,
            )
        )
    return out
