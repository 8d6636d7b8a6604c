"""The only module plugin authors import, the built-in plugins included (an import-linter contract).

A minimal plugin::

    from vfmstudio.plugin_api import hookimpl, ToolSpec, Param, ParamType

    @hookimpl
    def vfm_register_tools():
        return [ToolSpec(id="mytool.edges", title="Edges", run="mytool.compute:edges",
                         params=(Param("low", ParamType.INT, 50, minimum=0, maximum=255),),
                         returns=("heatmap",))]

What is here, by the kind of plugin that needs it:

- every plugin: :data:`hookimpl`, the declarations (:class:`ToolSpec`, :class:`Param`,
  :class:`FormatSpec`, ...) and the error types;
- tools: :class:`RunContext`, :class:`LoadedImage`, the result types, and the signatures
  :class:`ToolFunction` / :class:`PrepareFunction`;
- formats: :class:`Project`, :func:`in_memory`, :class:`ImageRecord`, the annotation shapes
  (boxes, rotated boxes, ellipses, polygons, polylines, masks, points, keypoints and skeletons),
  :class:`ExchangeContext`, :func:`safe_join`, mask helpers, and :class:`ExporterFunction` /
  :class:`ImporterFunction`;
- models: :func:`load_pretrained` / :func:`load_processor` (safetensors only, never remote code),
  model references, the hub cache, devices and precisions.

Importing this module never imports torch or transformers: the model helpers import them when called.
See docs/plugins.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vfmstudio.core.annotations import (
    AREA_SHAPES,
    Annotation,
    AnnotationError,
    Box,
    Ellipse,
    Keypoints,
    LabelSet,
    Mask,
    Points,
    Polygon,
    PolygonPart,
    Polyline,
    Provenance,
    RotatedBox,
    Shape,
    Skeleton,
)
from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.core.context import RunContext
from vfmstudio.core.exchange import ExchangeContext, FormatError, safe_join, shape_kind
from vfmstudio.core.geometry import mask_bbox, mask_to_parts
from vfmstudio.core.image import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    LoadedImage,
    image_id_for_file,
    list_images,
    load_image,
    open_image,
)
from vfmstudio.core.project import ImageRecord, Project, image_size, in_memory
from vfmstudio.core.results import (
    Classification,
    Correspondences,
    Detections,
    Embedding,
    FeatureImage,
    Heatmap,
    Histogram,
    LayerMaps,
    Masks,
    Prediction,
    Ranking,
    Result,
    ResultError,
    Table,
    Text,
    result_from_json,
)
from vfmstudio.core.rle import decode as rle_decode
from vfmstudio.core.rle import encode as rle_encode
from vfmstudio.core.tools import (
    FormatSpec,
    InputKind,
    ModelChoice,
    ModelSpec,
    Param,
    ParamError,
    ParamType,
    ToolSpec,
)
from vfmstudio.core.yaml_safe import YAMLRefused, load_yaml
from vfmstudio.hookspecs import hookimpl
from vfmstudio.ml.catalog import KnownModel, get_known, models_for
from vfmstudio.ml.devices import BYTES_PER_ELEMENT, resolve_device, resolve_precision, torch_dtype
from vfmstudio.ml.download import download_file
from vfmstudio.ml.errors import ModelError, ModelNotAvailableError, ModelTooLargeError
from vfmstudio.ml.hub import DEFAULT_TIMEOUT as HUB_TIMEOUT_S
from vfmstudio.ml.hub import hub_cache_dir, is_cached, is_offline, resolve_local_path
from vfmstudio.ml.refs import ModelRef, parse_model_ref

if TYPE_CHECKING:
    import numpy as np
    import torch

    from vfmstudio.ml._loading import LoadedModelInfo


# --------------------------------------------------------------------------------- the signatures
# ``ToolSpec.run`` / ``.prepare`` and ``FormatSpec.exporter`` / ``.importer`` name functions as
# "module:function"; these Protocols are what the host calls them with.


class ToolFunction(Protocol):
    """``ToolSpec.run``: compute results for ``images`` (one, a pair or a set, per ``ToolSpec.inputs``)."""

    def __call__(
        self, ctx: RunContext, images: list[LoadedImage], params: dict[str, Any], /
    ) -> Sequence[Result]: ...


class PrepareFunction(Protocol):
    """``ToolSpec.prepare``: fill ``ctx``'s caches for many images at once (batched forward passes);
    the per-image runs that follow read them."""

    def __call__(self, ctx: RunContext, images: list[LoadedImage], params: dict[str, Any], /) -> None: ...


class ExporterFunction(Protocol):
    """``FormatSpec.exporter``: write ``project`` into the folder ``out`` (paths through :func:`safe_join`)."""

    def __call__(
        self, project: Project, out: Path, params: dict[str, Any], ctx: ExchangeContext, /
    ) -> None: ...


class ImporterFunction(Protocol):
    """``FormatSpec.importer``: read ``source`` into a new in-memory :class:`Project` (see :func:`in_memory`)."""

    def __call__(self, source: Path, params: dict[str, Any], ctx: ExchangeContext, /) -> Project: ...


# ------------------------------------------------------------------ model loading (torch when called)


def load_pretrained(
    model_cls: Any,
    ref: str | ModelRef,
    *,
    device: str = "auto",
    precision: str = "auto",
    allow_download: bool = True,
    attn_implementation: str | None = "sdpa",
    compile: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, LoadedModelInfo]:
    """Load ``model_cls`` (a transformers class) for ``ref`` in eval mode on ``device``: safetensors
    only, never remote code (through the checked loader in ``vfmstudio.ml._loading``), refused with
    :class:`ModelTooLargeError` when it cannot fit. Returns ``(model, info)``."""
    from vfmstudio.ml import _loading

    return _loading.load_pretrained(
        model_cls,
        ref,
        device=device,
        precision=precision,
        allow_download=allow_download,
        attn_implementation=attn_implementation,
        compile=compile,
        **kwargs,
    )


def load_processor(
    processor_cls: Any, ref: str | ModelRef, *, allow_download: bool = True, **kwargs: Any
) -> Any:
    """Load ``processor_cls`` for ``ref`` from the local snapshot (never remote code)."""
    from vfmstudio.ml import _loading

    return _loading.load_processor(processor_cls, ref, allow_download=allow_download, **kwargs)


def check_fits(nbytes: int, device: str, *, model: str = "model") -> int | None:
    """Raise :class:`ModelTooLargeError` when ``nbytes`` cannot fit on ``device``; the free bytes, or None."""
    from vfmstudio.ml import _loading

    return _loading.check_fits(nbytes, device, model=model)


def pixel_values_on_device(
    image_processor: Any, pixels: Sequence[np.ndarray], device: str, dtype: torch.dtype
) -> torch.Tensor | None:
    """The processor's (B, 3, h, w) input made on ``device`` (a GPU), or None where the processor must run."""
    from vfmstudio.ml import _preprocess

    return _preprocess.pixel_values_on_device(image_processor, pixels, device, dtype)


