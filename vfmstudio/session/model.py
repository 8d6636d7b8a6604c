"""The session: what is open, what is on view, what each tool predicted, and the rerun rules.

The rules are plain methods that return a :class:`RunRequest` (or a :class:`Refusal` naming what is
missing, or None when there is nothing to do); the Qt controller submits requests and hands the
finished predictions back through :meth:`Session.record`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfmstudio.core.results import (
    Correspondences,
    Detections,
    FeatureImage,
    Heatmap,
    Histogram,
    LayerMaps,
    Masks,
    Prediction,
)
from vfmstudio.core.tools import InputKind, ParamType, ToolRegistry, ToolSpec
from vfmstudio.session.requests import Outcome, Refusal, RunRequest, View

# Result kinds drawn on an image (the rest go to the Results dock).
ON_IMAGE_KINDS = (Masks, Detections, Heatmap, FeatureImage, LayerMaps)


@dataclass(frozen=True)
class Placement:
    """Where a finished prediction should be shown: the central view to bring forward (None: leave
    the user where they are) and the image ids that view shows."""

    view: View | None
    image_ids: tuple[str, ...] = ()


def points_param(tool: ToolSpec | None) -> str | None:
    """The name of the tool's first image-points parameter (similarity's query point)."""
    if tool is None:
        return None
    return next((p.name for p in tool.params if p.type is ParamType.POINTS), None)


def text_param(tool: ToolSpec | None) -> str | None:
    """The first free-text parameter (a question or a prompt)."""
    if tool is None:
        return None
    return next((p.name for p in tool.params if p.type is ParamType.TEXT), None)


def result_image_id(result: Any, prediction: Prediction) -> str | None:
    """The image a result belongs to: its own id, else the prediction's first image."""
    rid = getattr(result, "image_id", None)
    if rid is not None:
        return rid
    return prediction.image_ids[0] if prediction.image_ids else None


def placement_of(prediction: Prediction, origin: View | None = None) -> Placement:
    """A set run (several images with maps or masks) shows on the Set tab, matches between two
    images on the Pair tab, anything else on the Image tab. A run started by a click stays on the
    tab the click was made on."""
    ids = tuple(prediction.image_ids)
    on_images = any(isinstance(r, ON_IMAGE_KINDS) for r in prediction.results)
    if origin is not None:
        return Placement(origin, ids)
    if len(ids) >= 2 and on_images:
        return Placement("set", ids)
    if len(ids) >= 2 and prediction.of_type(Correspondences):
        return Placement("pair", ids[:2])
    if on_images or prediction.of_type(Correspondences):
        return Placement("image", ids[:1])
    return Placement(None, ids)


