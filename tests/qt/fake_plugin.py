"""A fake plugin for the window tests: tools that are slow, raise, stream, and return every result kind.

It is registered as the module ``fake`` (family ``fake``) by the ``fake_host`` fixture. ``FORWARD``
counts "model forward passes" so tests can prove that interactive reruns reuse cached features.
"""

from __future__ import annotations

import time

import numpy as np

from vfmstudio.plugin_api import (
    Classification,
    Correspondences,
    Detections,
    FeatureImage,
    Heatmap,
    Histogram,
    InputKind,
    LayerMaps,
    Masks,
    ModelChoice,
    Param,
    ParamType,
    Table,
    Text,
    ToolSpec,
    hookimpl,
)

FORWARD = {"calls": 0}
#: fake.detect: the file name of every image it ran on, in order; ``ON_DETECT(n)`` (if set) is called
#: on the inference thread before the n-th run (n from 1), so a test can pause or stop a run there.
DETECTED: list[str] = []
ON_DETECT: list = []
MODEL = (ModelChoice("fake/tiny", "Fake tiny", params_millions=1.5),)


@hookimpl
def vfm_register_tools():
    return [
        ToolSpec(
            id="fake.slow",
            title="Slow",
            run="fake:slow",
            models=MODEL,
            returns=("heatmap",),
            params=(
                Param("seconds", ParamType.FLOAT, 1.0, minimum=0.0, maximum=60.0),
                Param("busy", ParamType.BOOL, False),
            ),
        ),
        ToolSpec(
            id="fake.busy",
            title="Busy",
            run="fake:busy",
            returns=("heatmap",),
            params=(Param("beats", ParamType.INT, 10, minimum=1, maximum=10_000),),
        ),
        ToolSpec(id="fake.boom", title="Boom", run="fake:boom", returns=("text",)),
        ToolSpec(id="fake.all", title="Everything", run="fake:everything", models=MODEL),
        ToolSpec(
            id="fake.pca",
            title="PCA",
            run="fake:pca",
            models=MODEL,
            returns=("histogram", "masks", "feature_image"),
            params=(
                Param("threshold", ParamType.FLOAT, "auto", minimum=-10.0, maximum=10.0, special=("auto",)),
            ),
        ),
        ToolSpec(
            id="fake.stream",
            title="Stream",
            run="fake:stream",
            returns=("text",),
            params=(Param("words", ParamType.INT, 5, minimum=1, maximum=100),),
        ),
        ToolSpec(
            id="fake.pair", title="Pair", run="fake:pair", inputs=InputKind.PAIR, returns=("correspondences",)
        ),
        ToolSpec(
            id="fake.setsim",
            title="Set similarity",
            run="fake:setsim",
            inputs=InputKind.SET,
            returns=("heatmap", "correspondences"),
            params=(Param("points", ParamType.POINTS, required=True),),
        ),
        ToolSpec(
            id="fake.ask",
            title="Ask",
            run="fake:ask",
            returns=("text",),
            params=(Param("question", ParamType.TEXT, required=True),),
        ),
        ToolSpec(
            id="fake.norms",
            title="Norms",
            run="fake:norms",
            returns=("layer_maps", "masks"),
            params=(Param("layer", ParamType.INT, -1, minimum=-1, maximum=2),),
        ),
        ToolSpec(
            id="fake.detect",
            title="Quadrant detector",
            run="fake:detect",
            models=MODEL,
            returns=("detections", "masks"),
            params=(
                Param("masks", ParamType.BOOL, True),
                Param("fail_on", ParamType.STR, "", help="raise for images whose file name contains this"),
            ),
        ),
        ToolSpec(
            id="fake.point",
            title="Point",
            run="fake:point",
            returns=("heatmap",),
            params=(Param("points", ParamType.POINTS, required=True),),
        ),
    ]


def slow(ctx, images, params):
    """Sleeps in small steps on the cancel token with some Python work in between (holding the GIL),
    or with ``busy`` computes in pure Python all the time, like a model that never lets go."""
    end = time.perf_counter() + params["seconds"]
    while time.perf_counter() < end:
        ctx.progress(1 - (end - time.perf_counter()) / max(params["seconds"], 1e-9), "working")
        sum(i * i for i in range(20_000))  # ~1-2 ms of pure Python
        if ctx.cancel.wait(0.0 if params["busy"] else 0.01):
            ctx.check_cancelled()
    im = images[0]
    return [Heatmap(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4), label="slow", image_id=im.id)]


GUI_BEATS = {"n": 0}  # heartbeats handled by the GUI thread (the test's timer counts them)
BUSY_RUNS: list[dict] = []


def busy(ctx, images, params):
    """Pure Python, no sleeping, until the GUI thread has handled ``beats`` more heartbeats."""
    start, steps = GUI_BEATS["n"], 0
    while GUI_BEATS["n"] - start < params["beats"]:
        sum(i * i for i in range(20_000))
        steps += 1
        ctx.progress(None, "busy")  # also raises Cancelled, so a stuck test can be cancelled
    BUSY_RUNS.append({"beats_seen": GUI_BEATS["n"] - start, "python_steps": steps})
    return [Heatmap(np.zeros((2, 2), np.float32), image_id=images[0].id)]


def boom(ctx, images, params):
    raise RuntimeError("kaboom in the fake plugin")


