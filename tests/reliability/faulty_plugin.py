"""A plugin whose tools fail in every way a plugin tool can, plus one that works (family ``faulty``).

Registered as the module ``faulty`` by the reliability fixtures. ``HANG`` releases the hanging tool
at the end of a test so no thread outlives it for long; ``LEAK`` is the global a leaking tool grows.
"""

from __future__ import annotations

import threading

import numpy as np

from vfmstudio.plugin_api import Heatmap, Masks, Param, ParamType, Text, ToolSpec, hookimpl

HANG = threading.Event()
LEAK: list[np.ndarray] = []
FORWARD = {"calls": 0}


@hookimpl
def vfm_register_tools():
    return [
        ToolSpec(id="faulty.ok", title="OK", run="faulty:ok", returns=("heatmap",),
                 params=(Param("scale", ParamType.FLOAT, 1.0, minimum=0.0, maximum=10.0),)),
        ToolSpec(id="faulty.raises", title="Raises", run="faulty:raises", returns=("text",)),
        ToolSpec(id="faulty.hangs", title="Hangs", run="faulty:hangs", returns=("text",)),
        ToolSpec(id="faulty.nan", title="NaN", run="faulty:nan", returns=("heatmap",)),
        ToolSpec(id="faulty.shape", title="Shape", run="faulty:shape", returns=("masks",)),
        ToolSpec(id="faulty.notresult", title="Not a result", run="faulty:not_result", returns=("text",)),
        ToolSpec(id="faulty.leaks", title="Leaks", run="faulty:leaks", returns=("text",),
                 params=(Param("mb", ParamType.INT, 8, minimum=1, maximum=64),)),
        ToolSpec(id="faulty.slowprep", title="Hanging preparation", run="faulty:ok", prepare="faulty:hangs",
                 returns=("heatmap",), params=(Param("scale", ParamType.FLOAT, 1.0, minimum=0.0, maximum=10.0),)),
        ToolSpec(id="faulty.missing", title="Missing", run="faulty_module_that_is_gone:run", returns=("text",)),
    ]


def ok(ctx, images, params):
    """The well-behaved tool: features once per image (counted), then cheap math per parameter."""
    image = images[0]

    def features():
        FORWARD["calls"] += 1
        return image.pixels.astype(np.float32).mean(axis=2)

    grey = ctx.cached(("faulty-features", image.id), features)
    return [Heatmap(grey * float(params["scale"]), image_id=image.id)]


def raises(ctx, images, params):
    raise RuntimeError("the plugin tripped over its own feet")


def hangs(ctx, images, params):
    # Ignores its cancel token on purpose: the studio must cope with a tool that never checks it.
    HANG.wait(60)
    return [Text("too late", image_id=images[0].id)]


def nan(ctx, images, params):
    values = np.full((4, 4), np.nan, np.float32)
    return [Heatmap(values, image_id=images[0].id)]


def shape(ctx, images, params):
    image = images[0]
    return [Masks(np.zeros((1, image.height + 3, image.width), bool), ("thing",), image_id=image.id)]


def not_result(ctx, images, params):
    return {"text": "a dict is not a result"}


def leaks(ctx, images, params):
    LEAK.append(np.ones(params["mb"] << 20, np.uint8))
    return [Text(f"{len(LEAK)} blocks kept", image_id=images[0].id)]
