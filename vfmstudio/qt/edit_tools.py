"""Canvas editing tools: select/move/resize (V), draw box (B), polygon (P), line (L), ellipse (O,
Shift for a circle), rotated box (R) and keypoints (K), brush (M) and erase (E) masks, delete (Del).

The controller filters the canvas viewport's mouse events while an editing tool is active (in
"view" mode the canvas pans and clicks feed point tools as before; in the others the middle
button pans). A gesture shows a preview
and becomes exactly one core command when it ends (pushed on the session's undo stack), so a
drag is one undo step and a refused edit changes nothing.
"""

from __future__ import annotations

import numpy as np
import shiboken6
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainterPath

from vfmstudio.core import commands as cmd
from vfmstudio.core.annotations import (
    Annotation,
    AnnotationError,
    Box,
    Keypoints,
    Mask,
    Polygon,
    Polyline,
    annotations_at,
)
from vfmstudio.core.shape_edits import (
    corner_moved,
    ellipse_in_drag,
    radius_moved,
    rotated_box_from_edge,
    rotated_toward,
    visibility_toggled,
)
from vfmstudio.qt.annotation_item import HANDLE_PX, AnnotationItem, handles_of, outline_path
from vfmstudio.qt.project_session import ProjectSession

MODES = ("view", "select", "box", "polygon", "brush", "erase", "polyline", "ellipse", "rotated", "keypoints")
MIN_BOX_PX = 1.0
ROTATE_SNAP = 15.0  # degrees a Shift-drag of the rotation handle turns by
EDIT_TEXT = {
    "box": "Resize box",
    "point": "Move point",
    "corner": "Resize rotated box",
    "rotate": "Rotate",
    "radius": "Change radius",
}


