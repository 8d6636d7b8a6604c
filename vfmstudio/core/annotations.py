"""Annotations: the labels a user keeps, edits and exports (Qt-free, torch-free).

Shapes are immutable values in image pixel coordinates (x right, y down, origin top-left; box
corners and polygon vertices lie on pixel edges, so a box (0, 0, 2, 2) covers four pixels):

- :class:`Box` (x0, y0, x1, y1)
- :class:`Polygon`: one or more parts, each an exterior ring with optional holes
- :class:`Mask`: a full-image binary mask, held as COCO run lengths (exact, compact, comparable)
- :class:`Points`: one or more points (clicks, loose landmarks)
- :class:`RotatedBox` (cx, cy, w, h, angle in degrees)
- :class:`Ellipse` (centre, radii, angle; a circle when the radii are equal)
- :class:`Polyline`: an open line
- :class:`Keypoints`: named landmarks with COCO visibility; the edges joining them are the class's
  :class:`Skeleton` (``LabelSet.skeletons``)

An :class:`Annotation` is a shape with a class label, an id, the image it belongs to, free
attributes and its :class:`Provenance` (manual, imported, or tool + model + parameters + score).
A :class:`LabelSet` holds the class list (with colours), the annotations per image, image tags and
captions. Edits go through :mod:`vfmstudio.core.commands` so that each one can be undone; the
``_``-prefixed mutators here are for those commands only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from vfmstudio.core import geometry, rle
from vfmstudio.core.results import Classification, Detections, Masks, Prediction, Result, Text
from vfmstudio.core.rotated_rect import mask_min_area_rect
from vfmstudio.core.text import clean_label

if TYPE_CHECKING:
    from vfmstudio.core.review import Decision

Point = tuple[float, float]
RingT = tuple[Point, ...]


class AnnotationError(ValueError):
    """An annotation or an edit was refused; the message says which and why."""


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def _finite(name: str, values: Iterable[float]) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if not all(np.isfinite(out)):
        raise AnnotationError(f"{name}: coordinates must be finite numbers")
    return out


def _ring(name: str, points: Any) -> RingT:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise AnnotationError(f"{name}: expected a list of (x, y) points, got shape {arr.shape}")
    if arr.shape[0] < 3:
        raise AnnotationError(f"{name}: a ring needs at least 3 points, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise AnnotationError(f"{name}: coordinates must be finite numbers")
    return tuple(map(tuple, arr.tolist()))  # plain floats; tolist() is far faster than a loop over rows


# ---------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Box:
    x0: float
    y0: float
    x1: float
    y1: float
    kind: ClassVar[str] = "box"

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = _finite("box", (self.x0, self.y0, self.x1, self.y1))
        if x1 < x0 or y1 < y0:
            raise AnnotationError(f"box: needs x1 >= x0 and y1 >= y0, got {(x0, y0, x1, y1)}")
        for name, v in zip(("x0", "y0", "x1", "y1"), (x0, y0, x1, y1)):
            object.__setattr__(self, name, v)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    def bbox(self) -> tuple[float, float, float, float]:
        return self.xyxy

    def translated(self, dx: float, dy: float) -> Box:
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def to_mask(self, height: int, width: int) -> np.ndarray:
        return geometry.rasterize_rings([self.corners()], height, width)

    def corners(self) -> RingT:
        return ((self.x0, self.y0), (self.x1, self.y0), (self.x1, self.y1), (self.x0, self.y1))

    def to_json(self) -> dict:
        return {"kind": self.kind, "xyxy": list(self.xyxy)}


@dataclass(frozen=True)
class PolygonPart:
    exterior: RingT
    holes: tuple[RingT, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "exterior", _ring("polygon exterior", self.exterior))
        object.__setattr__(self, "holes", tuple(_ring("polygon hole", h) for h in self.holes))


@dataclass(frozen=True)
class Polygon:
    """One or more parts (an object split by occlusion), each with optional holes."""

    parts: tuple[PolygonPart, ...]
    kind: ClassVar[str] = "polygon"

    def __post_init__(self) -> None:
        parts = tuple(p if isinstance(p, PolygonPart) else PolygonPart(*p) for p in self.parts)
        if not parts:
            raise AnnotationError("polygon: needs at least one part")
        object.__setattr__(self, "parts", parts)

    @classmethod
    def simple(cls, points: Any) -> Polygon:
        return cls((PolygonPart(points),))

    @property
    def has_holes(self) -> bool:
        return any(p.holes for p in self.parts)

    def rings(self) -> list[RingT]:
        return [r for p in self.parts for r in (p.exterior, *p.holes)]

    def bbox(self) -> tuple[float, float, float, float]:
        pts = np.asarray([pt for p in self.parts for pt in p.exterior])
        return (
            float(pts[:, 0].min()),
            float(pts[:, 1].min()),
            float(pts[:, 0].max()),
            float(pts[:, 1].max()),
        )

    def translated(self, dx: float, dy: float) -> Polygon:
        def mv(ring: RingT) -> RingT:
            return tuple((x + dx, y + dy) for x, y in ring)

        return Polygon(tuple(PolygonPart(mv(p.exterior), tuple(mv(h) for h in p.holes)) for p in self.parts))

    def with_vertex(self, part: int, ring: int, index: int, xy: Point) -> Polygon:
        """A copy with one vertex moved; ``ring`` 0 is the exterior, 1.. the holes."""
        parts = list(self.parts)
        p = parts[part]
        rings = [list(p.exterior), *[list(h) for h in p.holes]]
        rings[ring][index] = (float(xy[0]), float(xy[1]))
        parts[part] = PolygonPart(tuple(rings[0]), tuple(tuple(h) for h in rings[1:]))
        return Polygon(tuple(parts))

    def to_mask(self, height: int, width: int) -> np.ndarray:
        return geometry.rasterize_parts(((p.exterior, p.holes) for p in self.parts), height, width)

    def area(self) -> float:
        """Geometric area (holes subtracted), in square pixels."""
        return float(
            sum(
                abs(geometry.ring_area(np.asarray(p.exterior)))
                - sum(abs(geometry.ring_area(np.asarray(h))) for h in p.holes)
                for p in self.parts
            )
        )

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "parts": [
                {
                    "exterior": [list(pt) for pt in p.exterior],
                    "holes": [[list(pt) for pt in h] for h in p.holes],
                }
                for p in self.parts
            ],
        }


def _check_mask_size(height: int, width: int) -> None:
    """A mask claims its size; a file can claim 100000x100000 in a few bytes of run lengths and
    every use (export, drawing) would allocate it. The image pixel limit bounds masks too."""
    from vfmstudio.core.image import DEFAULT_MAX_PIXELS

    if height < 0 or width < 0:
        raise AnnotationError(f"mask: negative size {height}x{width}")
    if height * width > DEFAULT_MAX_PIXELS:
        raise AnnotationError(
            f"mask of {width}x{height} pixels exceeds the limit of {DEFAULT_MAX_PIXELS} pixels "
            f"(set VFMSTUDIO_MAX_PIXELS)"
        )


@dataclass(frozen=True)
class Mask:
    """A binary mask of a whole image as COCO run lengths (column-major, starting with zeros)."""

    height: int
    width: int
    counts: tuple[int, ...]
    kind: ClassVar[str] = "mask"

    def __post_init__(self) -> None:
        _check_mask_size(self.height, self.width)
        counts = tuple(map(int, self.counts))  # builtins only: projects hold thousands of masks
        if (counts and min(counts) < 0) or sum(counts) != self.height * self.width:
            raise AnnotationError(f"mask: run lengths do not cover {self.height}x{self.width} pixels")
        object.__setattr__(self, "counts", counts)

    @classmethod
    def from_array(cls, mask: np.ndarray) -> Mask:
        m = np.asarray(mask)
        if m.ndim != 2:
            raise AnnotationError(f"mask: expected a 2-D array, got shape {m.shape}")
        return cls(int(m.shape[0]), int(m.shape[1]), tuple(rle.mask_to_counts(m != 0)))

    def to_array(self) -> np.ndarray:
        return rle.counts_to_mask(list(self.counts), self.height, self.width)

    def to_mask(self, height: int, width: int) -> np.ndarray:
        if (height, width) != (self.height, self.width):
            raise AnnotationError(f"mask of size {self.height}x{self.width} on an image of {height}x{width}")
        return self.to_array()

    @property
    def area(self) -> int:
        return int(sum(self.counts[1::2]))

    def bbox(self) -> tuple[float, float, float, float]:
        box = self.__dict__.get("_bbox")  # immutable: computed once (exports ask for it per format)
        if box is None:
            tight = geometry.mask_bbox(self.to_array())
            box = (0.0, 0.0, 0.0, 0.0) if tight is None else tuple(float(v) for v in tight)
            object.__setattr__(self, "_bbox", box)
        return box

    def to_rle(self) -> dict:
        # Masks are immutable, so the compressed string is computed once (autosaves write it often).
        text = self.__dict__.get("_rle_string")
        if text is None:
            text = rle.counts_to_string(list(self.counts))
            object.__setattr__(self, "_rle_string", text)
        return {"size": [self.height, self.width], "counts": text}

    @classmethod
    def from_rle(cls, obj: Mapping) -> Mask:
        counts = obj.get("counts") if isinstance(obj, Mapping) else None
        if isinstance(counts, str) and isinstance(obj.get("size"), list | tuple) and len(obj["size"]) == 2:
            runs = rle.string_to_counts(counts)
            if min(runs[1:], default=1) > 0:  # canonical runs: no need to go through the pixels
                mask = cls(int(obj["size"][0]), int(obj["size"][1]), tuple(runs))
                object.__setattr__(mask, "_rle_string", counts)
                return mask
        size = obj.get("size") if isinstance(obj, Mapping) else None
        if isinstance(size, list | tuple) and len(size) == 2:
            _check_mask_size(int(size[0]), int(size[1]))  # before rle.decode allocates it
        return cls.from_array(rle.decode(dict(obj)))

    def translated(self, dx: float, dy: float) -> Mask:
        arr = self.to_array()
        out = np.zeros_like(arr)
        dx, dy = int(round(dx)), int(round(dy))
        h, w = arr.shape
        src = arr[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
        out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
        return Mask.from_array(out)

    def to_polygon(self, tolerance: float = 1.0, min_area: float = 0.0) -> Polygon | None:
        parts = geometry.mask_to_parts(self.to_array(), tolerance, min_area)
        if not parts:
            return None
        return Polygon(tuple(PolygonPart(_as_ring(e), tuple(_as_ring(h) for h in hs)) for e, hs in parts))

    def to_json(self) -> dict:
        return {"kind": self.kind, "rle": self.to_rle()}


def _as_ring(arr: np.ndarray) -> RingT:
    return tuple((float(x), float(y)) for x, y in arr)


@dataclass(frozen=True)
class Points:
    points: tuple[Point, ...]
    kind: ClassVar[str] = "points"

    def __post_init__(self) -> None:
        arr = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        if arr.shape[0] == 0:
            raise AnnotationError("points: needs at least one point")
        if not np.isfinite(arr).all():
            raise AnnotationError("points: coordinates must be finite numbers")
        object.__setattr__(self, "points", tuple((float(x), float(y)) for x, y in arr))

    def bbox(self) -> tuple[float, float, float, float]:
        a = np.asarray(self.points)
        return (float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 0].max()), float(a[:, 1].max()))

    def translated(self, dx: float, dy: float) -> Points:
        return Points(tuple((x + dx, y + dy) for x, y in self.points))

    def with_point(self, index: int, xy: Point) -> Points:
        return Points(_moved(self.points, index, xy))

    def to_json(self) -> dict:
        return {"kind": self.kind, "points": [list(p) for p in self.points]}


def _moved(points: tuple[Point, ...], index: int, xy: Point) -> tuple[Point, ...]:
    out = list(points)
    out[index] = (float(xy[0]), float(xy[1]))
    return tuple(out)


def _angle(degrees: float) -> float:
    """An angle in degrees normalised to [-180, 180)."""
    return float((float(degrees) + 180.0) % 360.0 - 180.0)


@dataclass(frozen=True)
class RotatedBox:
    """A box of size ``w`` x ``h`` centred on (``cx``, ``cy``), turned by ``angle`` degrees.

    Positive angles turn the x axis toward the y axis (clockwise on screen, as in CVAT and Qt).
    """

    cx: float
    cy: float
    w: float
    h: float
    angle: float = 0.0
    kind: ClassVar[str] = "rotated_box"

    def __post_init__(self) -> None:
        cx, cy, w, h, a = _finite("rotated box", (self.cx, self.cy, self.w, self.h, self.angle))
        if w < 0 or h < 0:
            raise AnnotationError(f"rotated box: needs w >= 0 and h >= 0, got {(w, h)}")
        for name, v in zip(("cx", "cy", "w", "h", "angle"), (cx, cy, w, h, _angle(a))):
            object.__setattr__(self, name, v)

    @classmethod
    def from_corners(cls, points: Any) -> RotatedBox:
        """The rotated box through 4 corners given in order around the box (either direction)."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if p.shape[0] != 4 or not np.isfinite(p).all():
            raise AnnotationError(f"rotated box: needs 4 finite corner points, got {p.shape[0]}")
        c = p.mean(axis=0)
        w = float(np.hypot(*(p[1] - p[0])))
        h = float(np.hypot(*(p[2] - p[1])))
        angle = float(np.degrees(np.arctan2(p[1][1] - p[0][1], p[1][0] - p[0][0])))
        return cls(float(c[0]), float(c[1]), w, h, angle)

    def corners(self) -> RingT:
        """Corners in the box's own order: top-left, top-right, bottom-right, bottom-left before turning."""
        t = np.radians(self.angle)
        cos, sin = np.cos(t), np.sin(t)
        local = (
            (-self.w / 2, -self.h / 2),
            (self.w / 2, -self.h / 2),
            (self.w / 2, self.h / 2),
            (-self.w / 2, self.h / 2),
        )
        return tuple(
            (float(self.cx + x * cos - y * sin), float(self.cy + x * sin + y * cos)) for x, y in local
        )

    @property
    def is_axis_aligned(self) -> bool:
        return abs(self.angle) < 1e-9 or abs(abs(self.angle) - 180.0) < 1e-9

    def bbox(self) -> tuple[float, float, float, float]:
        a = np.asarray(self.corners())
        return (float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 0].max()), float(a[:, 1].max()))

    def translated(self, dx: float, dy: float) -> RotatedBox:
        return replace(self, cx=self.cx + dx, cy=self.cy + dy)

    def to_mask(self, height: int, width: int) -> np.ndarray:
        return geometry.rasterize_rings([self.corners()], height, width)

    def area(self) -> float:
        return self.w * self.h

    def to_json(self) -> dict:
        return {"kind": self.kind, "cxcywha": [self.cx, self.cy, self.w, self.h, self.angle]}


