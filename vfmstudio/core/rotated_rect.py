"""The minimum-area rotated rectangle around points or a mask, in numpy (no cv2 in the core).

The smallest enclosing rectangle has one side on an edge of the convex hull (Freeman & Shapira,
1975; what rotating calipers walk through), so it is the best of the hull's edge directions. Every
direction is tried at once as a matrix product, in chunks so a large hull stays within a few MB.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 256  # hull edges tried per matrix product (256 x hull size floats)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of (N, 2) points, counter-clockwise in (x, y) axes, without
    collinear points (Andrew's monotone chain). Fewer than 3 distinct points come back as they are."""
    pts = np.unique(np.asarray(points, dtype=np.float64).reshape(-1, 2), axis=0)  # sorted by x, then y
    if len(pts) < 3:
        return pts

    def half(seq: np.ndarray) -> list:
        out: list = []
        for p in seq:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-2], out[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.asarray(lower[:-1] + upper[:-1])


def min_area_rect(points: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """``(cx, cy, w, h, angle)`` of the smallest rectangle holding every point: ``w`` runs along the
    direction ``angle`` degrees from the x axis toward y, normalised to [-45, 45) (an upright box has
    angle 0). None without points; degenerate sets give a zero width or height."""
    hull = convex_hull(points)
    if len(hull) == 0:
        return None
    if len(hull) == 1:
        return (float(hull[0, 0]), float(hull[0, 1]), 0.0, 0.0, 0.0)
    edges = np.roll(hull, -1, axis=0) - hull
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    keep = lengths > 0
    u = edges[keep] / lengths[keep, None]  # unit direction of each edge
    best: tuple[float, int, np.ndarray, np.ndarray] | None = None
    for start in range(0, len(u), _CHUNK):
        uc = u[start : start + _CHUNK]
        along = uc @ hull.T  # (edges, hull): coordinate of every vertex along each direction
        across = np.stack([-uc[:, 1], uc[:, 0]], axis=1) @ hull.T
        lo_a, hi_a = along.min(axis=1), along.max(axis=1)
        lo_c, hi_c = across.min(axis=1), across.max(axis=1)
        area = (hi_a - lo_a) * (hi_c - lo_c)
        i = int(np.argmin(area))
        if best is None or area[i] < best[0]:
            best = (
                float(area[i]),
                start + i,
                np.array([lo_a[i], hi_a[i]]),
                np.array([lo_c[i], hi_c[i]]),
            )
    assert best is not None
    _, i, (a0, a1), (c0, c1) = best
    ux, uy = u[i]
    ma, mc = (a0 + a1) / 2, (c0 + c1) / 2
    cx, cy = ma * ux - mc * uy, ma * uy + mc * ux  # back from (along, across) to (x, y)
    w, h = a1 - a0, c1 - c0
    angle = float(np.degrees(np.arctan2(uy, ux)))
    # The same rectangle turned by a multiple of 90 degrees (sides swapped) into [-45, 45).
    turns = int(np.floor((angle + 45.0) / 90.0))
    angle -= 90.0 * turns
    if turns % 2:
        w, h = h, w
    return (float(cx), float(cy), float(w), float(h), angle)


def mask_outline_points(mask: np.ndarray) -> np.ndarray:
    """Corners of the leftmost and rightmost pixel of every row of a boolean mask (pixel (r, c)
    covers [c, c+1] x [r, r+1]): the same convex hull as every pixel's corners, 4 points a row."""
    m = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return np.zeros((0, 2))
    sub = m[rows]
    first = sub.argmax(axis=1)
    last = m.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    r = rows.astype(np.float64)
    xs = np.concatenate([first, first, last + 1, last + 1]).astype(np.float64)
    ys = np.concatenate([r, r + 1, r, r + 1])
    return np.stack([xs, ys], axis=1)


def mask_min_area_rect(mask: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """:func:`min_area_rect` of the pixels of a boolean mask (their square areas, not their
    centres: one pixel is a 1 x 1 box). None for an empty mask."""
    return min_area_rect(mask_outline_points(mask))
