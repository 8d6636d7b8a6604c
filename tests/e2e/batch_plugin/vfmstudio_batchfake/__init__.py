"""A cheap numpy plugin for the batch tests: a batched ``prepare`` that fills the feature cache
and a per-image run that reads it, both logging their calls so tests can count forward passes."""

from vfmstudio.plugin_api import Param, ParamType, ToolSpec, hookimpl

STATS = ToolSpec(
    id="batchfake.stats",
    title="Grid statistics",
    run="vfmstudio_batchfake._tool:run",
    prepare="vfmstudio_batchfake._tool:prepare",
    params=(
        Param("grid", ParamType.INT, 8, minimum=1, maximum=256, help="cells per side of the heat map"),
        Param("delay", ParamType.FLOAT, 0.0, minimum=0.0, help="seconds to sleep per image (slow runs)"),
        Param("log", ParamType.STR, "", help="file that gets a line per call: 'prepare N' or 'forward ID'"),
        Param(
            "fail_on",
            ParamType.STR,
            "",
            help="raise for images whose path contains this text (* : for every image)",
        ),
    ),
    returns=("heatmap", "classification"),
)

DETECT = ToolSpec(
    id="batchfake.detect",
    title="Quadrant detector",
    run="vfmstudio_batchfake._tool:detect",
    params=(
        Param("masks", ParamType.BOOL, False, help="also return a mask per box"),
        Param("fail_on", ParamType.STR, "", help="raise for images whose path contains this text"),
    ),
    returns=("detections", "masks"),
)


@hookimpl
def vfm_register_tools():
    return [STATS, DETECT]
