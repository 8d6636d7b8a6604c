"""The tool itself: plain numpy on the image pixels, returning a result type."""

import numpy as np

from vfmstudio.plugin_api import Heatmap


def edges(ctx, images, params):
    image = images[0]
    grey = image.pixels.astype(np.float32).mean(axis=2)
    for i in range(params["smooth"]):
        ctx.progress(i / max(1, params["smooth"]), "smoothing")
        grey = (
            grey + np.roll(grey, 1, 0) + np.roll(grey, -1, 0) + np.roll(grey, 1, 1) + np.roll(grey, -1, 1)
        ) / 5
    gy, gx = np.gradient(grey)
    return [Heatmap(values=np.hypot(gx, gy), label="edge strength", image_id=image.id)]