class Session:
    """The window's state. ``path_of`` maps an image content id to its file (the image store)."""

    def __init__(self, path_of: Callable[[str], Path | None] | None = None):
        self._path_of = path_of or (lambda _id: None)
        self.roots: list[Path] = []
        self.paths: list[Path] = []
        self.current_path: Path | None = None
        self.current_id: str | None = None
        self.selection: list[Path] = []
        self.tools = ToolRegistry()  # a former tool id (saved predictions) finds its tool
        self.device = "auto"
        self.precision = "auto"
        self._predictions: dict[str, dict[str, Prediction]] = {}  # image id -> tool id -> latest

    # ------------------------------------------------------------------ what is open
    def open(self, roots: Iterable[Path], files: Iterable[Path]) -> None:
        self.roots = [Path(p) for p in roots]
        self.paths = list(files)
        self.selection = [p for p in self.selection if p in self.paths]

    @property
    def folder(self) -> Path | None:
        folders = [p for p in self.roots if p.is_dir()]
        return folders[0] if folders else None

    def show(self, path: Path | None, image_id: str | None = None) -> None:
        """The image on view (``image_id`` once it is decoded)."""
        if path != self.current_path:
            self.current_id = None
        self.current_path = path
        if image_id is not None:
            self.current_id = image_id

    def select(self, paths: Iterable[Path]) -> None:
        self.selection = list(paths)

    def set_tools(self, tools: Iterable[ToolSpec]) -> None:
        self.tools = ToolRegistry()
        for tool in tools:
            self.tools.add(tool)

    def path_of(self, image_id: str) -> Path | None:
        return self._path_of(image_id)

    def paths_of(self, image_ids: Iterable[str]) -> tuple[Path, ...] | None:
        paths = tuple(self._path_of(i) for i in image_ids)
        return paths if paths and all(p is not None for p in paths) else None  # type: ignore[return-value]

    # ------------------------------------------------------------------ predictions
    def record(self, prediction: Prediction) -> None:
        for image_id in prediction.image_ids:
            self._predictions.setdefault(image_id, {})[prediction.tool] = prediction

    def predictions_on(self, image_id: str | None) -> list[Prediction]:
        return list(self._predictions.get(image_id, {}).values()) if image_id else []

    def prediction(self, image_id: str | None, tool_id: str) -> Prediction | None:
        return self._predictions.get(image_id, {}).get(tool_id) if image_id else None

    def has_run(self, tool_id: str, image_id: str | None) -> bool:
        return self.prediction(image_id, tool_id) is not None

    def forget(self, image_id: str, predictions: Iterable[Prediction]) -> list[Prediction]:
        """Drop ``predictions`` from ``image_id`` (their layers were cleared); returns those dropped,
        so an undo can :meth:`restore` them."""
        by_tool = self._predictions.get(image_id, {})
        dropped = []
        for pred in predictions:
            if by_tool.get(pred.tool) is pred:
                del by_tool[pred.tool]
                dropped.append(pred)
        return dropped

    def restore(self, image_id: str, predictions: Iterable[Prediction]) -> None:
        """Undo of :meth:`forget`; a newer run of the same tool keeps its place."""
        for pred in predictions:
            self._predictions.setdefault(image_id, {}).setdefault(pred.tool, pred)

    def histogram_prediction(self) -> tuple[Prediction, Histogram] | None:
        """The newest prediction on the image on view that carries a threshold histogram."""
        for prediction in reversed(self.predictions_on(self.current_id)):
            for r in prediction.of_type(Histogram):
                if getattr(r, "image_id", None) in (None, self.current_id):
                    return prediction, r
        return None

    # ------------------------------------------------------------------ inputs
    def input_paths(self, tool: ToolSpec) -> tuple[Path, ...] | Refusal:
        """The images a run takes: the image on view, or the selection with it first (the source
        of a pair, the image that query points refer to)."""
        if self.current_path is None and (tool.inputs is InputKind.IMAGE or not self.selection):
            return Refusal("open an image first")
        if tool.inputs is InputKind.IMAGE:
            return (self.current_path,)  # type: ignore[return-value]
        selected = list(self.selection)
        if self.current_path in selected:
            selected.remove(self.current_path)
            selected.insert(0, self.current_path)  # type: ignore[arg-type]
        if tool.inputs is InputKind.PAIR:
            if len(selected) != 2:
                return Refusal(
                    f"{tool.title} needs two selected images (Ctrl+click), {len(selected)} selected"
                )
            return tuple(selected)
        return tuple(selected) if selected else (self.current_path,)  # type: ignore[return-value]

    def request(
        self,
        tool: ToolSpec,
        params: Mapping[str, Any],
        model: str | None,
        *,
        paths: tuple[Path, ...] | None = None,
        live: bool = False,
        origin: View | None = None,
    ) -> Outcome:
        """A request on ``paths`` (default: :meth:`input_paths`) with the session's device."""
        if paths is None:
            found = self.input_paths(tool)
            if isinstance(found, Refusal):
                return found
            paths = found
        return RunRequest(tool, dict(params), tuple(paths), model, self.device, self.precision, live, origin)

    # ------------------------------------------------------------------ the rules
    def run_request(self, tool: ToolSpec | None, params: Mapping[str, Any], model: str | None) -> Outcome:
        """The Run button."""
        if tool is None:
            return Refusal("pick a tool first")
        return self.request(tool, params, model)

    def edit_request(self, tool: ToolSpec | None, params: Mapping[str, Any], model: str | None) -> Outcome:
        """A parameter edited with "Rerun on every edit": rerun only once the tool ran on this image."""
        if tool is None or not self.has_run(tool.id, self.current_id):
            return None
        return self.request(tool, params, model, live=True)

    def click_request(
        self,
        tool: ToolSpec | None,
        params: Mapping[str, Any],
        model: str | None,
        *,
        view: View,
        image_ids: tuple[str, ...] = (),
    ) -> Outcome:
        """A click on an image (``params`` already holds the clicked point). It always runs: a live
        rerun on cached features once the tool ran there, a first run otherwise; the result stays
        on ``view``. On the Pair and Set tabs the run takes the images that view shows."""
        if tool is None:
            return Refusal("pick a tool first: a click gives a point to tools such as similarity")
        if points_param(tool) is None:
            return None
        paths = None
        if view != "image":
            paths = self.paths_of(image_ids)
            if paths is None:
                return Refusal(f"{tool.title}: the images of the {view} view are no longer open")
        elif self.current_path is None:
            return Refusal("open an image first")
        first = image_ids[0] if view != "image" and image_ids else self.current_id
        live = self.has_run(tool.id, first)
        return self.request(tool, params, model, paths=paths, live=live, origin=view)

    def threshold_request(self, value: float) -> Outcome:
        """The histogram's threshold dragged: rerun the tool that drew it with the new threshold."""
        found = self.histogram_prediction()
        if found is None:
            return None
        prediction = found[0]
        tool = self.tools.get(prediction.tool)
        if tool is None or "threshold" not in tool.param_names:
            return None
        paths = self.paths_of(prediction.image_ids)
        if paths is None:
            return None
        params = {**prediction.params, "threshold": value}
        return self.request(tool, params, prediction.model, paths=paths, live=True)

    def scrub_request(self, prediction: Prediction, index: int) -> Outcome:
        """A layer stack scrubbed: a tool that takes a ``layer`` parameter reruns for that layer
        (on cached features), so what it computes follows the layer shown."""
        tool = self.tools.get(prediction.tool)
        if tool is None or "layer" not in tool.param_names or prediction.params.get("layer") == index:
            return None
        paths = self.paths_of(prediction.image_ids)
        if paths is None:
            return None
        return self.request(
            tool, {**prediction.params, "layer": index}, prediction.model, paths=paths, live=True
        )

    def question_request(
        self, tool: ToolSpec | None, params: Mapping[str, Any], model: str | None
    ) -> Outcome:
        """A question typed in the Results dock (``params`` holds it in the first text field)."""
        if text_param(tool) is None:
            return Refusal("to ask a question, select a tool that takes one (e.g. paligemma.ask)")
        return self.run_request(tool, params, model)