@dataclass(frozen=True)
class Ellipse:
    """An ellipse with radii ``rx``, ``ry`` about (``cx``, ``cy``), turned by ``angle`` degrees; a
    circle when ``rx == ry``."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float = 0.0
    kind: ClassVar[str] = "ellipse"
    RING_POINTS: ClassVar[int] = 64

    def __post_init__(self) -> None:
        cx, cy, rx, ry, a = _finite("ellipse", (self.cx, self.cy, self.rx, self.ry, self.angle))
        if rx < 0 or ry < 0:
            raise AnnotationError(f"ellipse: needs radii >= 0, got {(rx, ry)}")
        for name, v in zip(("cx", "cy", "rx", "ry", "angle"), (cx, cy, rx, ry, _angle(a))):
            object.__setattr__(self, name, v)

    @classmethod
    def circle(cls, cx: float, cy: float, r: float) -> Ellipse:
        return cls(cx, cy, r, r)

    @property
    def is_circle(self) -> bool:
        return self.rx == self.ry

    def ring(self, n: int = RING_POINTS) -> RingT:
        """The outline as an ``n``-gon (what formats without ellipses receive)."""
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        a = np.radians(self.angle)
        x, y = self.rx * np.cos(t), self.ry * np.sin(t)
        return tuple(
            zip(
                (self.cx + x * np.cos(a) - y * np.sin(a)).tolist(),
                (self.cy + x * np.sin(a) + y * np.cos(a)).tolist(),
            )
        )

    def bbox(self) -> tuple[float, float, float, float]:
        a = np.radians(self.angle)
        hx = float(np.hypot(self.rx * np.cos(a), self.ry * np.sin(a)))
        hy = float(np.hypot(self.rx * np.sin(a), self.ry * np.cos(a)))
        return (self.cx - hx, self.cy - hy, self.cx + hx, self.cy + hy)

    def contains(self, x: float, y: float) -> bool:
        a = np.radians(self.angle)
        dx, dy = x - self.cx, y - self.cy
        u, v = dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)
        return bool(self.rx > 0 and self.ry > 0 and (u / self.rx) ** 2 + (v / self.ry) ** 2 <= 1.0)

    def translated(self, dx: float, dy: float) -> Ellipse:
        return replace(self, cx=self.cx + dx, cy=self.cy + dy)

    def to_mask(self, height: int, width: int) -> np.ndarray:
        return geometry.rasterize_rings([self.ring()], height, width)

    def area(self) -> float:
        return float(np.pi * self.rx * self.ry)

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "center": [self.cx, self.cy],
            "radii": [self.rx, self.ry],
            "angle": self.angle,
        }


@dataclass(frozen=True)
class Polyline:
    """An open line through two or more points (a lane, an edge); it covers no area."""

    points: tuple[Point, ...]
    kind: ClassVar[str] = "polyline"

    def __post_init__(self) -> None:
        arr = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        if arr.shape[0] < 2:
            raise AnnotationError(f"polyline: needs at least 2 points, got {arr.shape[0]}")
        if not np.isfinite(arr).all():
            raise AnnotationError("polyline: coordinates must be finite numbers")
        object.__setattr__(self, "points", tuple((float(x), float(y)) for x, y in arr))

    def bbox(self) -> tuple[float, float, float, float]:
        a = np.asarray(self.points)
        return (float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 0].max()), float(a[:, 1].max()))

    def translated(self, dx: float, dy: float) -> Polyline:
        return Polyline(tuple((x + dx, y + dy) for x, y in self.points))

    def with_point(self, index: int, xy: Point) -> Polyline:
        return Polyline(_moved(self.points, index, xy))

    def distance(self, x: float, y: float) -> float:
        """Shortest distance from (x, y) to the line."""
        a = np.asarray(self.points)
        p0, d = a[:-1], a[1:] - a[:-1]
        length2 = np.maximum((d**2).sum(axis=1), 1e-12)
        t = np.clip(((np.array([x, y]) - p0) * d).sum(axis=1) / length2, 0.0, 1.0)
        nearest = p0 + t[:, None] * d
        return float(np.hypot(nearest[:, 0] - x, nearest[:, 1] - y).min())

    def to_json(self) -> dict:
        return {"kind": self.kind, "points": [list(p) for p in self.points]}


VISIBILITY = (0, 1, 2)  # COCO: 0 not labelled, 1 labelled but hidden, 2 visible


@dataclass(frozen=True)
class Keypoints:
    """The named landmarks of one object (a pose): points with COCO visibility.

    ``names`` (optional, one per point) say which landmark each point is; the edges joining them
    are the class's :class:`Skeleton`. Points with visibility 0 are placeholders (not labelled).
    """

    points: tuple[Point, ...]
    visibility: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    kind: ClassVar[str] = "keypoints"

    def __post_init__(self) -> None:
        arr = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        n = arr.shape[0]
        if n == 0:
            raise AnnotationError("keypoints: needs at least one point")
        if not np.isfinite(arr).all():
            raise AnnotationError("keypoints: coordinates must be finite numbers")
        vis = tuple(int(v) for v in self.visibility) or (2,) * n
        if len(vis) != n or any(v not in VISIBILITY for v in vis):
            raise AnnotationError(
                f"keypoints: needs one visibility (0, 1 or 2) per point ({n}), got {list(vis)}"
            )
        names = tuple(str(v) for v in self.names)
        if names and len(names) != n:
            raise AnnotationError(f"keypoints: {len(names)} names for {n} points")
        object.__setattr__(self, "points", tuple((float(x), float(y)) for x, y in arr))
        object.__setattr__(self, "visibility", vis)
        object.__setattr__(self, "names", names)

    @property
    def labelled(self) -> int:
        return sum(1 for v in self.visibility if v > 0)

    def bbox(self) -> tuple[float, float, float, float]:
        a = np.asarray([p for p, v in zip(self.points, self.visibility) if v > 0] or self.points)
        return (float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 0].max()), float(a[:, 1].max()))

    def translated(self, dx: float, dy: float) -> Keypoints:
        return replace(self, points=tuple((x + dx, y + dy) for x, y in self.points))

    def with_point(self, index: int, xy: Point) -> Keypoints:
        """A copy with one keypoint moved (a keypoint placed by hand is labelled)."""
        vis = list(self.visibility)
        vis[index] = vis[index] or 2
        return replace(self, points=_moved(self.points, index, xy), visibility=tuple(vis))

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "kind": self.kind,
            "points": [list(p) for p in self.points],
            "visibility": list(self.visibility),
        }
        if self.names:
            out["names"] = list(self.names)
        return out


@dataclass(frozen=True)
class Skeleton:
    """A class's keypoint names and the edges joining them (0-based index pairs)."""

    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        edges = tuple((int(a), int(b)) for a, b in self.edges)
        if any(not (0 <= a < len(names) and 0 <= b < len(names)) for a, b in edges):
            raise AnnotationError(f"skeleton: an edge joins a keypoint outside 0..{len(names) - 1}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "edges", edges)

    def to_json(self) -> dict:
        return {"names": list(self.names), "edges": [list(e) for e in self.edges]}

    @classmethod
    def from_json(cls, obj: Mapping) -> Skeleton:
        return cls(tuple(obj.get("names") or ()), tuple(tuple(e) for e in obj.get("edges") or ()))


Shape = Box | Polygon | Mask | Points | RotatedBox | Ellipse | Polyline | Keypoints
SHAPE_TYPES = (Box, Polygon, Mask, Points, RotatedBox, Ellipse, Polyline, Keypoints)
SHAPE_KINDS = tuple(t.kind for t in SHAPE_TYPES)
AREA_SHAPES = (Box, Polygon, Mask, RotatedBox, Ellipse)  # shapes that cover pixels


def shape_from_json(obj: Mapping) -> Shape:
    kind = obj.get("kind") if isinstance(obj, Mapping) else None
    try:
        if kind == "box":
            return Box(*obj["xyxy"])
        if kind == "polygon":
            return Polygon(tuple(PolygonPart(p["exterior"], tuple(p.get("holes", ()))) for p in obj["parts"]))
        if kind == "mask":
            return Mask.from_rle(obj["rle"])
        if kind == "points":
            return Points(tuple(tuple(p) for p in obj["points"]))
        if kind == "rotated_box":
            return RotatedBox(*obj["cxcywha"])
        if kind == "ellipse":
            (cx, cy), (rx, ry) = obj["center"], obj["radii"]
            return Ellipse(cx, cy, rx, ry, obj.get("angle", 0.0))
        if kind == "polyline":
            return Polyline(tuple(tuple(p) for p in obj["points"]))
        if kind == "keypoints":
            return Keypoints(
                tuple(tuple(p) for p in obj["points"]),
                tuple(obj.get("visibility") or ()),
                tuple(obj.get("names") or ()),
            )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, AnnotationError):
            raise
        raise AnnotationError(f"{kind}: malformed shape ({exc})") from None
    raise AnnotationError(f"unknown shape kind {kind!r} (expected one of {', '.join(SHAPE_KINDS)})")


