"""A minimal vfmstudio plugin. Registering is cheap: the tool's code is imported when it runs."""

from vfmstudio.plugin_api import Param, ParamType, ToolSpec, hookimpl


@hookimpl
def vfm_register_tools():
    return [
        ToolSpec(
            id="example.edges",
            title="Edge strength",
            run="vfmstudio_example._edges:edges",
            params=(Param("smooth", ParamType.INT, 1, minimum=0, maximum=10, help="box-blur passes first"),),
            returns=("heatmap",),
            description="Gradient magnitude of the grey image, as a heat map.",
        )
    ]
