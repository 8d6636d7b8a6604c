"""Mask <-> polygon geometry in numpy (no OpenCV: the core stays free of cv2).

Conventions: pixel (row r, column c) covers the square [c, c+1) x [r, r+1); a pixel belongs to a
polygon when its centre (c + 0.5, r + 0.5) is inside (even-odd rule over a part's rings).

:func:`mask_to_parts` traces the pixel-edge boundary of a mask, so with ``tolerance=0`` the
polygons rasterise back to exactly the same pixels. Foreground is 4-connected: two pixels that
touch only at a corner become separate parts. Outer rings run clockwise on screen (positive
shoelace area with y down), holes anticlockwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

Ring = np.ndarray  # (K, 2) float64 x, y; closed implicitly (last point != first point)

# Direction codes of boundary edges: 0 = +x, 1 = +y, 2 = -x, 3 = -y (y points down).
_STEP = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)


def _boundary_edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start corners (E, 2) and directions (E,) of every fg/bg pixel edge, interior on the right."""
    box = mask_bbox(mask)
    if box is None:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    x0, y0, x1, y1 = box
    m = np.pad(np.asarray(mask[y0:y1, x0:x1], dtype=bool), 1)  # work on the crop: masks are small
    # Between columns j and j+1 of the padded crop lies the vertical line x = j (crop coordinates);
    # the pixel row i - 1 spans y = i - 1 .. i.
    rows, cols = np.nonzero(m[:, 1:] != m[:, :-1])
    up = m[rows, cols + 1]  # foreground on the right of the line: a left edge, walked upwards
    v_start = np.stack([cols, np.where(up, rows, rows - 1)], axis=1)
    v_dir = np.where(up, 3, 1)
    # Between rows i and i+1 lies the horizontal line y = i; padded column j spans x = j - 1 .. j.
    rows, cols = np.nonzero(m[1:, :] != m[:-1, :])
    right = m[rows + 1, cols]  # foreground below the line: a top edge, walked towards +x
    h_start = np.stack([np.where(right, cols - 1, cols), rows], axis=1)
    h_dir = np.where(right, 0, 2)
    starts = np.concatenate([v_start, h_start]).astype(np.int64) + (x0, y0)
    return starts, np.concatenate([v_dir, h_dir]).astype(np.int64)


def _trace_rings(mask: np.ndarray) -> list[np.ndarray]:
    """Closed boundary loops as integer corner coordinates, collinear corners removed."""
    starts, dirs = _boundary_edges(mask)
    n = starts.shape[0]
    if n == 0:
        return []
    width = int(starts[:, 0].max()) + 2
    start_key = starts[:, 1] * width + starts[:, 0]
    ends = starts + _STEP[dirs]
    end_key = ends[:, 1] * width + ends[:, 0]
    order = np.argsort(start_key, kind="stable")
    sorted_keys = start_key[order]
    lo = np.searchsorted(sorted_keys, end_key, "left")
    hi = np.searchsorted(sorted_keys, end_key, "right")
    nxt = order[np.minimum(lo, n - 1)]
    # Where two edges leave a corner (pixels touching diagonally), turn right: that hugs the
    # current pixel and keeps diagonal neighbours apart (4-connectivity).
    ambiguous = np.flatnonzero(hi - lo == 2)
    if ambiguous.size:
        first = order[lo[ambiguous]]
        second = order[lo[ambiguous] + 1]
        want = (dirs[ambiguous] + 1) % 4
        nxt[ambiguous] = np.where(dirs[first] == want, first, second)
    visited = np.zeros(n, dtype=bool)
    rings = []
    nxt_list = nxt.tolist()
    for e0 in range(n):
        if visited[e0]:
            continue
        loop = []
        e = e0
        while not visited[e]:
            visited[e] = True
            loop.append(e)
            e = nxt_list[e]
        idx = np.asarray(loop)
        d = dirs[idx]
        turn = d != np.roll(d, 1)  # keep only corners where the direction changes
        rings.append(starts[idx[turn]])
    return rings


