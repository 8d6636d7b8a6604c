"""The closed vocabulary of results that tools return and the window draws.

Every result is a frozen dataclass of numpy arrays in image pixel coordinates (x right, y down,
origin top-left), validated on creation with messages that name the wrong shape. Each has a JSON
form (``to_json`` / ``result_from_json``): masks as COCO RLE, arrays as nested lists or, when a
sidecar folder is given, as ``.npy`` files referenced by name.

Patch-level maps (heat maps, feature images, layer maps) carry an ``extent`` (x0, y0, x1, y1) in
original image pixels: the rectangle their grid covers, so a painter can place them exactly even
when a model cropped the image to a multiple of its patch size.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from vfmstudio.core import rle
from vfmstudio.core.text import clean_label

SCHEMA_VERSION = 1

Extent = tuple[float, float, float, float]


class ResultError(ValueError):
    """A result was built with data of the wrong shape or type."""


# ---------------------------------------------------------------- validation helpers


def _array(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    dtype: Any = None,
    shape: tuple | None = None,
    finite: bool = False,
) -> np.ndarray:
    try:
        arr = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ResultError(f"{name}: cannot be read as an array ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise ResultError(f"{name}: expected {ndim} dimensions, got shape {arr.shape}")
    if shape is not None:
        for axis, want in enumerate(shape):
            if want is not None and arr.shape[axis] != want:
                raise ResultError(f"{name}: expected shape {shape} (None = any), got {arr.shape}")
    if finite and arr.size and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ResultError(f"{name}: contains NaN or infinite values")
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


def _labels(name: str, labels: Any, n: int) -> tuple[str, ...]:
    # Labels are shown in terminals and status bars: one line, no escapes (image ids stay as given).
    out = tuple(str(x) if name == "image_ids" else clean_label(x) for x in labels)
    if len(out) != n:
        raise ResultError(f"{name}: expected {n} labels, got {len(out)}")
    return out


def _extent(value: Any) -> Extent | None:
    if value is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ResultError(f"extent: expected (x0, y0, x1, y1), got {value!r}") from None
    if not (x1 > x0 and y1 > y0) or not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ResultError(f"extent: needs x1 > x0 and y1 > y0, got {value!r}")
    return (x0, y0, x1, y1)


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


# ---------------------------------------------------------------- JSON array codec


class _ArrayCodec:
    """Writes arrays inline or as sidecar .npy files; reads them back."""

    def __init__(self, folder: Path | None, prefix: str = "", inline_limit: int = 4096):
        self.folder = folder
        self.prefix = prefix
        self.inline_limit = inline_limit
        self._n = 0

    def dump(self, arr: np.ndarray | None) -> Any:
        if arr is None:
            return None
        if self.folder is not None and arr.size > self.inline_limit:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{self.prefix}{self._n:03d}.npy"
            self._n += 1
            np.save(self.folder / name, np.ascontiguousarray(arr), allow_pickle=False)
            return {"npy": name, "dtype": str(arr.dtype), "shape": list(arr.shape)}
        if arr.dtype.kind == "f":
            data = np.where(np.isfinite(arr), arr, 0).astype(float).tolist()
        else:
            data = arr.tolist()
        return {"dtype": str(arr.dtype), "shape": list(arr.shape), "data": data}

    def load(self, obj: Any) -> np.ndarray | None:
        if obj is None:
            return None
        if not isinstance(obj, Mapping) or "dtype" not in obj:
            raise ResultError("array: expected an object with 'dtype' and 'data' or 'npy'")
        dtype = np.dtype(str(obj["dtype"]))
        if dtype.kind not in "biuf":
            raise ResultError(f"array: unsupported dtype {dtype}")
        if "npy" in obj:
            if self.folder is None:
                raise ResultError("array: stored in a sidecar .npy file but no folder was given")
            name = str(obj["npy"])
            path = (self.folder / name).resolve()
            if path.parent != self.folder.resolve() or not name.endswith(".npy"):
                raise ResultError(f"array: sidecar name {name!r} escapes its folder")
            arr = _load_npy(path, name)
        else:
            arr = np.asarray(obj.get("data"), dtype=dtype)
        shape = tuple(int(s) for s in obj.get("shape", arr.shape))
        if arr.shape != shape:
            if arr.size == 0 and math.prod(shape) == 0:
                arr = arr.reshape(shape)
            else:
                raise ResultError(f"array: data of shape {arr.shape} does not match declared {shape}")
        return arr.astype(dtype, copy=False)


def _load_npy(path: Path, name: str) -> np.ndarray:
    """``np.load`` of a sidecar after checks: a regular file (a FIFO would block the reader
    forever) whose header claims no more data than the file holds (before anything is allocated)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ResultError(f"array: sidecar {name!r} is not a regular file")
        with open(path, "rb") as fp:
            version = np.lib.format.read_magic(fp)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(fp)
            need = math.prod(shape) * dtype.itemsize
            if need > st.st_size - fp.tell():
                raise ResultError(
                    f"array: sidecar {name!r} claims {need} bytes of data but holds {st.st_size - fp.tell()}"
                )
            fp.seek(0)
            return np.load(fp, allow_pickle=False)
    except ResultError:
        raise
    except (OSError, ValueError) as exc:  # missing, unreadable, not a .npy, object dtype
        raise ResultError(f"array: sidecar {name!r} is unreadable ({' '.join(str(exc).split())})") from None


