"""The tool's work. The ``log`` parameter names a file that gets one line per call:
``prepare N`` for a batched pass over N images, ``forward ID`` for a single-image pass."""

import time

import numpy as np

from vfmstudio.plugin_api import Classification, Detections, Heatmap, Masks


def _log(path, line):
    if path:
        with open(path, "a") as fp:  # O_APPEND: whole lines even from several processes
            fp.write(line + "\n")


def _features(pixels, grid):
    """The 'model': mean grey level over a grid x grid split of the image."""
    grey = pixels.astype(np.float64).mean(axis=2)
    rows = np.array_split(np.arange(grey.shape[0]), grid)
    cols = np.array_split(np.arange(grey.shape[1]), grid)
    return np.array(
        [[grey[np.ix_(r, c)].mean() if len(r) and len(c) else 0.0 for c in cols] for r in rows],
        dtype=np.float32,
    )


def _key(image, params):
    return ("batchfake", image.id, params["grid"])


def prepare(ctx, images, params):
    _log(params["log"], f"prepare {len(images)}")
    feats = [_features(im.pixels, params["grid"]) for im in images]  # stands in for one batched forward
    for im, f in zip(images, feats):
        ctx.cached(_key(im, params), lambda f=f: f)


def run(ctx, images, params):
    image = images[0]
    if params["fail_on"] == "*":
        raise RuntimeError("the model is broken on purpose")
    if params["fail_on"] and params["fail_on"] in str(image.path):
        raise RuntimeError(f"refusing {image.path.name} on purpose")

    def forward():
        _log(params["log"], f"forward {image.id}")
        return _features(image.pixels, params["grid"])

    grid = ctx.cached(_key(image, params), forward)
    if params["delay"]:
        time.sleep(params["delay"])
    mean = float(grid.mean()) / 255.0
    return [
        Heatmap(values=grid, label="grey", image_id=image.id),
        Classification(labels=("bright", "dark"), scores=np.array([mean, 1.0 - mean]), image_id=image.id),
    ]


def detect(ctx, images, params):
    """A 'detector': one box and one mask per image quadrant, labelled by brightness, scored by
    how far the quadrant's grey level is from the middle (0.0 for mid grey, 1.0 for black or white)."""
    image = images[0]
    if params["fail_on"] and params["fail_on"] in str(image.path):
        raise RuntimeError(f"refusing {image.path.name} on purpose")
    grey = image.pixels.astype(np.float64).mean(axis=2)
    h, w = grey.shape
    boxes, labels, scores, masks = [], [], [], []
    for y0, y1 in ((0, h // 2), (h // 2, h)):
        for x0, x1 in ((0, w // 2), (w // 2, w)):
            if y1 <= y0 or x1 <= x0:
                continue
            mean = float(grey[y0:y1, x0:x1].mean())
            boxes.append([x0, y0, x1, y1])
            labels.append("bright" if mean >= 128 else "dark")
            scores.append(round(abs(mean - 127.5) / 127.5, 6))
            m = np.zeros((h, w), dtype=bool)
            m[y0:y1, x0:x1] = True
            masks.append(m)
    out = [Detections(np.array(boxes, dtype=np.float32), tuple(labels), np.array(scores), image_id=image.id)]
    if params["masks"]:
        out.append(Masks(np.stack(masks), tuple(labels), scores=np.array(scores), image_id=image.id))
    return out