def everything(ctx, images, params):
    out = []
    for im in images:
        h, w = im.height, im.width
        masks = np.zeros((2, h, w), dtype=bool)
        masks[0, : h // 2, : w // 2] = True
        masks[1, h // 2 :, w // 2 :] = True
        out += [
            Masks(masks, ("left", "right"), scores=np.array([0.9, 0.8]), image_id=im.id),
            Detections(np.array([[2, 2, w // 2, h // 2]]), ("thing",), np.array([0.7]), image_id=im.id),
            Heatmap(np.arange(12, dtype=np.float32).reshape(3, 4), label="heat", image_id=im.id),
            FeatureImage(
                np.full((3, 4, 3), 200, np.uint8), foreground=np.eye(3, 4, dtype=bool), image_id=im.id
            ),
            LayerMaps(
                np.stack([np.full((3, 4), float(i)) for i in range(3)]),
                ("layer 0", "layer 1", "layer 2"),
                image_id=im.id,
            ),
            Classification(("cat", "dog"), np.array([0.2, 0.8]), image_id=im.id),
            Table(("layer", "norm"), ((0, 1.5), (1, 2.5)), image_id=im.id),
            Text("a fake caption", prompt="caption en", image_id=im.id),
        ]
    return out


def _features(ctx, im):
    def forward():
        FORWARD["calls"] += 1
        time.sleep(0.2)  # a model forward pass
        y, x = np.mgrid[0 : im.height, 0 : im.width]
        return (x / max(im.width - 1, 1)).astype(np.float32)  # "first component": 0 left .. 1 right

    return ctx.cached(("fake-features", im.id), forward)


def pca(ctx, images, params):
    im = images[0]
    pc1 = _features(ctx, im)
    thr = 0.5 if params["threshold"] == "auto" else float(params["threshold"])
    counts, edges = np.histogram(pc1, bins=32, range=(0.0, 1.0))
    fg = pc1 > thr
    rgb = np.zeros(pc1.shape + (3,), np.uint8)
    rgb[fg] = (255, 0, 0)
    return [
        Histogram(counts, edges, threshold=thr, label="PC1", image_id=im.id),
        Masks(fg[None], ("foreground",), image_id=im.id),
        FeatureImage(rgb, foreground=fg, image_id=im.id),
    ]


def stream(ctx, images, params):
    words = []
    for i in range(params["words"]):
        words.append(f"word{i}")
        ctx.partial(f"word{i} ")
        ctx.cancel.wait(0.05)
        ctx.check_cancelled()
    return [Text(" ".join(words), prompt="stream", image_id=images[0].id)]


def pair(ctx, images, params):
    src, dst = images
    xy = np.array([[1, 1], [5, 5], [10, 3]], dtype=np.float32)
    return [Correspondences(xy, xy + 1, np.array([0.9, 0.5, 0.7]), source_image=src.id, target_image=dst.id)]


def point(ctx, images, params):
    im = images[0]
    _features(ctx, im)
    x, y = params["points"][0]
    values = np.zeros((im.height, im.width), np.float32)
    values[int(y), int(x)] = 1.0
    return [Heatmap(values, label=f"point {x:g},{y:g}", image_id=im.id)]


def setsim(ctx, images, params):
    """A heat map on every image of the set, peaking where the clicked point is (scaled)."""
    src = images[0]
    x, y = params["points"][0]
    out = []
    for im in images:
        _features(ctx, im)
        values = np.zeros((im.height, im.width), np.float32)
        values[int(y / src.height * im.height), int(x / src.width * im.width)] = 1.0
        out.append(Heatmap(values, label=f"similarity to {x:g},{y:g}", image_id=im.id))
        if im is not src:
            best = (x / src.width * im.width, y / src.height * im.height)
            out.append(Correspondences([(x, y)], [best], [1.0], source_image=src.id, target_image=im.id))
    return out


def ask(ctx, images, params):
    return [Text(f"answer to: {params['question']}", prompt=params["question"], image_id=images[0].id)]


def norms(ctx, images, params):
    """Three layer maps; the mask marks the brightest pixel of the chosen layer."""
    im = images[0]
    _features(ctx, im)
    stack = np.stack([np.full((im.height, im.width), float(i)) for i in range(3)]).astype(np.float32)
    for i in range(3):
        stack[i, i, i] = 10.0  # layer i peaks at (i, i)
    layer = params["layer"] % 3
    mask = stack[layer] == stack[layer].max()
    return [
        LayerMaps(stack, ("l0", "l1", "l2"), image_id=im.id),
        Masks(mask[None], (f"outliers of layer {layer}",), image_id=im.id),
    ]


def detect(ctx, images, params):
    """One box and one mask per image quadrant, labelled by brightness, scored by how far the
    quadrant's grey level is from mid grey."""
    image = images[0]
    DETECTED.append(image.path.name)
    for hook in ON_DETECT:
        hook(len(DETECTED))
    if params["fail_on"] and params["fail_on"] in image.path.name:
        raise RuntimeError(f"refusing {image.path.name} on purpose")
    grey = image.pixels.astype(np.float64).mean(axis=2)
    h, w = grey.shape
    boxes, labels, scores, masks = [], [], [], []
    for y0, y1 in ((0, h // 2), (h // 2, h)):
        for x0, x1 in ((0, w // 2), (w // 2, w)):
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