# ---------------------------------------------------------------- result types


@dataclass(frozen=True, eq=False)
class Result:
    """Base of every result. ``image_id`` names the image the result belongs to."""

    kind: ClassVar[str] = "result"

    def _body(self, codec: _ArrayCodec) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def _from_body(cls, body: Mapping, codec: _ArrayCodec) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_json(self, sidecar_dir: Path | None = None, prefix: str = "", *, inline_limit: int = 4096) -> dict:
        """``inline_limit``: arrays with more elements go to ``sidecar_dir`` (0: every non-empty
        one, exactly, NaN included: what the plugin worker sends back)."""
        codec = _ArrayCodec(
            Path(sidecar_dir) if sidecar_dir else None, prefix or f"{self.kind}-", inline_limit
        )
        return {"type": self.kind, **self._body(codec)}

    def equals(self, other: object) -> bool:
        """Value equality (arrays compared element-wise), used by tests and round trips."""
        if type(self) is not type(other):
            return False
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if (
                    a is None
                    or b is None
                    or a.shape != b.shape
                    or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
                ):
                    return False
            elif a != b:
                return False
        return True


@dataclass(frozen=True, eq=False)
class Classification(Result):
    """Scores for a list of labels, sorted high to low. ``multi_label``: independent (sigmoid) scores."""

    labels: tuple[str, ...]
    scores: np.ndarray
    multi_label: bool = False
    image_id: str | None = None
    kind: ClassVar[str] = "classification"

    def __post_init__(self) -> None:
        scores = _array("scores", self.scores, ndim=1, dtype=np.float32, finite=True)
        labels = _labels("labels", self.labels, scores.shape[0])
        order = np.argsort(-scores, kind="stable")
        sorted_scores = scores[order]
        sorted_scores.flags.writeable = False
        _set(self, "scores", sorted_scores)
        _set(self, "labels", tuple(labels[i] for i in order))

    @property
    def top(self) -> tuple[str, float] | None:
        return (self.labels[0], float(self.scores[0])) if self.labels else None

    def _body(self, codec):
        return {
            "labels": list(self.labels),
            "scores": [float(s) for s in self.scores],
            "multi_label": self.multi_label,
            "image_id": self.image_id,
        }

    @classmethod
    def _from_body(cls, body, codec):
        return cls(
            labels=tuple(body["labels"]),
            scores=np.asarray(body["scores"], dtype=np.float32),
            multi_label=bool(body.get("multi_label", False)),
            image_id=body.get("image_id"),
        )