# ---------------------------------------------------------------------------------- annotations


@dataclass(frozen=True)
class Provenance:
    """Where an annotation came from. ``source``: ``manual``, ``model`` or ``import``."""

    source: str = "manual"
    tool: str | None = None
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    score: float | None = None
    created: str = field(default_factory=_now)

    def to_json(self) -> dict:
        out: dict[str, Any] = {"source": self.source, "created": self.created}
        for key in ("tool", "model", "score"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.params:
            out["params"] = dict(self.params)
        return out

    @classmethod
    def from_json(cls, obj: Mapping | None) -> Provenance:
        obj = obj or {}
        score = obj.get("score")
        return cls(
            source=str(obj.get("source", "manual")),
            tool=obj.get("tool"),
            model=obj.get("model"),
            params=dict(obj.get("params") or {}),
            score=None if score is None else float(score),
            created=str(obj.get("created", "")),
        )


@dataclass(frozen=True)
class Annotation:
    image: str
    label: str
    shape: Shape
    id: str = field(default_factory=new_id)
    provenance: Provenance = field(default_factory=Provenance)
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.shape, SHAPE_TYPES):
            raise AnnotationError(f"annotation {self.id}: unknown shape {type(self.shape).__name__}")
        label = clean_label(self.label)  # the same cleaning as class names, so they still match
        if not label:
            raise AnnotationError(f"annotation {self.id}: needs a class label")
        if label != self.label:
            object.__setattr__(self, "label", label)

    @property
    def score(self) -> float | None:
        return self.provenance.score

    def with_shape(self, shape: Shape) -> Annotation:
        return replace(self, shape=shape)

    def with_label(self, label: str) -> Annotation:
        return replace(self, label=label)

    def to_json(self) -> dict:
        out = {
            "id": self.id,
            "label": self.label,
            "shape": self.shape.to_json(),
            "provenance": self.provenance.to_json(),
        }
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        return out

    @classmethod
    def from_json(cls, image: str, obj: Mapping) -> Annotation:
        try:
            return cls(
                image=image,
                label=str(obj["label"]),
                shape=shape_from_json(obj["shape"]),
                id=str(obj.get("id") or new_id()),
                provenance=Provenance.from_json(obj.get("provenance")),
                attributes=dict(obj.get("attributes") or {}),
            )
        except KeyError as exc:
            raise AnnotationError(f"annotation on {image}: missing field {exc}") from None


