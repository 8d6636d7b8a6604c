"""How a gesture changes a rotated box, an ellipse or keypoints (pure geometry, no Qt), so the
window's tools stay thin and the arithmetic is tested on its own.

Angles follow :class:`~vfmstudio.core.annotations.RotatedBox`: degrees from the x axis toward the y
axis (clockwise on screen). A shape's "up" is its local -y axis, where the rotation handle sits.
"""

from __future__ import annotations

import math
from dataclasses import replace

from vfmstudio.core.annotations import AnnotationError, Ellipse, Keypoints, RotatedBox

Point = tuple[float, float]


def rotated_box_from_edge(p0: Point, p1: Point, q: Point) -> RotatedBox:
    """The box with one edge from ``p0`` to ``p1`` reaching as far as ``q`` on either side of it
    (three clicks: two corners of an edge, then the width)."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    w = math.hypot(dx, dy)
    if w == 0:
        raise AnnotationError("rotated box: the first edge has no length")
    ux, uy = dx / w, dy / w
    nx, ny = -uy, ux  # the box's local +y axis
    d = (q[0] - p0[0]) * nx + (q[1] - p0[1]) * ny
    mx, my = (p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2
    return RotatedBox(mx + nx * d / 2, my + ny * d / 2, w, abs(d), math.degrees(math.atan2(uy, ux)))


def _axes(angle: float) -> tuple[Point, Point]:
    a = math.radians(angle)
    return (math.cos(a), math.sin(a)), (-math.sin(a), math.cos(a))


def corner_moved(box: RotatedBox, corner: int, x: float, y: float) -> RotatedBox:
    """``box`` with corner ``corner`` (its order in :meth:`RotatedBox.corners`) dragged to (x, y):
    the opposite corner stays, the angle is kept (a resize in the box's own axes)."""
    ox, oy = box.corners()[(corner + 2) % 4]
    (ux, uy), (nx, ny) = _axes(box.angle)
    a = (x - ox) * ux + (y - oy) * uy
    b = (x - ox) * nx + (y - oy) * ny
    cx = ox + (a * ux + b * nx) / 2
    cy = oy + (a * uy + b * ny) / 2
    return replace(box, cx=cx, cy=cy, w=abs(a), h=abs(b))


def rotation_handle(shape: RotatedBox | Ellipse, offset: float) -> Point:
    """Where the rotation handle sits: ``offset`` beyond the middle of the shape's top side."""
    half = shape.h / 2 if isinstance(shape, RotatedBox) else shape.ry
    _, (nx, ny) = _axes(shape.angle)
    return (shape.cx - nx * (half + offset), shape.cy - ny * (half + offset))


def rotated_toward(shape: RotatedBox | Ellipse, x: float, y: float, snap: float = 0.0):
    """``shape`` turned about its centre so that its top faces (x, y); ``snap`` > 0 rounds the
    angle to multiples of ``snap`` degrees. The centre itself gives the shape back unchanged."""
    dx, dy = x - shape.cx, y - shape.cy
    if dx == 0 and dy == 0:
        return shape
    angle = math.degrees(math.atan2(dy, dx)) + 90.0
    if snap > 0:
        angle = round(angle / snap) * snap
    return replace(shape, angle=angle)


def radius_moved(ellipse: Ellipse, axis: int, x: float, y: float) -> Ellipse:
    """``ellipse`` with the end of its ``axis`` (0: the rx axis, 1: the ry axis) dragged to (x, y):
    the centre and angle stay; a circle stays a circle."""
    u, n = _axes(ellipse.angle)
    ax, ay = u if axis == 0 else n
    r = abs((x - ellipse.cx) * ax + (y - ellipse.cy) * ay)
    if ellipse.is_circle:
        return replace(ellipse, rx=r, ry=r)
    return replace(ellipse, rx=r) if axis == 0 else replace(ellipse, ry=r)


def ellipse_in_drag(start: Point, end: Point, circle: bool = False) -> Ellipse:
    """The ellipse inside the box dragged from ``start`` to ``end``; with ``circle``, the largest
    circle in that box, in the corner where the drag began."""
    (x0, y0), (x1, y1) = start, end
    if circle:
        side = min(abs(x1 - x0), abs(y1 - y0))
        x1 = x0 + math.copysign(side, x1 - x0)
        y1 = y0 + math.copysign(side, y1 - y0)
        return Ellipse.circle((x0 + x1) / 2, (y0 + y1) / 2, side / 2)
    return Ellipse((x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2)


def visibility_toggled(points: Keypoints, index: int) -> Keypoints:
    """Keypoint ``index`` switched between visible (2) and labelled but hidden (1); a point not
    labelled (0) becomes visible."""
    vis = list(points.visibility)
    vis[index] = 1 if vis[index] == 2 else 2
    return replace(points, visibility=tuple(vis))