@dataclass(frozen=True, eq=False)
class Detections(Result):
    """Boxes (N, 4) as x0, y0, x1, y1 in pixels. ``scores`` may be None when a model gives none."""

    boxes_xyxy: np.ndarray
    labels: tuple[str, ...]
    scores: np.ndarray | None = None
    image_id: str | None = None
    kind: ClassVar[str] = "detections"

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes_xyxy, dtype=np.float32)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        boxes = _array("boxes_xyxy", boxes, ndim=2, shape=(None, 4), finite=True)
        if boxes.size and ((boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any()):
            raise ResultError("boxes_xyxy: every box needs x1 >= x0 and y1 >= y0")
        _set(self, "boxes_xyxy", boxes)
        _set(self, "labels", _labels("labels", self.labels, boxes.shape[0]))
        if self.scores is not None:
            _set(
                self,
                "scores",
                _array("scores", self.scores, ndim=1, dtype=np.float32, shape=(boxes.shape[0],), finite=True),
            )

    def __len__(self) -> int:
        return int(self.boxes_xyxy.shape[0])

    def _body(self, codec):
        return {
            "boxes_xyxy": self.boxes_xyxy.astype(float).tolist(),
            "labels": list(self.labels),
            "scores": None if self.scores is None else [float(s) for s in self.scores],
            "image_id": self.image_id,
        }

    @classmethod
    def _from_body(cls, body, codec):
        scores = body.get("scores")
        return cls(
            boxes_xyxy=np.asarray(body["boxes_xyxy"], dtype=np.float32).reshape(-1, 4),
            labels=tuple(body["labels"]),
            scores=None if scores is None else np.asarray(scores, dtype=np.float32),
            image_id=body.get("image_id"),
        )


def _boxes_of_masks(masks: np.ndarray) -> np.ndarray:
    boxes = np.zeros((masks.shape[0], 4), dtype=np.float32)
    for i, m in enumerate(masks):
        ys = np.flatnonzero(m.any(axis=1))
        xs = np.flatnonzero(m.any(axis=0))
        if ys.size:
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


@dataclass(frozen=True, eq=False)
class Masks(Result):
    """Instance or semantic masks (N, H, W) bool at full image size, one label each.

    ``boxes_xyxy`` is derived from the masks when not given (tight boxes, exclusive x1/y1).
    """

    masks: np.ndarray
    labels: tuple[str, ...]
    scores: np.ndarray | None = None
    boxes_xyxy: np.ndarray | None = None
    image_id: str | None = None
    kind: ClassVar[str] = "masks"

    def __post_init__(self) -> None:
        masks = np.asarray(self.masks)
        if masks.ndim == 3 and masks.dtype != bool:
            if masks.dtype.kind not in "biu":
                raise ResultError(f"masks: expected a boolean array, got {masks.dtype}")
            masks = masks != 0
        masks = _array("masks", masks, ndim=3)
        n = masks.shape[0]
        _set(self, "masks", masks)
        _set(self, "labels", _labels("labels", self.labels, n))
        if self.scores is not None:
            _set(
                self,
                "scores",
                _array("scores", self.scores, ndim=1, dtype=np.float32, shape=(n,), finite=True),
            )
        boxes = _boxes_of_masks(masks) if self.boxes_xyxy is None else self.boxes_xyxy
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) if np.size(boxes) == 0 else boxes
        _set(
            self,
            "boxes_xyxy",
            _array("boxes_xyxy", boxes, ndim=2, dtype=np.float32, shape=(n, 4), finite=True),
        )

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    def _body(self, codec):
        h, w = self.size
        assert self.boxes_xyxy is not None  # derived in __post_init__ when not given
        return {
            "size": [h, w],
            "rle": [rle.encode(m) for m in self.masks],
            "labels": list(self.labels),
            "scores": None if self.scores is None else [float(s) for s in self.scores],
            "boxes_xyxy": self.boxes_xyxy.astype(float).tolist(),
            "image_id": self.image_id,
        }

    @classmethod
    def _from_body(cls, body, codec):
        h, w = (int(v) for v in body["size"])
        decoded = [rle.decode(r) for r in body["rle"]]
        for m in decoded:
            if m.shape != (h, w):
                raise ResultError(f"masks: RLE of size {m.shape} inside masks of size {(h, w)}")
        masks = np.stack(decoded) if decoded else np.zeros((0, h, w), dtype=bool)
        scores = body.get("scores")
        return cls(
            masks=masks,
            labels=tuple(body["labels"]),
            scores=None if scores is None else np.asarray(scores, dtype=np.float32),
            boxes_xyxy=np.asarray(body.get("boxes_xyxy", []), dtype=np.float32).reshape(-1, 4)
            if body.get("boxes_xyxy") is not None
            else None,
            image_id=body.get("image_id"),
        )


