"""Transcriptions of the reference code our PaliGemma post-processing is measured against.

- ``reference_objects``: the regex parser of the PaliGemma demo (``(.*?)``, four adjacent ``<locNNNN>``,
  optional sixteen ``<segNNN>``, an optional label up to ``;``), matched repeatedly from the start of the
  text, each match consuming what it read.
- ``evaluator_masks``: big_vision's segmentation evaluator (``evaluators/proj/paligemma/transfers/
  segmentation.py``): box = loc tokens / 1023, each coordinate times the image size truncated with int();
  no mask unless y_max > y_min and x_max > x_min and the pixel box is non-empty; the 64x64 map resized to
  the box with PIL's bilinear filter and thresholded at 0.

Written from the published behaviour for tests and benchmarks; the application never imports it.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

_REFERENCE_RE = re.compile(
    r"(.*?)" + r"<loc(\d{4})>" * 4 + r"\s*" + "(?:%s)?" % (r"<seg(\d{3})>" * 16) + r"\s*([^;<>]+)? ?(?:; )?"
)


def reference_objects(text: str) -> list[tuple[tuple[int, ...], str, tuple[int, ...] | None]]:
    objects = []
    while text:
        m = _REFERENCE_RE.match(text)
        if not m:
            break
        groups = m.groups()
        locs = tuple(int(v) for v in groups[1:5])
        segs = groups[5:21]
        seg = None if segs[0] is None else tuple(int(v) for v in segs)
        objects.append((locs, (groups[21] or "").strip(), seg))
        text = text[len(m.group(0)) :]
    return objects


def evaluator_masks(
    m64s: np.ndarray, locs: list[tuple[int, int, int, int]], height: int, width: int
) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for m64, t in zip(m64s, locs):
        if not (t[2] > t[0] and t[3] > t[1]):
            out.append(None)
            continue
        bb = np.asarray(t, dtype=np.int32) / 1023
        y1, x1, y2, x2 = map(int, (bb[0] * height, bb[1] * width, bb[2] * height, bb[3] * width))
        if x2 <= x1 or y2 <= y1:
            out.append(None)
            continue
        mi = (
            np.asarray(
                Image.fromarray(np.asarray(m64, np.float32)).resize(
                    [x2 - x1, y2 - y1], resample=Image.BILINEAR
                )
            )
            > 0.0
        )
        full = np.zeros((height, width), dtype=bool)
        full[y1:y2, x1:x2] = mi
        out.append(full)
    return out
