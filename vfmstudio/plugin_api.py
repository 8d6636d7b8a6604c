"""The only module plugin authors import.

A minimal plugin::

    from vfmstudio.plugin_api import hookimpl, ToolSpec, Param, ParamType

    @hookimpl
    def vfm_register_tools():
        return [ToolSpec(id="mytool.edges", title="Edges", run="mytool.compute:edges",
                         params=(Param("low", ParamType.INT, 50, minimum=0, maximum=255),),
                         returns=("heatmap",))]

See docs/plugins.md.
"""

from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.core.context import RunContext
from vfmstudio.core.image import ImageLoadError, LoadedImage
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
    Ranking,
    Result,
    ResultError,
    Table,
    Text,
)
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
from vfmstudio.hookspecs import hookimpl

__all__ = [
    "CancelToken", "Cancelled", "Classification", "Correspondences", "Detections", "Embedding", "FeatureImage",
    "FormatSpec",
    "Heatmap", "Histogram", "ImageLoadError", "InputKind", "LayerMaps", "LoadedImage", "Masks", "ModelChoice",
    "ModelSpec",
    "Param", "ParamError", "ParamType", "Ranking", "Result", "ResultError", "RunContext", "Table", "Text",
    "ToolSpec", "hookimpl",
]