# ---------------------------------------------------------------------------------- class list

PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
    "#e6beff",
    "#9a6324",
    "#fffac8",
    "#800000",
    "#aaffc3",
    "#808000",
    "#ffd8b1",
    "#000075",
    "#808080",
)


def default_color(name: str) -> str:
    """A stable colour for a class name (the same in every project)."""
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return PALETTE[digest[0] % len(PALETTE)]


@dataclass(frozen=True)
class LabelClass:
    name: str
    color: str = ""

    def __post_init__(self) -> None:
        name = clean_label(self.name)  # one line, no terminal escapes, whatever a file said
        if not name:
            raise AnnotationError("a class needs a non-empty name")
        object.__setattr__(self, "name", name)
        color = self.color or default_color(name)
        if not (
            len(color) == 7 and color[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in color[1:])
        ):
            raise AnnotationError(f"class {name!r}: colour must look like '#rrggbb', got {color!r}")
        object.__setattr__(self, "color", color.lower())

    @property
    def rgb(self) -> tuple[int, int, int]:
        return (int(self.color[1:3], 16), int(self.color[3:5], 16), int(self.color[5:7], 16))


# ----------------------------------------------------------------------------------- label set


#: Most classes a label set holds: far above any dataset (ImageNet-21k has 21841), far below what
#: a hostile file can claim (a YOLO row with class 999999999 and no data.yaml).
MAX_CLASSES = 100_000


