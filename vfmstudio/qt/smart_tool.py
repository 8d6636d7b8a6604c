"""The Smart tool (key S): click-to-mask with SAM on the image on view.

Left click adds a positive point, right click a negative one, a left drag draws a box; after each
prompt ``sam.segment`` runs on the inference thread (one supersede key per image, so only the newest
prompt is computed) and the mask preview follows. The image embedding sits in the feature cache, so
only the first prompt on an image runs the image encoder; switching the tool on, or stepping to
another image while it is on, warms the embedding (and the next images' through the prefetcher).
Enter accepts the mask with the current class (a polygon when ``as_polygon``), Esc drops it.

The tool joins the edit tools' exclusive action group; while it is on, the edit controller stays in
"view" mode and this object's event filter takes the canvas's mouse and Enter/Esc events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shiboken6
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QImage, QKeySequence, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsPixmapItem, QGraphicsView, QToolButton

from vfmstudio.core.annotations import AnnotationError, Mask

if TYPE_CHECKING:
    from vfmstudio.qt.main_window import MainWindow

TOOL_ID = "sam.segment"
DEFAULT_MODEL = "facebook/sam-vit-base"
KEY = "S"
MIN_BOX_PX = 3.0  # a press and release closer than this (in screen pixels) is a click, not a box
PREVIEW_ALPHA = 110
Z_PREVIEW = 1000.0  # above the image, its prediction layers and the annotations


class SmartTool(QObject):
    """Point and box prompts -> live SAM mask preview -> one annotation on Enter."""

    preview_changed = Signal()  # a new mask (or none) is on screen
    refined = Signal()  # Refine with SAM added its masks

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.labelling = window.labelling
        self.controller = window.labelling.controller
        self.model_ref: str = str(window.settings.value("smart/model", DEFAULT_MODEL))
        self.as_polygon = str(window.settings.value("smart/polygons", "false")).lower() in ("true", "1")
        self.polygon_tolerance = 1.0
        self.active = False
        self.points: list[tuple[float, float, bool]] = []  # x, y, positive
        self.box: tuple[float, float, float, float] | None = None
        self.mask: np.ndarray | None = None
        self.score: float | None = None
        self._press: tuple[QPointF, QPointF] | None = None  # (scene point, view point) of a left press
        self._job: int | None = None
        self._path: Path | None = None
        self._preview_items: list = [None, None, None]
        self._refines: dict[int, tuple[Path, dict]] = {}  # refine job -> (image, accept options)

        self.action = QAction(f"Smart select ({KEY})", window)
        self.action.setIconText("Smart")
        self.action.setToolTip(
            f"Smart select with SAM ({KEY}): click = object, right click = not object, "
            "drag = box, Enter = accept, Esc = drop"
        )
        self.action.setCheckable(True)
        self.action.setShortcut(QKeySequence(KEY))
        self.action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.action.triggered.connect(lambda _=False: self.activate())
        group = self.labelling.tool_actions["view"].actionGroup()
        if group is not None:  # exclusive with the edit tools: choosing one of them turns this off
            group.addAction(self.action)
            group.triggered.connect(lambda action: action is not self.action and self.deactivate())
        window.addAction(self.action)
        panel = self.labelling.panel
        if hasattr(panel, "add_tool_button"):  # a button next to the edit tools in the Labels dock
            button = QToolButton(panel)
            button.setDefaultAction(self.action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            panel.add_tool_button(button)
        window.canvas.viewport().installEventFilter(self)
        window.canvas.installEventFilter(self)
        window.runner.finished.connect(self._on_finished)
        # Queued: the window shows the new image (current_path, scene) before this runs.
        window.loader.loaded.connect(self._on_image_loaded, Qt.ConnectionType.QueuedConnection)

    # ---------------------------------------------------------------- state
    def activate(self) -> None:
        self.controller.set_mode("view")  # the edit controller lets every event through in this mode
        self.active = True
        self.action.setChecked(True)
        self.window.canvas.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.window.canvas.viewport().setCursor(Qt.CursorShape.CrossCursor)
        self.clear()
        self._warm()

    def deactivate(self) -> None:
        if self.active:
            self.active = False
            self.clear()

    def clear(self) -> None:
        """Drop the prompts and the mask (nothing is added)."""
        self.points, self.box, self.mask, self.score = [], None, None, None
        self._job = None
        self._path = self.window.current_path
        self._draw()

    # ---------------------------------------------------------------- running sam.segment
    def _tool(self):
        host = self.window.host
        tools = getattr(host, "tools", {}) if host is not None else {}
        return tools.get(TOOL_ID)

    def _model(self) -> str:
        panel = self.window.tools
        if panel.tool is not None and panel.tool.id.startswith("sam.") and panel.model_ref():
            return panel.model_ref()
        return self.model_ref

    def _device(self) -> tuple[str, str]:
        panel = self.window.tools
        return panel.device_combo.currentText(), panel.precision_combo.currentText()

    def _warm(self) -> None:
        """Encode the image on view now (and let the prefetcher encode the next ones)."""
        tool, path = self._tool(), self.window.current_path
        if tool is None or path is None:
            return
        from vfmstudio.prefetch import PrefetchRequest

        model, (device, precision) = self._model(), self._device()
        store, services = self.window.images, self.window.controller.services

        def job(ctx) -> None:
            from vfmstudio.execution import prepare_tool

            prepare_tool(
                tool,
                [store.load(path)],
                {},
                model=model,
                device=device,
                precision=precision,
                cancel=ctx.cancel,
                services=services,
            )

        self.window.runner.submit(job, key=f"smart-warm:{path}", source=f"sam · {TOOL_ID} (embedding)")
        # As a run of the tool would: the prefetcher encodes the next images in the folder.
        self.window.controller.prefetch_request = PrefetchRequest(tool, {}, model, device, precision)
        self.window.schedule_prefetch()

    def _submit_run(self, tool, path, params: dict[str, Any], *, key: str, source: str):
        """Run ``tool`` on the image at ``path`` on the inference thread, with this tool's model and device."""
        model, (device, precision) = self._model(), self._device()
        store, services = self.window.images, self.window.controller.services

        def job(ctx):
            from vfmstudio.execution import run_tool

            return run_tool(
                tool,
                [store.load(path)],
                params,
                model=model,
                device=device,
                precision=precision,
                cancel=ctx.cancel,
                on_progress=ctx.progress,
                services=services,
            )

        return self.window.runner.submit(job, key=key, source=source)

    def request(self) -> int | None:
        """Run sam.segment on the current prompts; the mask arrives in :meth:`_on_finished`."""
        tool, path = self._tool(), self.window.current_path
        if tool is None:
            self.window.messages.post("warning", "the Smart tool needs the sam plugin, which is not loaded")
            return None
        if path is None or (not any(p for *_, p in self.points) and self.box is None):
            return None
        params: dict[str, Any] = {"label": self.controller.current_class}
        positive = [(x, y) for x, y, p in self.points if p]
        negative = [(x, y) for x, y, p in self.points if not p]
        if positive:
            params["points"] = tuple(positive)
        if negative:
            params["negative"] = tuple(negative)
        if self.box is not None:
            params["boxes"] = ",".join(f"{v:.2f}" for v in self.box)
        handle = self._submit_run(tool, path, params, key=f"smart:{path}", source=f"sam · {TOOL_ID}")
        self._job, self._path = handle.job_id, path
        return handle.job_id

    def _on_finished(self, result) -> None:
        if result.job_id in self._refines:
            self._on_refined(result)
            return
        if result.job_id != self._job:
            return  # an older prompt's run, another tool's, or a warm-up
        self._job = None
        if not result.ok:
            if result.error is not None:
                self.window.messages.post("error", f"{TOOL_ID}: {result.error.message}")
            return
        if self._path != self.window.current_path:
            return  # the user moved on while it ran
        masks = result.value.results[0]
        self.mask = masks.masks[0] if len(masks) else None
        self.score = float(masks.scores[0]) if len(masks) and masks.scores is not None else None
        self._draw()
        self.preview_changed.emit()

    def _on_image_loaded(self, *args) -> None:
        # Queued, so it may arrive after the tool was switched on for this very image: keep its prompts.
        if self.active and self.window.current_path != self._path:
            self.clear()
            self._warm()

    # ---------------------------------------------------------------- accepting
    def accept(self) -> str | None:
        """Add the mask on screen as an annotation of the current class; returns its id."""
        if self.mask is None or not self.mask.any():
            self.window.messages.post("warning", "no mask to accept: click on an object first")
            return None
        try:
            shape = Mask.from_array(self.mask)
            if self.as_polygon:
                shape = shape.to_polygon(self.polygon_tolerance, 0.0)
        except (AnnotationError, ValueError) as exc:
            self.window.messages.post("warning", f"cannot accept this mask: {exc}")
            return None
        ann_id = self.controller.add_shape(shape)
        if ann_id is not None:
            self.clear()
        return ann_id

    # ---------------------------------------------------------------- refine with SAM (Accept dialog)
    def refine_boxes(self, items: list, **options) -> int | None:
        """Turn the box items of the Accept dialog into masks with ``sam.refine`` (one decoder call),
        keeping their classes; the masks are accepted as one undo step when the run ends, with the
        dialog's ``options`` (masks as polygons or rotated boxes, tolerance)."""
        from vfmstudio.core.results import Detections

        tool, path, image = self._refine_tool(), self.window.current_path, self.window.current
        if tool is None or path is None or image is None:
            self.window.messages.post("warning", "Refine with SAM needs the sam plugin and an image on view")
            return None
        boxes, labels = [], []
        for it in items:
            result = it.prediction.results[it.result]
            if isinstance(result, Detections):
                boxes.append(result.boxes_xyxy[it.index].tolist())
                labels.append(result.labels[it.index])
        if not boxes:
            return None
        detections = Detections(
            boxes_xyxy=np.asarray(boxes, np.float32), labels=tuple(labels), image_id=image.id
        )
        params = {"detections": json.dumps(detections.to_json())}
        handle = self._submit_run(tool, path, params, key=f"smart-refine:{path}", source="sam · sam.refine")
        self._refines[handle.job_id] = (path, options)
        return handle.job_id

    def can_refine(self) -> bool:
        return self._refine_tool() is not None

    def _refine_tool(self):
        host = self.window.host
        return (getattr(host, "tools", {}) if host is not None else {}).get("sam.refine")

    def _on_refined(self, result) -> None:
        path, options = self._refines.pop(result.job_id)
        if not result.ok:
            if result.error is not None:
                self.window.messages.post("error", f"sam.refine: {result.error.message}")
            return
        if path != self.window.current_path:
            self.window.messages.post(
                "warning", "Refine with SAM finished after the image changed; not added"
            )
            return
        from vfmstudio.session.accepting import acceptable_items

        prediction = result.value
        items = acceptable_items([prediction], self.window.current.id)
        self.labelling.accept_items(items, **options)
        self.refined.emit()

    # ---------------------------------------------------------------- events
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if not self.active or self.window.canvas.image_item is None:
            return False
        t = event.type()
        if obj is self.window.canvas:
            keys = (Qt.Key.Key_Escape, Qt.Key.Key_Return, Qt.Key.Key_Enter)
            if (
                t == QEvent.Type.ShortcutOverride
                and event.key() in keys
                and (self.points or self.box or self.mask is not None)
            ):
                event.accept()  # these keys belong to the pending mask, not to Run > Cancel
                return True
            if t == QEvent.Type.KeyPress and event.key() in keys:
                if event.key() == Qt.Key.Key_Escape:
                    self.clear()
                else:
                    self.accept()
                return True
            return False
        button = getattr(event, "button", lambda: None)()
        if t == QEvent.Type.MouseButtonPress and button == Qt.MouseButton.LeftButton:
            self._press = (self._scene_point(event), event.position())
            return True
        if t == QEvent.Type.MouseButtonPress and button == Qt.MouseButton.RightButton:
            x, y = self._clamp(self._scene_point(event))
            self.points.append((x, y, False))
            self._prompt_changed()
            return True
        if t == QEvent.Type.MouseMove and self._press is not None:
            self._draw(drag_to=self._scene_point(event))
            return True
        if (
            t == QEvent.Type.MouseButtonRelease
            and button == Qt.MouseButton.LeftButton
            and self._press is not None
        ):
            (start, start_view), self._press = self._press, None
            end, d = self._scene_point(event), event.position() - start_view
            if abs(d.x()) + abs(d.y()) >= MIN_BOX_PX:
                (x0, y0), (x1, y1) = self._clamp(start), self._clamp(end)
                if x1 != x0 and y1 != y0:
                    self.box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            else:
                self.points.append((*self._clamp(start), True))
            self._prompt_changed()
            return True
        return t in (QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick) and button in (
            Qt.MouseButton.LeftButton,
            Qt.MouseButton.RightButton,
        )

    def _prompt_changed(self) -> None:
        self._draw()
        self.request()

    def _scene_point(self, event) -> QPointF:
        return self.window.canvas.mapToScene(event.position().toPoint())

    def _clamp(self, p: QPointF) -> tuple[float, float]:
        """Inside the image: the last pixel column/row is at width - 1 so the point is never outside it."""
        image = self.window.current
        w, h = (image.width, image.height) if image is not None else (1, 1)
        return (min(max(p.x(), 0.0), w - 0.01), min(max(p.y(), 0.0), h - 0.01))

    # ---------------------------------------------------------------- drawing
    def _items(self) -> tuple[QGraphicsPixmapItem, QGraphicsPathItem, QGraphicsPathItem]:
        """The mask, positive marks (and box) and negative marks, recreated after a new image cleared
        the scene."""
        scene = self.window.canvas.scene()
        if not all(
            i is not None and shiboken6.isValid(i) and i.scene() is scene for i in self._preview_items
        ):
            self._preview_items = [QGraphicsPixmapItem(), QGraphicsPathItem(), QGraphicsPathItem()]
            for z, item in enumerate(self._preview_items):
                item.setZValue(Z_PREVIEW + z)
                scene.addItem(item)
        return tuple(self._preview_items)  # type: ignore[return-value]

    def _draw(self, drag_to: QPointF | None = None) -> None:
        if self.window.canvas.image_item is None:
            return
        mask_item, positive_item, negative_item = self._items()
        colour = QColor(self.labelling.session.labels.color_of(self.controller.current_class))
        if self.mask is None:
            mask_item.setPixmap(QPixmap())
        else:
            rgba = np.zeros((*self.mask.shape, 4), np.uint8)
            rgba[self.mask] = (colour.red(), colour.green(), colour.blue(), PREVIEW_ALPHA)
            image = QImage(
                rgba.data, rgba.shape[1], rgba.shape[0], rgba.shape[1] * 4, QImage.Format.Format_RGBA8888
            )
            mask_item.setPixmap(QPixmap.fromImage(image.copy()))  # copy: the QImage borrows rgba's memory
        r = 4.0 / max(self.window.canvas.scale_factor, 1e-6)  # 4 screen pixels at any zoom
        box = self.box
        if drag_to is not None and self._press is not None:
            (x0, y0), (x1, y1) = self._clamp(self._press[0]), self._clamp(drag_to)
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        for item, positive, fill in (
            (positive_item, True, QColor(40, 200, 80)),
            (negative_item, False, QColor(230, 50, 50)),
        ):
            path = QPainterPath()
            for x, y, p in self.points:
                if p == positive:
                    path.addEllipse(QPointF(x, y), r, r)
            if positive and box is not None:
                path.addRect(QRectF(QPointF(box[0], box[1]), QPointF(box[2], box[3])))
            pen = QPen(fill.darker(160))
            pen.setCosmetic(True)
            pen.setWidth(2)
            item.setPen(pen)
            item.setBrush(
                QBrush(fill) if not (positive and box is not None) else QBrush(Qt.BrushStyle.NoBrush)
            )
            item.setPath(path)