def local_brush_stroke(
    height: int, width: int, points: list[tuple[float, float]], radius: float
) -> np.ndarray:
    """:func:`vfmstudio.core.commands.brush_stroke` computed only around the stroke (a 12 MP
    image would otherwise cost a full-image distance field per segment)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x0 = max(0, int(np.floor(pts[:, 0].min() - radius)) - 1)
    y0 = max(0, int(np.floor(pts[:, 1].min() - radius)) - 1)
    x1 = min(width, int(np.ceil(pts[:, 0].max() + radius)) + 1)
    y1 = min(height, int(np.ceil(pts[:, 1].max() + radius)) + 1)
    out = np.zeros((height, width), dtype=bool)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = cmd.brush_stroke(y1 - y0, x1 - x0, pts - (x0, y0), radius)
    return out


def resized_box(box: Box, handle: tuple[float, float], x: float, y: float) -> Box:
    """``box`` with the handle at fractional position ``handle`` dragged to (x, y)."""
    x0, y0, x1, y1 = box.xyxy
    fx, fy = handle
    if fx == 0.0:
        x0 = x
    elif fx == 1.0:
        x1 = x
    if fy == 0.0:
        y0 = y
    elif fy == 1.0:
        y1 = y
    return Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


class EditController(QObject):
    mode_changed = Signal(str)
    selection_changed = Signal(list)
    hint = Signal(str)  # what the next click does (the keypoint to place), for the status bar

    def __init__(self, canvas, session: ProjectSession, parent: QObject | None = None):
        super().__init__(parent)
        self.canvas = canvas
        self.session = session
        self.mode = "view"
        self.brush_radius = 8.0
        self._current_class = "object"
        self.item: AnnotationItem | None = None
        self.image_key: str | None = None
        self.image_path = None
        self.size = (0, 0)  # width, height
        self.selected: list[str] = []
        self._drag: dict | None = None
        self._polygon: list[tuple[float, float]] = []  # the clicks of the shape being drawn
        self._visibility: list[int] = []  # per click, while drawing keypoints
        self._shift = False  # Shift held during the last mouse event (circle, snapped rotation)
        self._pan_from: QPointF | None = None
        canvas.viewport().installEventFilter(self)
        canvas.installEventFilter(self)
        session.labels_changed.connect(self._on_labels_changed)

    # ---------------------------------------------------------------- state
    @property
    def current_class(self) -> str:
        """The class new shapes get (its skeleton orders the keypoint tool's clicks)."""
        return self._current_class

    @current_class.setter
    def current_class(self, name: str) -> None:
        self._current_class = name
        self._hint_next_keypoint()  # the next keypoint's name comes from this class now

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown edit mode {mode!r} (expected one of {', '.join(MODES)})")
        self._cancel_gesture()
        self.mode = mode
        from PySide6.QtWidgets import QGraphicsView

        self.canvas.setDragMode(
            QGraphicsView.DragMode.ScrollHandDrag if mode == "view" else QGraphicsView.DragMode.NoDrag
        )
        cursor = Qt.CursorShape.ArrowCursor if mode == "select" else Qt.CursorShape.CrossCursor
        if mode == "view":
            self.canvas.viewport().unsetCursor()
        else:
            self.canvas.viewport().setCursor(cursor)
        self.mode_changed.emit(mode)
        if mode == "keypoints":
            self._hint_next_keypoint()
        elif mode == "rotated":
            self.hint.emit("rotated box: click (or drag) two corners of one side, then click its width")

    def attach(self, path, width: int, height: int) -> None:
        """Show the annotations of the image file ``path`` on the canvas's current image (None: none).

        The image joins the project only with its first edit (:meth:`ensure_key`)."""
        if self.item is not None and shiboken6.isValid(self.item) and self.item.scene() is not None:
            self.item.scene().removeItem(self.item)  # same image, new project: the old item goes
        self.item = None  # (a new image cleared the scene, and the old item with it)
        self._cancel_gesture()
        self.image_path = path
        image_key = self.session.display_key(path) if path is not None else None
        self.image_key = image_key
        self.size = (width, height)
        self.select([])
        parent = self.canvas.image_item
        if parent is None:
            return
        self.item = AnnotationItem(width, height)
        self.item.labels = self.session.labels
        self.item.image_key = image_key
        # A sibling of the image item (which sits at the scene origin unscaled), so scene coordinates
        # are image pixels and the prediction layers, children of the image, stay below it.
        self.canvas.scene().addItem(self.item)
        self.item.refresh()

    def select(self, ids: list[str]) -> None:
        ids = [i for i in ids if i in self.session.labels]
        if ids == self.selected:
            return
        self.selected = ids
        if self.item is not None:
            self.item.selected = list(ids)
            self.item.refresh()
        self.selection_changed.emit(list(ids))

    def _on_labels_changed(self) -> None:
        if self.item is not None:
            self.item.labels = self.session.labels
            self.item.refresh()
        kept = [i for i in self.selected if i in self.session.labels]
        if kept != self.selected:
            self.select(kept)

    def ensure_key(self) -> str | None:
        """The project key of the image on view, adding the image to the project (an edit is coming)."""
        if self.image_path is None:
            return None
        key = self.session.key_for(self.image_path)
        if key is not None and key != self.image_key:
            self.image_key = key
            if self.item is not None:
                self.item.image_key = key
        return key

    # ---------------------------------------------------------------- actions
    def delete_selected(self) -> bool:
        if not self.selected:
            return False
        return self.session.push(cmd.RemoveAnnotations(self.selected))

    def set_class_of_selected(self, label: str) -> bool:
        if not self.selected:
            return False
        try:
            command = cmd.change_label(self.session.labels, self.selected, label)
        except AnnotationError as exc:
            self.session.message.emit("warning", str(exc))
            return False
        return self.session.push(command)

    def add_shape(self, shape) -> str | None:
        key = self.ensure_key()
        if key is None:
            self.session.message.emit("warning", "open an image before drawing")
            return None
        ann = Annotation(key, self.current_class, shape)
        if self.session.push(cmd.AddAnnotations([ann])):
            self.select([ann.id])
            return ann.id
        return None

    # ---------------------------------------------------------------- events
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if self.mode == "view" or self.canvas.image_item is None:
            return False
        t = event.type()
        if obj is self.canvas:
            drawing_keys = (Qt.Key.Key_Escape, Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Backspace)
            if t == QEvent.Type.ShortcutOverride and (
                (self._polygon and event.key() in drawing_keys)
                or (self.mode == "keypoints" and event.key() == Qt.Key.Key_N)
            ):
                event.accept()  # while drawing, these keys belong to the shape, not to Run > Cancel
                return True
            if t == QEvent.Type.KeyPress:
                return self._key(event)
            return False
        if self._pan_drag(event, t):
            return True
        if t in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease):
            self._shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if t == QEvent.Type.MouseButtonDblClick and event.button() == Qt.MouseButton.LeftButton:
            if self.mode in ("polygon", "polyline", "keypoints"):
                self._close_polygon()
                return True
            if self.mode == "rotated":  # two quick clicks are two clicks of the box
                self._press(self._image_point(event), event.modifiers())
                return True
            if self.mode == "select":
                return self._toggle_keypoint(self._image_point(event))
            return False
        if t == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            self._press(self._image_point(event), event.modifiers())
            return True
        if t == QEvent.Type.MouseMove:
            if self._drag is not None or self._polygon:
                self._move(self._image_point(event))
                return True
            return False
        if t == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:
            self._release(self._image_point(event))
            return True
        return False

    def _pan_drag(self, event, t) -> bool:
        """Middle-button drag pans in every editing mode (the left button draws there)."""
        if t == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.MiddleButton:
            self._pan_from = event.position()
            return True
        if t == QEvent.Type.MouseMove and self._pan_from is not None:
            d = event.position() - self._pan_from
            self._pan_from = event.position()
            h, v = self.canvas.horizontalScrollBar(), self.canvas.verticalScrollBar()
            h.setValue(h.value() - round(d.x()))
            v.setValue(v.value() - round(d.y()))
            return True
        if t == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.MiddleButton:
            self._pan_from = None
            return True
        return False

    def _image_point(self, event) -> QPointF:
        return self.canvas.mapToScene(event.position().toPoint())

    def _tolerance(self) -> float:
        return HANDLE_PX / max(self.canvas.scale_factor, 1e-6)

    def _clamp(self, p: QPointF) -> tuple[float, float]:
        w, h = self.size
        return (min(max(p.x(), 0.0), float(w)), min(max(p.y(), 0.0), float(h)))

    def _key(self, event) -> bool:
        key = event.key()
        if key == Qt.Key.Key_N and self.mode == "keypoints":  # this landmark is not in the image
            self._add_keypoint((0.0, 0.0), 0)
            return True
        if self._polygon:
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._close_polygon()
                return True
            if key == Qt.Key.Key_Backspace:
                self._polygon.pop()
                del self._visibility[len(self._polygon) :]
                self._update_polygon_preview(None)
                self._hint_next_keypoint()
                return True
            if key == Qt.Key.Key_Escape:
                self._cancel_gesture()
                return True
        if key in (Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight) and self.mode in ("brush", "erase"):
            self.brush_radius = max(1.0, self.brush_radius * (0.8 if key == Qt.Key.Key_BracketLeft else 1.25))
            return True
        return False

    def _press(self, p: QPointF, modifiers) -> None:
        key = self.image_key
        if key is None:
            return
        x, y = self._clamp(p)
        if self.mode in ("box", "ellipse"):
            self._drag = {"kind": f"draw-{self.mode}", "start": (x, y)}
        elif self.mode == "polyline":  # click the points; Enter or a double-click ends the line
            if not self._polygon or self._polygon[-1] != (x, y):
                self._polygon.append((x, y))
            self._update_polygon_preview(QPointF(x, y))
        elif self.mode == "rotated":  # two corners of one edge (clicked, or one drag), then the width
            if len(self._polygon) == 2:
                self._close_polygon((x, y))
                return
            if not self._polygon:
                self._drag = {"kind": "draw-edge", "start": (x, y)}
            if not self._polygon or self._polygon[-1] != (x, y):
                self._polygon.append((x, y))
            self._update_polygon_preview(QPointF(x, y))
        elif self.mode == "keypoints":  # Shift-click: there but hidden (COCO visibility 1)
            self._add_keypoint((x, y), 1 if modifiers & Qt.KeyboardModifier.ShiftModifier else 2)
        elif self.mode == "polygon":
            if len(self._polygon) >= 3:
                fx, fy = self._polygon[0]
                if abs(fx - x) + abs(fy - y) <= 2 * self._tolerance():
                    self._close_polygon()
                    return
            self._polygon.append((x, y))
            self._update_polygon_preview(QPointF(x, y))
        elif self.mode in ("brush", "erase"):
            self._drag = {"kind": self.mode, "points": [(p.x(), p.y())]}
            self._update_brush_preview()
        elif self.mode == "select":
            self._press_select(p, modifiers)

    def _press_select(self, p: QPointF, modifiers) -> None:
        labels = self.session.labels
        tol = self._tolerance()
        if len(self.selected) == 1:
            ann = labels.get(self.selected[0])
            for kind, where, hp in handles_of(ann.shape, self.canvas.scale_factor):
                if abs(hp.x() - p.x()) <= tol and abs(hp.y() - p.y()) <= tol:
                    self._drag = {
                        "kind": kind,
                        "where": where,
                        "ann": ann,
                        "start": (p.x(), p.y()),
                        "moved": False,
                    }
                    return
        hits = annotations_at(labels, self.image_key, p.x(), p.y(), tolerance=tol)
        if not hits:
            self.select([])
            return
        additive = bool(modifiers & (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier))
        if hits[0] not in self.selected:
            self.select([*self.selected, hits[0]] if additive else [hits[0]])
        elif additive:
            self.select([i for i in self.selected if i != hits[0]])
            return
        self._drag = {"kind": "move", "start": (p.x(), p.y()), "moved": False}

    def _move(self, p: QPointF) -> None:
        if self._polygon and self._drag is None:
            self._update_polygon_preview(p)
            return
        drag = self._drag
        if drag is None or self.item is None:
            return
        kind = drag["kind"]
        if kind == "draw-box":
            x0, y0 = drag["start"]
            x1, y1 = self._clamp(p)
            path = QPainterPath()
            path.addRect(QRectF(QPointF(min(x0, x1), min(y0, y1)), QPointF(max(x0, x1), max(y0, y1))))
            self._preview(path)
        elif kind == "draw-ellipse":
            self._preview(outline_path(ellipse_in_drag(drag["start"], self._clamp(p), self._shift)))
        elif kind == "draw-edge":
            self._update_polygon_preview(QPointF(*self._clamp(p)))
        elif kind in ("brush", "erase"):
            drag["points"].append((p.x(), p.y()))
            self._update_brush_preview()
        else:
            drag["moved"] = True
            shape = self._dragged_shape(drag, p)
            if shape is not None:
                self._preview(outline_path(shape) if not isinstance(shape, Mask) else _bbox_path(shape))

    def _dragged_shape(self, drag: dict, p: QPointF):
        sx, sy = drag["start"]
        try:
            if drag["kind"] == "box":
                return resized_box(drag["ann"].shape, drag["where"], *self._clamp(p))
            if drag["kind"] == "vertex":
                part, ring, index = drag["where"]
                return drag["ann"].shape.with_vertex(part, ring, index, self._clamp(p))
            if drag["kind"] == "point":
                return drag["ann"].shape.with_point(drag["where"][0], self._clamp(p))
            if drag["kind"] == "corner":
                return corner_moved(drag["ann"].shape, drag["where"][0], *self._clamp(p))
            if drag["kind"] == "radius":
                return radius_moved(drag["ann"].shape, drag["where"][0], p.x(), p.y())
            if drag["kind"] == "rotate":
                return rotated_toward(drag["ann"].shape, p.x(), p.y(), ROTATE_SNAP if self._shift else 0.0)
            if drag["kind"] == "move" and len(self.selected) == 1:
                ann = self.session.labels.get(self.selected[0])
                return ann.shape.translated(p.x() - sx, p.y() - sy)
        except AnnotationError:
            return None
        return None

    def _release(self, p: QPointF) -> None:
        drag, self._drag = self._drag, None
        if drag is None:
            return
        self._preview(None)
        kind = drag["kind"]
        labels = self.session.labels
        if kind == "draw-box":
            (x0, y0), (x1, y1) = drag["start"], self._clamp(p)
            if abs(x1 - x0) >= MIN_BOX_PX and abs(y1 - y0) >= MIN_BOX_PX:
                self.add_shape(Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        elif kind == "draw-ellipse":  # the ellipse (Shift: the circle) inscribed in the dragged box
            shape = ellipse_in_drag(drag["start"], self._clamp(p), self._shift)
            if 2 * min(shape.rx, shape.ry) >= MIN_BOX_PX:
                self.add_shape(shape)
        elif kind == "draw-edge":  # a drag drew the first edge; a click leaves it to the next click
            end = self._clamp(p)
            sx, sy = drag["start"]
            if len(self._polygon) == 1 and np.hypot(end[0] - sx, end[1] - sy) >= MIN_BOX_PX:
                self._polygon.append(end)
            self._update_polygon_preview(QPointF(*end))
        elif kind in ("brush", "erase"):
            self._finish_stroke(kind, drag["points"])
        elif kind == "move":
            sx, sy = drag["start"]
            dx, dy = p.x() - sx, p.y() - sy
            if drag["moved"] and (dx or dy) and self.selected:
                self.session.push(cmd.move(labels, self.selected, dx, dy))
        elif drag["moved"]:
            shape = self._dragged_shape(drag, p)
            if shape is not None and shape != drag["ann"].shape:
                text = EDIT_TEXT.get(kind, "Move vertex")
                self.session.push(cmd.set_shape(labels, drag["ann"].id, shape, text))

    def _finish_stroke(self, kind: str, points: list[tuple[float, float]]) -> None:
        w, h = self.size
        stroke = local_brush_stroke(h, w, points, self.brush_radius)
        target = None
        if len(self.selected) == 1 and isinstance(self.session.labels.get(self.selected[0]).shape, Mask):
            target = self.selected[0]
        if target is not None:
            self.session.push(cmd.paint_mask(self.session.labels, target, stroke, erase=kind == "erase"))
        elif kind == "brush":
            if stroke.any():
                self.add_shape(Mask.from_array(stroke))
        else:
            self.session.message.emit("warning", "select a mask annotation to erase from")

    def _close_polygon(self, last: tuple[float, float] | None = None) -> None:
        """End the shape being clicked (``last``: the final click of a rotated box)."""
        points, self._polygon = self._polygon, []
        visibility, self._visibility = self._visibility, []
        self._preview(None)
        if self.mode == "rotated":
            if len(points) == 2 and last is not None:
                try:
                    box = rotated_box_from_edge(points[0], points[1], last)
                except AnnotationError:
                    return
                if box.h >= MIN_BOX_PX:
                    self.add_shape(box)
            elif points:
                self.session.message.emit(
                    "warning", "a rotated box needs 3 clicks: two corners of one side, then its width"
                )
            return
        if self.mode == "keypoints":
            self._finish_keypoints(points, visibility)
            return
        if self.mode == "polyline":
            if len(points) >= 2:
                self.add_shape(Polyline(tuple(points)))
            elif points:
                self.session.message.emit("warning", "a line needs at least 2 points")
            return
        if len(points) < 3:
            if points:
                self.session.message.emit("warning", "a polygon needs at least 3 points")
            return
        self.add_shape(Polygon.simple(points))

    def _cancel_gesture(self) -> None:
        self._drag = None
        self._polygon = []
        self._visibility = []
        self._preview(None)

    # ---------------------------------------------------------------- keypoints
    def _skeleton(self):
        return self.session.labels.skeletons.get(self.current_class)

    def _add_keypoint(self, xy: tuple[float, float], visibility: int) -> None:
        """The next keypoint (in the order of the class skeleton's names, if it has one); the
        last name ends the pose."""
        if self.image_key is None:
            return
        self._polygon.append(xy)
        self._visibility.append(visibility)
        skeleton = self._skeleton()
        if skeleton is not None and skeleton.names and len(self._polygon) >= len(skeleton.names):
            self._close_polygon()
            return
        self._update_polygon_preview(None)
        self._hint_next_keypoint()

    def _hint_next_keypoint(self) -> None:
        if self.mode != "keypoints":
            return
        skeleton = self._skeleton()
        n = len(self._polygon)
        if skeleton is not None and n < len(skeleton.names):
            what = f"click {skeleton.names[n]!r} ({n + 1}/{len(skeleton.names)})"
        else:
            what = f"click keypoint {n + 1}"
        self.hint.emit(
            f"{what}; Shift-click: hidden, N: not in the image, Enter: done, Backspace: undo a point"
        )

    def _finish_keypoints(self, points: list, visibility: list[int]) -> None:
        """The pose drawn so far; landmarks of the skeleton not reached are not labelled (0)."""
        if not any(v > 0 for v in visibility):
            if points:
                self.session.message.emit("warning", "keypoints: place at least one point")
            self._hint_next_keypoint()
            return
        skeleton = self._skeleton()
        names: tuple[str, ...] = ()
        if skeleton is not None and skeleton.names:
            names = skeleton.names
            missing = len(names) - len(points)
            points = points[: len(names)] + [(0.0, 0.0)] * missing
            visibility = visibility[: len(names)] + [0] * missing
        self.add_shape(Keypoints(tuple(points), tuple(visibility), names))
        self._hint_next_keypoint()

    def _toggle_keypoint(self, p: QPointF) -> bool:
        """A double-click on a keypoint of the selected pose switches it between visible and hidden."""
        if len(self.selected) != 1:
            return False
        ann = self.session.labels.get(self.selected[0])
        if not isinstance(ann.shape, Keypoints):
            return False
        tol = self._tolerance()
        for kind, where, hp in handles_of(ann.shape, self.canvas.scale_factor):
            if kind == "point" and abs(hp.x() - p.x()) <= tol and abs(hp.y() - p.y()) <= tol:
                self._drag = None
                shape = visibility_toggled(ann.shape, where[0])
                text = "Mark keypoint hidden" if shape.visibility[where[0]] == 1 else "Mark keypoint visible"
                self.session.push(cmd.set_shape(self.session.labels, ann.id, shape, text))
                return True
        return False

    # ---------------------------------------------------------------- previews
    def _preview(self, path: QPainterPath | None) -> None:
        if self.item is None:
            return
        self.item.set_preview(path, QColor(self.session.labels.color_of(self.current_class)))

    def _update_polygon_preview(self, cursor: QPointF | None) -> None:
        if not self._polygon:
            self._preview(None)
            return
        if self.mode == "keypoints":  # the points placed so far, joined by the skeleton
            skeleton = self._skeleton()
            drawn = Keypoints(tuple(self._polygon), tuple(self._visibility))
            self._preview(outline_path(drawn, skeleton.edges if skeleton is not None else ()))
            return
        if self.mode == "rotated" and len(self._polygon) == 2 and cursor is not None:
            try:
                box = rotated_box_from_edge(*self._polygon, (cursor.x(), cursor.y()))
            except AnnotationError:
                box = None
            if box is not None:
                self._preview(outline_path(box))
                return
        path = QPainterPath()
        path.moveTo(*self._polygon[0])
        for x, y in self._polygon[1:]:
            path.lineTo(x, y)
        if cursor is not None:
            path.lineTo(cursor)
        self._preview(path)

    def _update_brush_preview(self) -> None:
        if self._drag is None:
            return
        path = QPainterPath()
        r = self.brush_radius
        for x, y in self._drag["points"]:
            path.addEllipse(QPointF(x, y), r, r)
        self._preview(path)


def _bbox_path(shape) -> QPainterPath:
    x0, y0, x1, y1 = shape.bbox()
    path = QPainterPath()
    path.addRect(QRectF(x0, y0, x1 - x0, y1 - y0))
    return path