def __getattr__(name: str) -> Any:
    # Types that live beside torch code: imported on first use so this module stays torch-free.
    if name == "LoadedModelInfo":
        from vfmstudio.ml._loading import LoadedModelInfo

        return LoadedModelInfo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AREA_SHAPES",
    "BYTES_PER_ELEMENT",
    "DEFAULT_MAX_PIXELS",
    "HUB_TIMEOUT_S",
    "IMAGE_EXTENSIONS",
    "Annotation",
    "AnnotationError",
    "Box",
    "Ellipse",
    "Keypoints",
    "Polyline",
    "RotatedBox",
    "Skeleton",
    "shape_kind",
    "CancelToken",
    "Cancelled",
    "Classification",
    "Correspondences",
    "Detections",
    "Embedding",
    "ExchangeContext",
    "ExporterFunction",
    "FeatureImage",
    "FormatError",
    "FormatSpec",
    "Heatmap",
    "Histogram",
    "ImageLoadError",
    "ImageRecord",
    "ImporterFunction",
    "InputKind",
    "KnownModel",
    "LabelSet",
    "LayerMaps",
    "LoadedImage",
    "LoadedModelInfo",
    "Mask",
    "Masks",
    "ModelChoice",
    "ModelSpec",
    "ModelError",
    "ModelNotAvailableError",
    "ModelRef",
    "ModelTooLargeError",
    "Param",
    "ParamError",
    "ParamType",
    "Points",
    "Polygon",
    "PolygonPart",
    "Prediction",
    "PrepareFunction",
    "Project",
    "Provenance",
    "Ranking",
    "Result",
    "ResultError",
    "RunContext",
    "Shape",
    "Table",
    "Text",
    "ToolFunction",
    "ToolSpec",
    "check_fits",
    "get_known",
    "hookimpl",
    "hub_cache_dir",
    "image_id_for_file",
    "image_size",
    "in_memory",
    "is_cached",
    "is_offline",
    "list_images",
    "load_image",
    "load_pretrained",
    "load_processor",
    "mask_bbox",
    "mask_to_parts",
    "models_for",
    "parse_model_ref",
    "pixel_values_on_device",
    "resolve_device",
    "resolve_local_path",
    "resolve_precision",
    "result_from_json",
    "rle_decode",
    "rle_encode",
    "safe_join",
    "torch_dtype",
    "open_image",
    "load_yaml",
    "YAMLRefused",
    "download_file",
]