def ring_area(ring: np.ndarray) -> float:
    """Signed shoelace area; positive for clockwise-on-screen (y down) rings."""
    r = np.asarray(ring, dtype=np.float64)
    if r.shape[0] < 3:
        return 0.0
    x, y = r[:, 0], r[:, 1]
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def point_in_ring(x: float, y: float, ring: np.ndarray) -> bool:
    xs, ys = ring[:, 0], ring[:, 1]
    xn, yn = np.roll(xs, -1), np.roll(ys, -1)
    crosses = (ys > y) != (yn > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = xs + (y - ys) * (xn - xs) / (yn - ys)
    return bool(np.count_nonzero(crosses & (x < xi)) % 2)


def _simplify_open(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker on an open chain; keeps both ends."""
    keep = np.zeros(points.shape[0], dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, points.shape[0] - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg = points[b] - points[a]
        rel = points[a + 1 : b] - points[a]
        length = float(np.hypot(*seg))
        if length == 0.0:
            dist = np.hypot(rel[:, 0], rel[:, 1])
        else:
            dist = np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / length
        i = int(np.argmax(dist))
        if dist[i] > tolerance:
            mid = a + 1 + i
            keep[mid] = True
            stack.append((a, mid))
            stack.append((mid, b))
    return points[keep]


def simplify_ring(ring: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker simplification of a closed ring (max deviation ``tolerance`` pixels)."""
    r = np.asarray(ring, dtype=np.float64)
    if tolerance <= 0 or r.shape[0] <= 4:
        return r
    far = int(np.argmax(np.hypot(r[:, 0] - r[0, 0], r[:, 1] - r[0, 1])))
    first = _simplify_open(r[: far + 1], tolerance)
    second = _simplify_open(np.concatenate([r[far:], r[:1]]), tolerance)
    return np.concatenate([first, second[1:-1]])


def mask_to_parts(
    mask: np.ndarray, tolerance: float = 0.0, min_area: float = 0.0
) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Polygons of a boolean mask as ``[(exterior, [holes...]), ...]``, largest part first.

    ``tolerance`` (pixels) simplifies the rings; rings whose area falls to ``min_area`` or below,
    or that keep fewer than 3 points, are dropped.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    outers: list[tuple[np.ndarray, float]] = []
    holes: list[tuple[np.ndarray, tuple[float, float]]] = []
    for ring in _trace_rings(mask):
        area = ring_area(ring)
        if area > 0:
            outers.append((ring, area))
        else:
            # A foreground pixel next to the hole: the pixel to the right of its first edge.
            d = ring[1] - ring[0]
            step = np.sign(d)
            right = np.array([-step[1], step[0]])
            cx, cy = ring[0] + 0.5 * step + 0.5 * right
            holes.append((ring, (float(cx), float(cy))))
    parts: list[tuple[np.ndarray, list[np.ndarray], float]] = [(r, [], a) for r, a in outers]
    for ring, (cx, cy) in holes:
        best = None
        for i, (outer, _, area) in enumerate(parts):
            if (best is None or area < parts[best][2]) and point_in_ring(cx, cy, outer):
                best = i
        if best is not None:
            parts[best][1].append(ring)
    parts.sort(key=lambda p: -p[2])
    out = []
    for outer, inner, _ in parts:
        ext = simplify_ring(outer.astype(np.float64), tolerance)
        if ext.shape[0] < 3 or abs(ring_area(ext)) <= min_area:
            continue
        kept = [
            h
            for h in (simplify_ring(h.astype(np.float64), tolerance) for h in inner)
            if h.shape[0] >= 3 and abs(ring_area(h)) > min_area
        ]
        out.append((ext, kept))
    return out


def rasterize_rings(rings: Iterable[Sequence[Sequence[float]]], height: int, width: int) -> np.ndarray:
    """Pixels whose centres lie inside the rings (even-odd rule), as an (height, width) bool mask."""
    xs0, ys0, xs1, ys1 = [], [], [], []
    for ring in rings:
        r = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
        if r.shape[0] < 3:
            continue
        nxt = np.roll(r, -1, axis=0)
        xs0.append(r[:, 0])
        ys0.append(r[:, 1])
        xs1.append(nxt[:, 0])
        ys1.append(nxt[:, 1])
    out = np.zeros((height, width), dtype=bool)
    if not xs0 or height == 0 or width == 0:
        return out
    x0, y0, x1, y1 = (np.concatenate(a) for a in (xs0, ys0, xs1, ys1))
    keep = y0 != y1
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    ymin, ymax = np.minimum(y0, y1), np.maximum(y0, y1)
    # Rows whose centre r + 0.5 lies in [ymin, ymax): r in [ceil(ymin - .5), ceil(ymax - .5)).
    r_lo = np.clip(np.ceil(ymin - 0.5), 0, height).astype(np.int64)
    r_hi = np.clip(np.ceil(ymax - 0.5), 0, height).astype(np.int64)
    counts = r_hi - r_lo
    if counts.sum() == 0:
        return out
    edge = np.repeat(np.arange(counts.size), counts)
    rows = r_lo[edge] + (np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts, counts))
    yc = rows + 0.5
    xc = x0[edge] + (yc - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    cols = np.clip(np.ceil(xc - 0.5), 0, width).astype(np.int64)
    # Parity of crossings left of each pixel, computed only over the rows and columns touched.
    r0, r1 = int(rows.min()), int(rows.max()) + 1
    c0, c1 = int(cols.min()), int(cols.max()) + 1
    span = c1 - c0
    toggles = np.bincount((rows - r0) * span + (cols - c0), minlength=(r1 - r0) * span)
    inside = (np.cumsum(toggles.reshape(r1 - r0, span) & 1, axis=1, dtype=np.int32) & 1).astype(bool)
    out[r0:r1, c0 : min(c1, width)] = inside[:, : min(c1, width) - c0]
    return out


def rasterize_parts(parts: Iterable[tuple[Sequence, Sequence]], height: int, width: int) -> np.ndarray:
    """Union of polygon parts, each an (exterior, holes) pair filled with the even-odd rule."""
    out = np.zeros((height, width), dtype=bool)
    for exterior, holes in parts:
        out |= rasterize_rings([exterior, *holes], height, width)
    return out


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box (x0, y0, x1, y1) with exclusive x1/y1, or None for an empty mask."""
    m = np.asarray(mask, dtype=bool)
    ys = np.flatnonzero(m.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(m.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1
