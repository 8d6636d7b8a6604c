"""Annotation formats: export and import codecs, registered through ``vfm_register_formats``.

This module only declares the formats (cheap to import); each codec lives in an ``_``-module that
is imported when it runs. See docs/formats.md for what each format keeps and drops.
"""

from __future__ import annotations

from vfmstudio.plugin_api import FormatSpec, Param, ParamType, hookimpl

__version__ = "0.1.0"

_M = "vfmstudio_formats"


def _split() -> tuple[Param, Param]:
    """The train/val split of the YOLO exporters."""
    return (
        Param(
            "val_fraction",
            ParamType.FLOAT,
            0.0,
            minimum=0.0,
            maximum=1.0,
            help="share of images put in the val split (0: train only)",
        ),
        Param("seed", ParamType.INT, 0, help="seed of the train/val split"),
    )


def _copy(default: bool) -> Param:
    return Param("copy_images", ParamType.BOOL, default, help="copy the image files into the export folder")


def _tolerance(default: float = 1.0) -> Param:
    return Param(
        "tolerance",
        ParamType.FLOAT,
        default,
        minimum=0.0,
        maximum=50.0,
        help="pixels a mask outline may deviate when masks become polygons (0: exact pixel edges)",
    )


_IMAGE_ROOT = Param(
    "image_root",
    ParamType.STR,
    "",
    help="folder the image paths in the files are relative to (paths never leave it); "
    "default: the dataset folder",
)
_FILENAME = "filename"