class _ClassList(list):
    """The class list with a name -> position index, so lookups are O(1), not a scan.

    ``append`` (what building and undo use) keeps the index; any other change drops it and the
    next lookup rebuilds it once. The first of two classes with the same name wins, as before.
    """

    _index: dict[str, int] | None = None

    @staticmethod
    def find(classes: list[LabelClass], name: str) -> int | None:
        if not isinstance(classes, _ClassList):  # someone assigned a plain list
            return next((i for i, c in enumerate(classes) if c.name == name), None)
        if classes._index is None:
            index: dict[str, int] = {}
            for i, c in enumerate(classes):
                index.setdefault(c.name, i)
            classes._index = index
        return classes._index.get(name)

    def append(self, cls: LabelClass) -> None:
        super().append(cls)
        if self._index is not None:
            self._index.setdefault(cls.name, len(self) - 1)

    # Every other change may move names: drop the index (rebuilt on the next lookup).
    def insert(self, i, cls):
        self._index = None
        super().insert(i, cls)

    def pop(self, i=-1):
        self._index = None
        return super().pop(i)

    def remove(self, cls):
        self._index = None
        super().remove(cls)

    def clear(self) -> None:
        self._index = None
        super().clear()

    def extend(self, items):
        self._index = None
        super().extend(items)

    def sort(self, *args, **kwargs):
        self._index = None
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._index = None
        super().reverse()

    def __setitem__(self, i, value):
        self._index = None
        super().__setitem__(i, value)

    def __delitem__(self, i):
        self._index = None
        super().__delitem__(i)

    def __iadd__(self, items):  # type: ignore[misc]  # list's own signature, not narrowed
        self._index = None
        return super().__iadd__(items)