@dataclass(frozen=True, eq=False)
class Heatmap(Result):
    """A scalar map (h, w), usually patch-level; drawn with a colour map over ``value_range``."""

    values: np.ndarray
    label: str = ""
    value_range: tuple[float, float] | None = None
    extent: Extent | None = None
    image_id: str | None = None
    kind: ClassVar[str] = "heatmap"

    def __post_init__(self) -> None:
        _set(self, "label", clean_label(self.label))  # shown in legends and terminals: one line
        values = _array("values", self.values, ndim=2, dtype=np.float32, finite=True)
        _set(self, "values", values)
        if self.value_range is None:
            lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
            _set(self, "value_range", (lo, hi if hi > lo else lo + 1.0))
        else:
            lo, hi = (float(v) for v in self.value_range)
            if not hi > lo:
                raise ResultError(f"value_range: needs high > low, got {self.value_range}")
            _set(self, "value_range", (lo, hi))
        _set(self, "extent", _extent(self.extent))

    def _body(self, codec):
        assert self.value_range is not None  # derived in __post_init__ when not given
        return {
            "values": codec.dump(self.values),
            "label": self.label,
            "value_range": list(self.value_range),
            "extent": None if self.extent is None else list(self.extent),
            "image_id": self.image_id,
        }

    @classmethod
    def _from_body(cls, body, codec):
        return cls(
            values=codec.load(body["values"]),
            label=str(body.get("label", "")),
            value_range=tuple(body["value_range"]) if body.get("value_range") else None,
            extent=body.get("extent"),
            image_id=body.get("image_id"),
        )


@dataclass(frozen=True, eq=False)
class Histogram(Result):
    """A histogram (``counts`` over ``edges``) with an optional threshold, e.g. DINOv2's first PCA
    component, so the window can draw a live threshold slider over it."""

    counts: np.ndarray
    edges: np.ndarray
    threshold: float | None = None
    label: str = ""
    image_id: str | None = None
    kind: ClassVar[str] = "histogram"

    def __post_init__(self) -> None:
        _set(self, "label", clean_label(self.label))  # shown in legends and terminals: one line
        counts = _array("counts", self.counts, ndim=1, dtype=np.float64, finite=True)
        edges = _array(
            "edges", self.edges, ndim=1, dtype=np.float64, shape=(counts.shape[0] + 1,), finite=True
        )
        if edges.size > 1 and (np.diff(edges) <= 0).any():
            raise ResultError("edges: must increase strictly")
        _set(self, "counts", counts)
        _set(self, "edges", edges)
        if self.threshold is not None:
            _set(self, "threshold", float(self.threshold))

    def _body(self, codec):
        return {
            "counts": self.counts.tolist(),
            "edges": self.edges.tolist(),
            "threshold": self.threshold,
            "label": self.label,
            "image_id": self.image_id,
        }

    @classmethod
    def _from_body(cls, body, codec):
        return cls(
            counts=np.asarray(body["counts"], dtype=np.float64),
            edges=np.asarray(body["edges"], dtype=np.float64),
            threshold=body.get("threshold"),
            label=str(body.get("label", "")),
            image_id=body.get("image_id"),
        )


@dataclass(frozen=True, eq=False)
class FeatureImage(Result):
    """An RGB picture of features (h, w, 3) uint8, e.g. a PCA map; ``foreground`` (h, w) bool."""

    rgb: np.ndarray
    foreground: np.ndarray | None = None
    label: str = ""
    extent: Extent | None = None
    image_id: str | None = None
    kind: ClassVar[str] = "feature_image"

    def __post_init__(self) -> None:
        _set(self, "label", clean_label(self.label))  # shown in legends and terminals: one line
        rgb = np.asarray(self.rgb)
        if rgb.dtype != np.uint8:
            raise ResultError(f"rgb: expected uint8, got {rgb.dtype}")
        rgb = _array("rgb", rgb, ndim=3, shape=(None, None, 3))
        _set(self, "rgb", rgb)
        if self.foreground is not None:
            _set(
                self,
                "foreground",
                _array("foreground", np.asarray(self.foreground).astype(bool), ndim=2, shape=rgb.shape[:2]),
            )
        _set(self, "extent", _extent(self.extent))

    def _body(self, codec):
        return {
            "rgb": codec.dump(self.rgb),
            "foreground": codec.dump(self.foreground),
            "label": self.label,
            "extent": None if self.extent is None else list(self.extent),
            "image_id": self.image_id,
        }

    @classmethod
    def _from_body(cls, body, codec):
        return cls(
            rgb=codec.load(body["rgb"]),
            foreground=codec.load(body.get("foreground")),
            label=str(body.get("label", "")),
            extent=body.get("extent"),
            image_id=body.get("image_id"),
        )


