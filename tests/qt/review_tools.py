"""A detector for the review tests, registered as the module ``review`` (the tool family).

``review.detect`` gives four boxes, one per image quadrant, with fixed labels and scores, and with
``masks`` the same four quadrants as masks, and nothing at all on images whose path contains
``nothing_on``; with ``tags`` also a scene classification: every number a test checks is written here.
"""

from __future__ import annotations

import numpy as np

from vfmstudio.plugin_api import Classification, Detections, Masks, Param, ParamType, ToolSpec, hookimpl

LABELS = ("cat", "dog", "cat", "bird")
SCORES = (0.95, 0.70, 0.40, 0.15)
SCENES = ("indoor", "outdoor")


@hookimpl
def vfm_register_tools():
    return [
        ToolSpec(
            id="review.detect",
            title="Review detector",
            run="review:detect",
            returns=("detections", "masks", "classification"),
            params=(
                Param("masks", ParamType.BOOL, False),
                Param("nothing_on", ParamType.STR, ""),
                Param("tags", ParamType.BOOL, False),
            ),
        )
    ]


def quadrants(w: int, h: int) -> list[tuple[int, int, int, int]]:
    return [(0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2), (0, h // 2, w // 2, h), (w // 2, h // 2, w, h)]


def detect(ctx, images, params):
    image = images[0]
    h, w = image.pixels.shape[:2]
    if params["nothing_on"] and params["nothing_on"] in str(image.path):  # a detector that found nothing
        return [Detections(np.zeros((0, 4), np.float32), (), np.zeros(0, np.float32), image_id=image.id)]
    boxes = np.array(quadrants(w, h), dtype=np.float32)
    scores = np.array(SCORES, dtype=np.float32)
    tags = []
    if params["tags"]:  # a scene classifier's answer next to the boxes: the top label is the tag
        tags = [Classification(labels=SCENES, scores=np.array([0.8, 0.2], np.float32), image_id=image.id)]
    if params["masks"]:
        masks = np.zeros((4, h, w), dtype=bool)
        for i, (x0, y0, x1, y1) in enumerate(quadrants(w, h)):
            masks[i, y0:y1, x0:x1] = True
        return [Masks(masks, LABELS, scores, image_id=image.id), *tags]
    return [Detections(boxes, LABELS, scores, image_id=image.id), *tags]