class LabelSet:
    """Classes, annotations per image (ordered: later is drawn on top), tags and captions.

    Read freely; change only through :mod:`vfmstudio.core.commands` (undoable) or, when building a
    set from scratch (import, tests), through :meth:`add`, :meth:`ensure_class`, :meth:`set_tags`
    and :meth:`set_caption`.
    """

    def __init__(self) -> None:
        self.classes: list[LabelClass] = _ClassList()
        self._by_image: dict[str, list[Annotation]] = {}
        self._where: dict[str, str] = {}
        self.tags: dict[str, tuple[str, ...]] = {}
        self.captions: dict[str, str] = {}
        self.extras: dict[str, dict[str, Any]] = {}  # per image, format data kept for round trips
        self.skeletons: dict[str, Skeleton] = {}  # per class name, for its keypoints
        # Review of pending predictions (vfmstudio.core.review): image -> run id -> Decision, and
        # tool -> {prediction label: project class ("" drops it)}.
        self.decisions: dict[str, dict[str, Decision]] = {}
        self.class_maps: dict[str, dict[str, str]] = {}

    # ---------------------------------------------------------------- reading
    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def class_index(self, name: str) -> int:
        i = _ClassList.find(self.classes, name)
        if i is None:
            raise AnnotationError(f"unknown class {name!r}")
        return i

    def get_class(self, name: str) -> LabelClass | None:
        i = _ClassList.find(self.classes, name)
        return None if i is None else self.classes[i]

    def images(self) -> list[str]:
        keys = set(self._by_image) | set(self.tags) | set(self.captions)
        return sorted(keys)

    def annotations(self, image: str | None = None) -> tuple[Annotation, ...]:
        if image is None:
            return tuple(a for anns in self._by_image.values() for a in anns)
        return tuple(self._by_image.get(image, ()))

    def get(self, ann_id: str) -> Annotation:
        image = self._where.get(ann_id)
        if image is None:
            raise AnnotationError(f"no annotation with id {ann_id!r}")
        for a in self._by_image[image]:
            if a.id == ann_id:
                return a
        raise AssertionError("index out of sync")  # pragma: no cover

    def __contains__(self, ann_id: object) -> bool:
        return ann_id in self._where

    def __len__(self) -> int:
        return len(self._where)

    def index_of(self, ann_id: str) -> int:
        image = self._where[ann_id]
        return next(i for i, a in enumerate(self._by_image[image]) if a.id == ann_id)

    def color_of(self, label: str) -> str:
        c = self.get_class(label)
        return c.color if c else default_color(label)

    # ---------------------------------------------------------------- building (not undoable)
    def ensure_class(self, name: str, color: str = "") -> LabelClass:
        existing = self.get_class(name)
        if existing is not None:
            return existing
        cls = LabelClass(name, color)
        existing = self.get_class(cls.name)  # the name as cleaned may be known already
        if existing is not None:
            return existing
        if len(self.classes) >= MAX_CLASSES:
            raise AnnotationError(f"more than {MAX_CLASSES} classes; refusing to add {cls.name!r}")
        self.classes.append(cls)
        return cls

    def add(self, ann: Annotation) -> Annotation:
        self.ensure_class(ann.label)
        self._insert(ann, None)
        return ann

    def set_tags(self, image: str, tags: Iterable[str]) -> None:
        self._set_tags(image, tuple(tags))

    def set_caption(self, image: str, text: str) -> None:
        self._set_caption(image, text)

    # ---------------------------------------------------------------- primitive mutators (commands)
    def _insert(self, ann: Annotation, index: int | None) -> int:
        if ann.id in self._where:
            raise AnnotationError(f"an annotation with id {ann.id!r} already exists")
        anns = self._by_image.setdefault(ann.image, [])
        pos = len(anns) if index is None else index
        anns.insert(pos, ann)
        self._where[ann.id] = ann.image
        return pos

    def _remove(self, ann_id: str) -> tuple[Annotation, int]:
        image = self._where.get(ann_id)
        if image is None:
            raise AnnotationError(f"no annotation with id {ann_id!r}")
        anns = self._by_image[image]
        pos = next(i for i, a in enumerate(anns) if a.id == ann_id)
        ann = anns.pop(pos)
        if not anns:
            del self._by_image[image]
        del self._where[ann_id]
        return ann, pos

    def _replace(self, ann: Annotation) -> Annotation:
        image = self._where.get(ann.id)
        if image is None:
            raise AnnotationError(f"no annotation with id {ann.id!r}")
        if image != ann.image:
            raise AnnotationError(f"annotation {ann.id}: cannot move between images")
        anns = self._by_image[image]
        pos = next(i for i, a in enumerate(anns) if a.id == ann.id)
        old, anns[pos] = anns[pos], ann
        return old

    def _set_tags(self, image: str, tags: tuple[str, ...]) -> tuple[str, ...]:
        old = self.tags.get(image, ())
        clean = tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))
        if clean:
            self.tags[image] = clean
        else:
            self.tags.pop(image, None)
        return old

    def _set_caption(self, image: str, text: str) -> str:
        old = self.captions.get(image, "")
        if text:
            self.captions[image] = text
        else:
            self.captions.pop(image, None)
        return old

    # ---------------------------------------------------------------- JSON
    def to_json(self) -> dict:
        images: dict[str, Any] = {}
        for key in self.images():
            entry: dict[str, Any] = {}
            if self._by_image.get(key):
                entry["annotations"] = [a.to_json() for a in self._by_image[key]]
            if self.tags.get(key):
                entry["tags"] = list(self.tags[key])
            if self.captions.get(key):
                entry["caption"] = self.captions[key]
            images[key] = entry
        extras = {k: v for k, v in sorted(self.extras.items()) if v}
        out: dict[str, Any] = {
            "classes": [{"name": c.name, "color": c.color} for c in self.classes],
            "images": images,
        }
        if extras:
            out["extras"] = extras
        if self.skeletons:
            out["skeletons"] = {k: v.to_json() for k, v in self.skeletons.items()}
        decisions = {
            k: {run: d.to_json() for run, d in sorted(runs.items())}
            for k, runs in sorted(self.decisions.items())
            if runs
        }
        if decisions:
            out["decisions"] = decisions
        if self.class_maps:
            out["class_maps"] = {t: dict(sorted(m.items())) for t, m in sorted(self.class_maps.items()) if m}
        return out

    @classmethod
    def from_json(cls, obj: Mapping) -> LabelSet:
        out = cls()
        for c in obj.get("classes", ()):
            if out.get_class(str(c["name"])) is not None:
                raise AnnotationError(f"class {c['name']!r} is listed twice")
            out.classes.append(LabelClass(str(c["name"]), str(c.get("color") or "")))
        for key, entry in (obj.get("images") or {}).items():
            for a in entry.get("annotations", ()):
                out._insert(Annotation.from_json(key, a), None)
            if entry.get("tags"):
                out._set_tags(key, tuple(str(t) for t in entry["tags"]))
            if entry.get("caption"):
                out._set_caption(key, str(entry["caption"]))
        out.extras = {str(k): dict(v) for k, v in (obj.get("extras") or {}).items()}
        out.skeletons = {str(k): Skeleton.from_json(v) for k, v in (obj.get("skeletons") or {}).items()}
        from vfmstudio.core.review import Decision  # review builds on this module

        out.decisions = {
            str(k): {str(run): Decision.from_json(d) for run, d in dict(runs).items()}
            for k, runs in dict(obj.get("decisions") or {}).items()
        }
        out.class_maps = {
            str(t): {str(a): str(b) for a, b in dict(m).items()}
            for t, m in dict(obj.get("class_maps") or {}).items()
        }
        for a in out.annotations():
            out.ensure_class(a.label)
        return out

    def state(self) -> dict:
        """A comparable snapshot of everything (tests, dirty checks)."""
        return self.to_json()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------- accepting predictions