@dataclass(frozen=True, eq=False)
class Correspondences(Result):
    """Point matches between two images, in each image's original pixel coordinates."""

    source_xy: np.ndarray
    target_xy: np.ndarray
    scores: np.ndarray
    source_image: str | None = None
    target_image: str | None = None
    kind: ClassVar[str] = "correspondences"

    def __post_init__(self) -> None:
        src = _array(
            "source_xy",
            np.asarray(self.source_xy, dtype=np.float32).reshape(-1, 2),
            ndim=2,
            shape=(None, 2),
            finite=True,
        )
        n = src.shape[0]
        _set(self, "source_xy", src)
        _set(
            self,
            "target_xy",
            _array(
                "target_xy",
                np.asarray(self.target_xy, dtype=np.float32).reshape(-1, 2),
                ndim=2,
                shape=(n, 2),
                finite=True,
            ),
        )
        _set(self, "scores", _array("scores", self.scores, ndim=1, dtype=np.float32, shape=(n,), finite=True))

    def __len__(self) -> int:
        return int(self.source_xy.shape[0])

    @property
    def image_id(self) -> str | None:
        return self.source_image

    def _body(self, codec):
        return {
            "source_xy": self.source_xy.astype(float).tolist(),
            "target_xy": self.target_xy.astype(float).tolist(),
            "scores": [float(s) for s in self.scores],
            "source_image": self.source_image,
            "target_image": self.target_image,
        }

    @classmethod
    def _from_body(cls, body, codec):
        return cls(
            source_xy=np.asarray(body["source_xy"], dtype=np.float32),
            target_xy=np.asarray(body["target_xy"], dtype=np.float32),
            scores=np.asarray(body["scores"], dtype=np.float32),
            source_image=body.get("source_image"),
            target_image=body.get("target_image"),
        )


@dataclass(frozen=True, eq=False)
class LayerMaps(Result):
    """A stack of maps (L, h, w), one per layer (e.g. token norms), with a name each."""

    values: np.ndarray
    names: tuple[str, ...]
    label: str = ""
    extent: Extent | None = None
    image_id: str | None = None
    kind: ClassVar[str] = "layer_maps"

    def __post_init__(self) -> None:
        _set(self, "label", clean_label(self.label))  # shown in legends and terminals: one line
        values = _array("values", self.values, ndim=3, dtype=np.float32, finite=True)
        _set(self, "values", values)
        _set(self, "names", _labels("names", self.names, values.shape[0]))
        _set(self, "extent", _extent(self.extent))

    def _body(self, codec):
        return {
            "values": codec.dump(self.values),
            "names": list(self.names),
            "label": self.label,
            "extent": None if self.extent is None else list(self.extent),
            "image_id": self.image_id,
        }

    @classmethod
    def _from_body(cls, body, codec):
        return cls(
            values=codec.load(body["values"]),
            names=tuple(body["names"]),
            label=str(body.get("label", "")),
            extent=body.get("extent"),
            image_id=body.get("image_id"),
        )


