"""SAM tools: click-to-mask (points, negative points, boxes), box refinement, automatic masks.

Registering is cheap: torch and the tool code (``_tools``, ``_decode``, ``_embedding``) are imported
only when a tool runs. The image embedding is computed once per (model, precision, image) and kept in
the feature cache, so each click runs only the prompt encoder and mask decoder; see docs/tools/sam.md.
"""

from __future__ import annotations

from vfmstudio.plugin_api import InputKind, ModelSpec, Param, ParamType, ToolSpec, hookimpl

DEFAULT_MODEL = "facebook/sam-vit-base"
_APACHE = "Apache-2.0"
DECLARED_MODELS = (
    ModelSpec("facebook/sam-vit-base", "sam", "SAM ViT-B", 94, _APACHE, default=True),
    ModelSpec("facebook/sam-vit-large", "sam", "SAM ViT-L", 312, _APACHE),
    ModelSpec("facebook/sam-vit-huge", "sam", "SAM ViT-H", 641, _APACHE),
    ModelSpec("facebook/sam2.1-hiera-tiny", "sam", "SAM 2.1 Hiera-T", 39, _APACHE),
    ModelSpec("facebook/sam2.1-hiera-small", "sam", "SAM 2.1 Hiera-S", 46, _APACHE),
    ModelSpec("facebook/sam2.1-hiera-base-plus", "sam", "SAM 2.1 Hiera-B+", 81, _APACHE),
    ModelSpec("facebook/sam2.1-hiera-large", "sam", "SAM 2.1 Hiera-L", 224, _APACHE),
    # SAM 3 takes text prompts; its own licence, accepted on the hub (gated).
    ModelSpec("facebook/sam3", "sam3", "SAM 3", 848, "SAM License", gated=True, default=True),
)
POINT_FAMILIES = ("sam",)

LABEL = Param("label", ParamType.STR, "object", help="the class name the masks get")
BOXES = Param(
    "boxes",
    ParamType.STR,
    "",
    help="boxes 'x0,y0,x1,y1; x0,y0,x1,y1' in pixels; each box alone "
    "gives one mask (one decoder call for all)",
)


def _tool(
    name: str,
    title: str,
    params: tuple[Param, ...],
    description: str,
    families: tuple[str, ...] = POINT_FAMILIES,
    default: str = DEFAULT_MODEL,
) -> ToolSpec:
    return ToolSpec(
        id=f"sam.{name}",
        title=title,
        run=f"vfmstudio_sam._tools:{name}",
        inputs=InputKind.IMAGE,
        params=params,
        model_families=families,
        default_model=default,
        returns=("masks",),
        description=description,
        prepare="vfmstudio_sam._embedding:prepare",
    )


TOOLS = (
    _tool("segment", "Segment by clicks", (
        # Empty tuples, not None: a resolved None would not survive a second resolve_params (the window's).
        Param("points", ParamType.POINTS, (), help="points on the object, 'x,y; x,y' in pixels"),
        Param("negative", ParamType.POINTS, (), help="points off the object, 'x,y; x,y' in pixels"),
        BOXES, LABEL),
          "A mask for the object under the points (and inside at most one box), or one mask per box. One "
          "point gives the best of SAM's three proposals by predicted IoU."),
    _tool("refine", "Refine boxes to masks", (
        BOXES,
        Param("detections", ParamType.STR, "",
              help="a prior result whose boxes become masks: a prediction JSON file (vfmstudio run --json) or "
                   "inline JSON of Detections/Masks; each mask keeps its box's label"),
        LABEL),
          "Turns boxes (e.g. from paligemma.detect or the selected annotations) into masks in one batched "
          "decoder call, keeping their classes."),
    _tool("everything", "Segment everything", (
        Param("points_per_side", ParamType.INT, 16, minimum=2, maximum=64, help="the point grid is n x n"),
        Param("pred_iou_thresh", ParamType.FLOAT, 0.88, minimum=-1.0, maximum=1.0,
              help="keep masks whose predicted IoU is above this"),
        Param("stability_thresh", ParamType.FLOAT, 0.95, minimum=0.0, maximum=1.0,
              help="keep masks whose stability score (IoU of the masks cut at logits +1 and -1) is above this"),
        Param("nms", ParamType.CHOICE, "box", choices=("box", "mask"), help="overlap measure for suppression"),
        Param("nms_thresh", ParamType.FLOAT, 0.7, minimum=0.0, maximum=1.0,
              help="drop a mask overlapping a better one by more than this IoU"),
        Param("min_area", ParamType.INT, 0, minimum=0, help="drop masks smaller than this many pixels"),
        Param("max_masks", ParamType.INT, 200, minimum=1, maximum=4096, help="keep at most this many masks")),
          "Automatic masks over a grid of single-point prompts, filtered by predicted IoU and stability, "
          "then non-maximum suppression."),
    _tool("text", "Segment a concept (SAM 3)", (
        Param("text", ParamType.STR, required=True, help="the concept, e.g. 'yellow school bus'"),
        Param("threshold", ParamType.FLOAT, 0.5, minimum=0.0, maximum=1.0,
              help="keep instances whose score (detection x presence probability) is above this"),
        Param("mask_threshold", ParamType.FLOAT, 0.5, minimum=0.0, maximum=1.0,
              help="a pixel is in the mask where its probability is above this"),
        Param("label", ParamType.STR, "", help="the class name the masks get (default: the text)")),
          "Every instance of a named concept as masks with boxes and scores (SAM 3 checkpoints only).",
          families=("sam3",), default="facebook/sam3"),
)  # fmt: skip


@hookimpl
def vfm_register_tools() -> list[ToolSpec]:
    return list(TOOLS)


@hookimpl
def vfm_register_models() -> list[ModelSpec]:
    return list(DECLARED_MODELS)