@dataclass
class Accepted:
    """What accepting (part of) a prediction adds: new annotations, tags and a caption per image."""

    annotations: list[Annotation] = field(default_factory=list)
    tags: dict[str, list[str]] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys([a.label for a in self.annotations]))


def accept_prediction(
    prediction: Prediction,
    image: str | Mapping[str, str],
    *,
    select: Iterable[tuple[int, int]] | None = None,
    min_score: float | None = None,
    masks_as_polygons: bool = False,
    tolerance: float = 1.0,
    min_area: float = 0.0,
    manual: bool = False,
    masks_as_rotated_boxes: bool = False,
) -> Accepted:
    """Turn a prediction's results (all of them, or the ``select``-ed ``(result, item)`` pairs)
    into annotations with provenance.

    ``image`` is the annotation key for every result, or a mapping from a result's image id to
    the key (multi-image predictions). Detections become boxes; masks become masks or, with
    ``masks_as_polygons``, polygons simplified with ``tolerance`` pixels, or with
    ``masks_as_rotated_boxes``, the smallest rotated box holding them; classifications become
    image tags (the top label, or every label at or above ``min_score`` when multi-label);
    text becomes the caption. ``min_score`` drops items scoring below it.
    """
    chosen = None if select is None else set((int(r), int(i)) for r, i in select)
    out = Accepted()

    def key_of(result: Result) -> str:
        if isinstance(image, str):
            return image
        rid = getattr(result, "image_id", None) or (prediction.image_ids[0] if prediction.image_ids else None)
        if rid is None or rid not in image:
            raise AnnotationError(f"prediction result for image {rid!r} has no matching project image")
        return image[rid]

    def prov(score: float | None) -> Provenance:
        if manual:
            return Provenance("manual", score=score)
        return Provenance(
            "model", tool=prediction.tool, model=prediction.model, params=dict(prediction.params), score=score
        )

    def wanted(r: int, i: int, score: float | None) -> bool:
        if chosen is not None and (r, i) not in chosen:
            return False
        return min_score is None or score is None or score >= min_score

    for r, result in enumerate(prediction.results):
        if isinstance(result, Detections):
            key = key_of(result)
            for i in range(len(result)):
                score = None if result.scores is None else float(result.scores[i])
                if wanted(r, i, score):
                    out.annotations.append(
                        Annotation(
                            key, result.labels[i], Box(*result.boxes_xyxy[i].tolist()), provenance=prov(score)
                        )
                    )
        elif isinstance(result, Masks):
            key = key_of(result)
            for i in range(len(result)):
                score = None if result.scores is None else float(result.scores[i])
                if not wanted(r, i, score):
                    continue
                mask = Mask.from_array(result.masks[i])
                shape: Shape | None = mask
                if masks_as_rotated_boxes:
                    rect = mask_min_area_rect(result.masks[i])
                    shape = None if rect is None else RotatedBox(*rect)
                elif masks_as_polygons:
                    shape = mask.to_polygon(tolerance, min_area)
                if shape is None or (isinstance(shape, Mask) and shape.area == 0):
                    continue
                out.annotations.append(Annotation(key, result.labels[i], shape, provenance=prov(score)))
        elif isinstance(result, Classification):
            key = key_of(result)
            picked = []
            for i, label in enumerate(result.labels):
                score = float(result.scores[i])
                if chosen is not None:
                    if wanted(r, i, score):
                        picked.append(label)
                elif result.multi_label:
                    if min_score is None or score >= min_score:
                        picked.append(label)
                elif i == 0 and (min_score is None or score >= min_score):
                    picked.append(label)
            if picked:
                out.tags.setdefault(key, []).extend(picked)
        elif isinstance(result, Text):
            if chosen is None or (r, 0) in chosen:
                out.captions[key_of(result)] = result.text
    return out