@dataclass(frozen=True, eq=False)
class Table(Result):
    """A small table of numbers or text (e.g. per-layer norm statistics)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    title: str = ""
    image_id: str | None = None
    kind: ClassVar[str] = "table"

    def __post_init__(self) -> None:
        columns = tuple(str(c) for c in self.columns)
        rows = tuple(tuple(_plain(v) for v in row) for row in self.rows)
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                raise ResultError(f"rows[{i}]: expected {len(columns)} cells, got {len(row)}")
        _set(self, "columns", columns)
        _set(self, "rows", rows)

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def _body(self, codec):
        return {
            "columns": list(self.columns),
            "rows": [list(r) for r in self.rows],
            "title": self.title,
            "image_id": self.image_id,
        }

    @classmethod
    def _from_body(cls, body, codec):
        return cls(
            columns=tuple(body["columns"]),
            rows=tuple(tuple(r) for r in body["rows"]),
            title=str(body.get("title", "")),
            image_id=body.get("image_id"),
        )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ResultError("table cells must be finite numbers")
        return value
    raise ResultError(f"table cells must be numbers or text, got {type(value).__name__}")


@dataclass(frozen=True, eq=False)
class Ranking(Result):
    """Images ranked by a score, best first (e.g. text-to-image search)."""

    image_ids: tuple[str, ...]
    scores: np.ndarray
    names: tuple[str, ...] = ()
    query: str = ""
    kind: ClassVar[str] = "ranking"

    def __post_init__(self) -> None:
        scores = _array("scores", self.scores, ndim=1, dtype=np.float32, finite=True)
        ids = _labels("image_ids", self.image_ids, scores.shape[0])
        names = _labels("names", self.names, scores.shape[0]) if self.names else ids
        order = np.argsort(-scores, kind="stable")
        ranked = scores[order]
        ranked.flags.writeable = False
        _set(self, "scores", ranked)
        _set(self, "image_ids", tuple(ids[i] for i in order))
        _set(self, "names", tuple(names[i] for i in order))

    @property
    def image_id(self) -> None:
        return None

    def _body(self, codec):
        return {
            "image_ids": list(self.image_ids),
            "scores": [float(s) for s in self.scores],
            "names": list(self.names),
            "query": self.query,
        }

    @classmethod
    def _from_body(cls, body, codec):
        return cls(
            image_ids=tuple(body["image_ids"]),
            scores=np.asarray(body["scores"], dtype=np.float32),
            names=tuple(body.get("names", ())),
            query=str(body.get("query", "")),
        )


@dataclass(frozen=True, eq=False)
class Text(Result):
    """Generated text (caption, answer, OCR). ``prompt`` records what was asked."""

    text: str
    prompt: str = ""
    image_id: str | None = None
    kind: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ResultError(f"text: expected a string, got {type(self.text).__name__}")

    def _body(self, codec):
        return {"text": self.text, "prompt": self.prompt, "image_id": self.image_id}

    @classmethod
    def _from_body(cls, body, codec):
        return cls(text=str(body["text"]), prompt=str(body.get("prompt", "")), image_id=body.get("image_id"))


@dataclass(frozen=True, eq=False)
class Embedding(Result):
    """One global vector for an image (or a text, ``image_id`` None): what the folder index stores.

    ``space`` names what the vector is (e.g. "clip image", "clip text", "dino cls"): vectors are only
    compared within one model and space. Not drawn on the canvas.
    """

    vector: np.ndarray
    space: str = ""
    image_id: str | None = None
    kind: ClassVar[str] = "embedding"

    def __post_init__(self) -> None:
        vector = _array("vector", self.vector, ndim=1, dtype=np.float32, finite=True)
        if vector.shape[0] == 0:
            raise ResultError("vector: expected at least one dimension, got 0")
        _set(self, "vector", vector)

    def _body(self, codec):
        return {"vector": codec.dump(self.vector), "space": self.space, "image_id": self.image_id}

    @classmethod
    def _from_body(cls, body, codec):
        return cls(
            vector=codec.load(body["vector"]), space=str(body.get("space", "")), image_id=body.get("image_id")
        )


RESULT_TYPES: dict[str, type[Result]] = {
    cls.kind: cls
    for cls in (
        Classification,
        Detections,
        Masks,
        Heatmap,
        Histogram,
        FeatureImage,
        Correspondences,
        LayerMaps,
        Table,
        Ranking,
        Text,
        Embedding,
    )
}


def result_from_json(obj: Mapping, sidecar_dir: Path | None = None) -> Result:
    if not isinstance(obj, Mapping):
        raise ResultError(f"a result must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    cls = RESULT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ResultError(f"unknown result type {kind!r}")
    try:
        return cls._from_body(obj, _ArrayCodec(Path(sidecar_dir) if sidecar_dir else None))
    except ResultError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultError(f"{kind}: malformed JSON ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------- the envelope


R = TypeVar("R", bound=Result)


@dataclass(frozen=True, eq=False)
class Prediction:
    """What one tool run produced, with everything needed to reproduce it."""

    tool: str
    model: str | None
    image_ids: tuple[str, ...]
    results: tuple[Result, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    image_paths: tuple[str, ...] = ()
    device: str | None = None
    precision: str | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    # One-line remarks on how the run differs from what was asked (a resolution scaled down to fit
    # a token limit, an image decoded at a reduced size); shown by the window and ``run``.
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        results = tuple(self.results)
        for i, r in enumerate(results):
            if not isinstance(r, Result):
                raise ResultError(f"results[{i}]: expected a result type, got {type(r).__name__}")
        _set(self, "results", results)
        _set(self, "image_ids", tuple(self.image_ids))
        _set(self, "image_paths", tuple(str(p) for p in self.image_paths))
        _set(self, "notes", tuple(clean_label(n) for n in self.notes))  # one printable line each

    def of_type(self, cls: type[R]) -> list[R]:
        return [r for r in self.results if isinstance(r, cls)]

    def to_json(self, sidecar_dir: Path | None = None, *, inline_limit: int = 4096) -> dict:
        return {
            "schema": SCHEMA_VERSION,
            "tool": self.tool,
            "model": self.model,
            "image_ids": list(self.image_ids),
            "image_paths": list(self.image_paths),
            "params": _jsonable(self.params),
            "device": self.device,
            "precision": self.precision,
            "timings": {k: round(float(v), 6) for k, v in self.timings.items()},
            "created": self.created,
            "results": [
                r.to_json(sidecar_dir, prefix=f"r{i}-", inline_limit=inline_limit)
                for i, r in enumerate(self.results)
            ],
            **({"notes": list(self.notes)} if self.notes else {}),  # absent when there are none
        }

    @classmethod
    def from_json(cls, obj: Mapping, sidecar_dir: Path | None = None) -> Prediction:
        if not isinstance(obj, Mapping):
            raise ResultError("a prediction must be a JSON object")
        schema = obj.get("schema", SCHEMA_VERSION)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise ResultError(f"prediction schema {schema!r} is newer than this vfmstudio understands")
        try:
            results = obj["results"]
            if not isinstance(results, Sequence):
                raise ResultError("results: expected a list")
            return cls(
                tool=str(obj["tool"]),
                model=obj.get("model"),
                image_ids=tuple(obj.get("image_ids", ())),
                results=tuple(result_from_json(r, sidecar_dir) for r in results),
                params=dict(obj.get("params") or {}),
                image_paths=tuple(obj.get("image_paths", ())),
                device=obj.get("device"),
                precision=obj.get("precision"),
                timings=dict(obj.get("timings") or {}),
                created=str(obj.get("created", "")),
                notes=_notes(obj.get("notes")),
            )
        except KeyError as exc:
            raise ResultError(f"prediction: missing field {exc}") from None


def _notes(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ResultError("notes: expected a list of strings")
    return tuple(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


# ---------------------------------------------------------------- results against their inputs


def check_against_inputs(index: int, result: Result, sizes: Mapping[str, tuple[int, int]]) -> str | None:
    """Why the ``index``-th result of a tool does not fit its input images, or ``None`` if it does.

    ``sizes`` maps each input image id to its (height, width). Masks are checked against the image
    they name or, without an ``image_id``, the image they would be shown on: the only input (as
    the overlay and the window place them), or, with several inputs, one of the right size. A
    result naming an image that was not an input is refused (correspondences and rankings name
    their images in their own fields).
    """
    image_id = getattr(result, "image_id", None)
    if not isinstance(result, Correspondences | Ranking) and image_id is not None and image_id not in sizes:
        return f"result {index} names image {image_id}, which was not an input"
    if not isinstance(result, Masks) or not sizes:
        return None
    if image_id is None and len(sizes) == 1:
        image_id = next(iter(sizes))
    if image_id is not None:
        if result.size != tuple(sizes[image_id]):
            return (
                f"masks of size {result.size} do not match image {image_id} of size {tuple(sizes[image_id])}"
            )
        return None
    if result.size not in {tuple(s) for s in sizes.values()}:
        return (
            f"result {index}: masks of size {result.size} name no image and match none of the "
            f"{len(sizes)} input images"
        )
    return None