FORMATS = (
    FormatSpec(
        "coco",
        "COCO instances JSON",
        exporter=f"{_M}._coco:export",
        importer=f"{_M}._coco:import_",
        extensions=(".json",),
        params=(
            Param(_FILENAME, ParamType.STR, "annotations.json", help="name of the JSON file"),
            Param(
                "mask_format",
                ParamType.CHOICE,
                "polygon",
                choices=("polygon", "rle"),
                help="how masks are written (shapes with holes are always RLE)",
            ),
            _tolerance(),
            _copy(False),
            _IMAGE_ROOT,
        ),
        description="Boxes, polygons, masks (polygons or RLE), keypoints with skeletons, attributes, iscrowd; "
        "reads annotations/instances_<split>.json + images/<split>/.",
    ),
    FormatSpec(
        "yolo",
        "YOLO detect",
        exporter=f"{_M}._yolo:export_detect",
        importer=f"{_M}._yolo:import_",
        extensions=(".txt", ".yaml"),
        params=(
            *_split(),
            _copy(True),
            _IMAGE_ROOT,
        ),
        description="images/<split>/ and labels/<split>/*.txt rows 'cls cx cy w h' (normalised), data.yaml; "
        "reads data.yaml paths, Roboflow and Darknet layouts.",
    ),
    FormatSpec(
        "yolo-seg",
        "YOLO segment",
        exporter=f"{_M}._yolo:export_segment",
        importer=f"{_M}._yolo:import_",
        extensions=(".txt", ".yaml"),
        params=(
            *_split(),
            _tolerance(),
            _copy(True),
            _IMAGE_ROOT,
        ),
        description="labels/<split>/*.txt rows 'cls x1 y1 ... xn yn' (normalised) and data.yaml.",
    ),
    FormatSpec(
        "yolo-obb",
        "YOLO oriented boxes",
        exporter=f"{_M}._yolo:export_obb",
        importer=f"{_M}._yolo:import_obb",
        extensions=(".txt", ".yaml"),
        params=(
            *_split(),
            _copy(True),
            _IMAGE_ROOT,
        ),
        description="labels/<split>/*.txt rows 'cls x1 y1 x2 y2 x3 y3 x4 y4' (normalised corners).",
    ),
    FormatSpec(
        "yolo-pose",
        "YOLO pose",
        exporter=f"{_M}._yolo:export_pose",
        importer=f"{_M}._yolo:import_",
        extensions=(".txt", ".yaml"),
        params=(
            *_split(),
            _copy(True),
            _IMAGE_ROOT,
        ),
        description="labels/<split>/*.txt rows 'cls cx cy w h' then 'x y v' per keypoint; kpt_shape.",
    ),
    FormatSpec(
        "dota",
        "DOTA oriented boxes",
        exporter=f"{_M}._dota:export",
        importer=f"{_M}._dota:import_",
        extensions=(".txt",),
        params=(_copy(True), _IMAGE_ROOT),
        description="labelTxt/*.txt rows 'x1 y1 x2 y2 x3 y3 x4 y4 class difficult' in pixels.",
    ),
    FormatSpec(
        "voc",
        "Pascal VOC XML",
        exporter=f"{_M}._voc:export",
        importer=f"{_M}._voc:import_",
        extensions=(".xml",),
        params=(_copy(True), _IMAGE_ROOT),
        description="Annotations/*.xml with 1-based inclusive integer boxes, labelmap.txt; truncated, pose, "
        "parts kept.",
    ),
    FormatSpec(
        "labelme",
        "labelme JSON",
        exporter=f"{_M}._labelme:export",
        importer=f"{_M}._labelme:import_",
        extensions=(".json",),
        params=(_copy(True), _IMAGE_ROOT),
        description="One JSON per image: rectangles (2 or 4 points), rotated boxes, circles, lines, points, "
        "keypoints, polygons, masks; description, flags, unknown keys kept (X-AnyLabeling too).",
    ),
    FormatSpec(
        "cvat",
        "CVAT for images 1.1 XML",
        exporter=f"{_M}._cvat:export",
        importer=f"{_M}._cvat:import_",
        extensions=(".xml",),
        params=(
            Param(_FILENAME, ParamType.STR, "annotations.xml", help="name of the XML file"),
            _copy(False),
            _IMAGE_ROOT,
        ),
        description="Boxes (rotation), ellipses, polygons, polylines, points, tags, masks (tight-box RLE), "
        "attributes, occluded, z_order, subsets; tracks per frame.",
    ),
    FormatSpec(
        "labelstudio",
        "Label Studio tasks JSON",
        exporter=f"{_M}._labelstudio:export",
        extensions=(".json",),
        params=(
            Param(_FILENAME, ParamType.STR, "tasks.json", help="name of the JSON file"),
            Param(
                "mode",
                ParamType.CHOICE,
                "predictions",
                choices=("predictions", "annotations"),
                help="write results as pre-annotations (predictions) or as annotations",
            ),
            Param(
                "image_prefix",
                ParamType.STR,
                "",
                help="prefix for data.image, e.g. '/data/local-files/?d=' (default: relative path)",
            ),
            _tolerance(),
        ),
        description="Tasks with rectangles, polygons, keypoints, tag choices and captions in percent.",
    ),
    FormatSpec(
        "masks",
        "Mask PNGs",
        exporter=f"{_M}._masks:export",
        importer=f"{_M}._masks:import_",
        extensions=(".png",),
        params=(
            Param(
                "kind",
                ParamType.CHOICE,
                "semantic",
                choices=("semantic", "instance"),
                help="export: semantic (pixel = class index + 1) or instance (pixel = instance id)",
            ),
            _IMAGE_ROOT,
        ),
        description="One PNG per image from masks and polygons; classes.txt lists the values. Import: "
        "index maps with classes.txt or colour maps with labelmap.txt.",
    ),
    FormatSpec(
        "captions-jsonl",
        "Captions JSONL",
        exporter=f"{_M}._captions:export_jsonl",
        importer=f"{_M}._captions:import_jsonl",
        extensions=(".jsonl",),
        params=(
            Param(_FILENAME, ParamType.STR, "captions.jsonl", help="name of the file"),
            Param("include_empty", ParamType.BOOL, False, help="also list images without caption or tags"),
            _IMAGE_ROOT,
        ),
        description="One line per image: image path, caption, tags.",
    ),
    FormatSpec(
        "captions-csv",
        "Captions CSV",
        exporter=f"{_M}._captions:export_csv",
        extensions=(".csv",),
        params=(
            Param(_FILENAME, ParamType.STR, "captions.csv", help="name of the file"),
            Param("include_empty", ParamType.BOOL, False, help="also list images without caption or tags"),
        ),
        description="Columns image, caption, tags (';'-separated).",
    ),
)


@hookimpl
def vfm_register_formats() -> list[FormatSpec]:
    return list(FORMATS)