def shape_area(shape: Shape, height: int, width: int) -> int:
    """Pixels covered by a shape on an image of the given size (boxes and polygons rasterised)."""
    if isinstance(shape, Mask):
        return shape.area
    if not isinstance(shape, AREA_SHAPES):
        return 0
    return int(shape.to_mask(height, width).sum())


def annotations_at(labels: LabelSet, image: str, x: float, y: float, *, tolerance: float = 3.0) -> list[str]:
    """Ids of the annotations under image point (x, y), topmost (last drawn) first.

    Boxes, polygons (holes excluded), masks, rotated boxes and ellipses are hit inside; points and
    polylines within ``tolerance`` pixels; keypoints near a labelled point or inside their box.
    """
    hits = []
    for ann in reversed(labels.annotations(image)):
        s = ann.shape
        if isinstance(s, Box):
            hit = s.x0 <= x <= s.x1 and s.y0 <= y <= s.y1
        elif isinstance(s, Polygon):
            hit = any(
                geometry.point_in_ring(x, y, np.asarray(p.exterior))
                and not any(geometry.point_in_ring(x, y, np.asarray(h)) for h in p.holes)
                for p in s.parts
            )
        elif isinstance(s, Mask):
            r, c = int(np.floor(y)), int(np.floor(x))
            hit = 0 <= r < s.height and 0 <= c < s.width and bool(s.to_array()[r, c])
        elif isinstance(s, RotatedBox):
            hit = geometry.point_in_ring(x, y, np.asarray(s.corners()))
        elif isinstance(s, Ellipse):
            hit = s.contains(x, y)
        elif isinstance(s, Polyline):
            hit = s.distance(x, y) <= tolerance
        elif isinstance(s, Keypoints):  # a point, or inside the pose's box (to move it whole)
            x0, y0, x1, y1 = s.bbox()
            hit = (x0 <= x <= x1 and y0 <= y <= y1) or min(
                np.hypot(px - x, py - y)
                for (px, py), v in zip(s.points, s.visibility)
                if v > 0 or not s.labelled
            ) <= tolerance
        else:
            hit = min(np.hypot(px - x, py - y) for px, py in s.points) <= tolerance
        if hit:
            hits.append(ann.id)
    return hits
