"""Where on-canvas labels go so that none covers another (simple greedy placement)."""

from __future__ import annotations

from collections.abc import Sequence

Rect = tuple[float, float, float, float]  # x, y, width, height


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def place_labels(wanted: Sequence[Rect], *, max_steps: int = 200) -> list[tuple[float, float]]:
    """Top-left corners for labels of the given sizes that want to sit at the given corners.

    Labels are placed in reading order (top to bottom, left to right); one that would cover a label
    already placed moves down by its own height until it is clear, so labels anchored at the same
    corner (e.g. one per class at the image origin) stack into a column.
    """
    order = sorted(range(len(wanted)), key=lambda i: (wanted[i][1], wanted[i][0]))
    placed: list[Rect] = []
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(wanted)
    for i in order:
        x, y, w, h = wanted[i]
        for _ in range(max_steps):
            rect = (x, y, w, h)
            clash = [p for p in placed if _overlaps(rect, p)]
            if not clash:
                break
            y = max(p[1] + p[3] for p in clash)  # just under the lowest label it hits
        placed.append((x, y, w, h))
        out[i] = (x, y)
    return out
